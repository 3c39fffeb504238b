from ticketing_common.backoff import backoff


def test_backoff_starts_at_the_first_delay_and_doubles_each_try() -> None:
    assert [backoff(n, 0.5, 100) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_backoff_never_exceeds_its_cap_however_long_it_has_failed() -> None:
    assert backoff(6, 0.5, 10) == 10
    assert backoff(10_000, 0.5, 10) == 10


def test_backoff_of_a_first_or_unnumbered_try_is_the_first_delay() -> None:
    assert backoff(0, 0.5, 10) == backoff(1, 0.5, 10) == 0.5
