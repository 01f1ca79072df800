"""Every typed refusal (credence_common/contracts/errors.py) registered with nameko, so an RPC caller gets the very
class the
service raised, not a ``RemoteError``. Done here, where nameko is set up: the entrypoints of every service, the
service-to-service RPC (remote.py), the gateway's RPC client and the operator's CLI import this module, and the
errors module stays free of nameko for the pure rules that raise its refusals."""

from __future__ import annotations

from nameko.exceptions import deserialize_to_instance, registry

from credence_common.contracts.errors import ERROR_CLASSES

# Where the classes lived before credence_common was split by role (2026-12-07): a process of the previous release
# names its refusals by that path, and during a rolling deploy the two releases answer each other. Kept for one
# release, so a refusal between them stays the 4xx it is instead of a RemoteError (a 502).
PREVIOUS_MODULE = "credence_common.errors"

for refusal in ERROR_CLASSES:
    deserialize_to_instance(refusal)
    registry[f"{PREVIOUS_MODULE}.{refusal.__name__}"] = refusal
