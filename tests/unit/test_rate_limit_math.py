from certforge.api.rate_limits import Limit, retry_after


def test_retry_after_is_the_wait_for_one_whole_token() -> None:
    per_minute_6 = Limit("x", 6)  # a token every 10 s
    assert retry_after(1.0, per_minute_6) is None
    assert retry_after(3.5, per_minute_6) is None
    assert retry_after(0.0, per_minute_6) == 10
    assert retry_after(0.75, per_minute_6) == 3  # 2.5 s, rounded up
    assert retry_after(0.9999, Limit("x", 6000)) == 1  # never 0
