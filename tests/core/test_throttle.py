from consentgate.core.throttle import Throttle


def test_one_line_per_interval_per_key_counting_what_was_left_out() -> None:
    now = [100.0]
    throttle = Throttle(10, clock=lambda: now[0])
    assert throttle.allow("locked") == 0
    assert throttle.allow("locked") is None
    assert throttle.allow("locked") is None
    assert throttle.allow("disk full") == 0  # another kind is its own line
    now[0] += 10
    assert throttle.allow("locked") == 2
    assert throttle.allow("locked") is None
