# eventlet must patch the standard library before anything imports sockets or threads: nameko's
# containers run on green threads, and the test process hosts them.
import os

# trio (which selenium brings along) registers a hypothesis plugin that cannot import on eventlet's green
# sockets; hypothesis needs no plugins here.
os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")
# A process is never left to guess its environment (credence_common/config.py): the services the tests host, and
# the processes they start with this environment, run as development unless a test says otherwise.
os.environ["CREDENCE_ENV"] = "development"

import eventlet  # noqa: E402

eventlet.monkey_patch()

from credence_common.persistence.green_postgres import patch_psycopg  # noqa: E402

patch_psycopg()  # as credence_common/runtime/runner.py does for every service process

from credence_common.runtime.nameko_fixes import patch_nameko  # noqa: E402

patch_nameko()  # the same

import credence_common  # noqa: E402,F401  (filters eventlet's import-time deprecation notice)
import credence_common.bus.error_registry  # noqa: E402,F401  (RPC refusals come back as their own class, as in every process)
