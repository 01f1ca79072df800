"""Fixes to nameko 2.14.1 that every service process applies at start (credence_common/runtime/runner.py) and the
test process too (tests/conftest.py), each with the failure it prevents.

``QueueConsumer.unregister_provider`` while the consumer is still starting (connecting to the broker, declaring
its queues: slow on a busy broker or one that is away) sends the "last provider unregistered" event once per
provider; a service has several (its RPC consumer and each event handler), and eventlet refuses the second send
with ``AssertionError: Trying to re-send() an already-triggered event``. The container's stop then fails half-way
and the process hangs until the runner's grace period kills it (25 s, exit 1). Seen in the fault suite: a second
payments instance given SIGTERM 8 s after it started, on a loaded machine. Sending it once is what nameko means:
with no consumer running there is nothing to wait for.
(tests/integration/test_runner.py::test_a_service_stopped_while_its_consumer_is_still_starting_stops_at_once)
"""

from __future__ import annotations

from nameko.messaging import QueueConsumer


def patch_nameko() -> None:
    original = QueueConsumer.unregister_provider
    if getattr(original, "credence_fixed", False):
        return

    def unregister_provider(self, provider):
        if not self._consumers_ready.ready():  # still starting: no consumer to cancel, nothing to wait for
            if not self._last_provider_unregistered.ready():
                self._last_provider_unregistered.send()
            return None
        return original(self, provider)

    unregister_provider.credence_fixed = True  # type: ignore[attr-defined]
    QueueConsumer.unregister_provider = unregister_provider
