"""Fixes to nameko 2.14.1 that every service process applies at start (credence_common/runtime/runner.py) and the
test process too (tests/conftest.py), each with the failure it prevents.

``QueueConsumer.unregister_provider`` while the consumer is still starting (connecting to the broker, declaring
its queues: slow on a busy broker or one that is away) sends the "last provider unregistered" event once per
provider; a service has several (its RPC consumer and each event handler), and eventlet refuses the second send
with ``AssertionError: Trying to re-send() an already-triggered event``. The container's stop then fails half-way
and the process hangs until the runner's grace period kills it (25 s, exit 1). Seen in the fault suite: a second
payments instance given SIGTERM 8 s after it started, on a loaded machine. The fix takes the provider out, as a
normal unregistering does, and sends the event once, when the last one is out; and should the broker answer
after that, while the container is still stopping (its workers finishing), no consumer is set up for the
providers that left, so the consumer thread ends instead of consuming for a stopping service and holding its
stop until the grace kill.
(tests/integration/test_runner.py::test_a_service_stopped_while_its_consumer_is_still_starting_stops_at_once,
::test_a_broker_that_answers_while_a_starting_service_stops_does_not_hold_the_stop)
A stop during start-up ends the consumer thread the hard way (nameko kills it: it is stuck in kombu's connection
retries), which nameko logs as a critical error and answers by killing the container: the workers of the few
seconds since start-up are cut off, and what they had not acknowledged is redelivered.
"""

from __future__ import annotations

from nameko.messaging import QueueConsumer


def patch_nameko() -> None:
    original = QueueConsumer.unregister_provider
    if getattr(original, "credence_fixed", False):
        return

    def unregister_provider(self, provider):
        if not self._consumers_ready.ready():
            # Still starting: this provider's consumer is not consuming yet. Take the provider out, so that a
            # connection made from now on (the broker answering while the container stops) sets up no consumer
            # for it, and drop a consumer already set up for it, so that the consumer thread, finding none left,
            # ends its loop; the last provider out says so, once.
            self._providers.discard(provider)
            self._consumers.pop(provider, None)
            if not self._providers and not self._last_provider_unregistered.ready():
                self._last_provider_unregistered.send()
            return None
        return original(self, provider)

    unregister_provider.credence_fixed = True  # type: ignore[attr-defined]
    QueueConsumer.unregister_provider = unregister_provider
