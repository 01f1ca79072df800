"""Retry schedule and queue names of the reliable event handlers (the broker behaviour is in
tests/integration/test_dead_letters.py)."""

from credence_common.reliable_events import dead_letter_queue_name, retry_delays, retry_queue_name


def test_retries_back_off_four_times_longer_each_time_and_stop_before_the_last_attempt():
    assert retry_delays(1.0, 6) == [1.0, 4.0, 16.0, 64.0, 256.0]
    assert retry_delays(0.1, 1) == []  # one attempt: straight to the dead letters on failure
    assert sum(retry_delays(1.0, 6)) < 6 * 60  # a message is given up on within six minutes


def test_a_changed_delay_gets_a_queue_of_its_own():
    # a queue's TTL is fixed once declared: redeclaring with another would be refused by the broker
    assert retry_queue_name("payments", 1.0) == "credence.retry.payments.1000ms"
    assert retry_queue_name("payments", 0.05) != retry_queue_name("payments", 0.1)
    assert dead_letter_queue_name("payments") == "credence.dead-letters.payments"
