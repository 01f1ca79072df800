import sys

from credence_report_verifier.cli import main

sys.exit(main())
