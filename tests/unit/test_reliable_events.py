"""Retry schedule and queue names of the reliable event handlers (the broker behaviour is in
tests/integration/test_dead_letters.py)."""

from credence_common.bus.reliable_events import dead_letter_queue_name, retry_delays, retry_queue_name


def test_retries_back_off_four_times_longer_each_time_and_stop_before_the_last_attempt():
    assert retry_delays(1.0, 6) == [1.0, 4.0, 16.0, 64.0, 256.0]
    assert retry_delays(0.1, 1) == []  # one attempt: straight to the dead letters on failure
    assert sum(retry_delays(1.0, 6)) < 6 * 60  # a message is given up on within six minutes


def test_a_changed_delay_gets_a_queue_of_its_own():
    # a queue's TTL is fixed once declared: redeclaring with another would be refused by the broker
    assert retry_queue_name("payments", 1.0) == "credence.retry.payments.1000ms"
    assert retry_queue_name("payments", 0.05) != retry_queue_name("payments", 0.1)
    assert dead_letter_queue_name("payments") == "credence.dead-letters.payments"


class _FlakyQueue:
    """A kombu Queue stand-in whose declaration is refused ``refusals`` times with ``text``."""

    name = "credence.retry.certificates.100ms"

    def __init__(self, refusals: int, text: str):
        self.refusals, self.text, self.declared, self.queue_arguments = refusals, text, 0, {}

    def __call__(self, channel):
        return self

    def declare(self):
        import amqp.exceptions

        if self.refusals:
            self.refusals -= 1
            raise amqp.exceptions.NotFound(self.text)
        self.declared += 1


class _Connection:
    def channel(self):
        class Channel:
            def close(self):
                pass
        return Channel()


def test_a_quorum_queue_whose_members_are_still_starting_is_declared_once_they_are():
    from credence_common.bus.queues import declare_event_queue

    queue = _FlakyQueue(2, "Queue.declare: (404) NOT_FOUND - home node 'rabbit@localhost' of durable queue "
                           "'credence.retry.certificates.100ms' in vhost 'v' is down or inaccessible")
    assert declare_event_queue(_Connection(), queue, "quorum") == "quorum"
    assert queue.declared == 1 and queue.refusals == 0


def test_a_refusal_that_does_not_pass_is_not_waited_on():
    import amqp.exceptions
    import pytest

    from credence_common.bus.queues import declare_event_queue

    queue = _FlakyQueue(1, "Queue.bind: (404) NOT_FOUND - no exchange 'x' in vhost 'v'")
    with pytest.raises(amqp.exceptions.NotFound):
        declare_event_queue(_Connection(), queue, "quorum")
    stubborn = _FlakyQueue(100, "home node 'rabbit@localhost' of durable queue 'q' is down or inaccessible")
    with pytest.raises(amqp.exceptions.NotFound):
        declare_event_queue(_Connection(), stubborn, "quorum", patience=0.5)  # gives up after its patience
    assert stubborn.refusals > 90
