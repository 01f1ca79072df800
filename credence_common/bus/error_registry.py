"""Every typed refusal (credence_common/contracts/errors.py) registered with nameko, so an RPC caller gets the very
class the
service raised, not a ``RemoteError``. Done here, where nameko is set up: the entrypoints of every service, the
service-to-service RPC (remote.py), the gateway's RPC client and the operator's CLI import this module, and the
errors module stays free of nameko for the pure rules that raise its refusals."""

from __future__ import annotations

from nameko.exceptions import deserialize_to_instance

from credence_common.contracts.errors import ERROR_CLASSES

for refusal in ERROR_CLASSES:
    deserialize_to_instance(refusal)
