"""What every Credence service and the gateway share, one package per role, each building only on those after it
(import-linter contracts common-layers and common-acyclic in pyproject.toml):

- ``runtime``: starting a service process (runner.py) and reading its settings from a worker;
- ``bus``: RabbitMQ: entrypoints, the outbox relay, reliable event handlers, queues, RPC with a deadline;
- ``observability``: structured logs, Prometheus metrics and probes;
- ``persistence``: a service's own database: unit of work, migrations, outbox and inbox tables, idempotency;
- ``config.py``: the YAML configuration and the production guard;
- ``security``: actors and their signatures, signing, masking of personal data, encryption at rest;
- ``contracts``: what crosses the bus: RPC and event models, the envelope, typed refusals, public number formats.

``calendar.py`` (working days, the Beijing zone, public holidays) and ``emulation.py`` (what the vendor emulators
share) stand apart: they import nothing of the platform."""

import warnings

# eventlet announces its deprecation on import; nameko 2.14 needs it, so the notice is noise here.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
