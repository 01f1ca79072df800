"""What every Credence service shares: database session, outbox and inbox, event envelope, metrics,
configuration, typed errors."""

import warnings

# eventlet announces its deprecation on import; nameko 2.14 needs it, so the notice is noise here.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
