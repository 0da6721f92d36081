"""When a resource create counts the zone's live resources (resources/quota.py)."""

from __future__ import annotations

from caracal_api.resources.quota import QuotaGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(clock: Clock, zones: int = 10_000) -> QuotaGate:
    return QuotaGate(refresh_s=1.0, margin=10, zones=zones, clock=clock)


def test_quota_off_never_counts() -> None:
    assert not gate(Clock()).must_count("z", 0)


def test_first_create_of_a_zone_counts() -> None:
    assert gate(Clock()).must_count("z", 1_000)


def test_recent_count_far_below_the_quota_is_trusted() -> None:
    clock = Clock()
    quota = gate(clock)
    quota.counted("z", 50)
    clock.now += 0.9
    assert not quota.must_count("z", 1_000)
    assert quota.must_count("other zone", 1_000)


def test_count_older_than_the_refresh_is_read_again() -> None:
    clock = Clock()
    quota = gate(clock)
    quota.counted("z", 50)
    clock.now += 1.0
    assert quota.must_count("z", 1_000)
    quota.counted("z", 51)
    assert not quota.must_count("z", 1_000)


def test_within_the_margin_every_create_counts() -> None:
    clock = Clock()
    quota = gate(clock)
    quota.counted("z", 89)
    assert not quota.must_count("z", 100)
    quota.counted("z", 90)
    assert quota.must_count("z", 100)
    # a small quota is always inside the margin
    quota.counted("small", 0)
    assert quota.must_count("small", 10)


def test_remembers_a_bounded_number_of_zones_least_recent_first_out() -> None:
    clock = Clock()
    quota = gate(clock, zones=2)
    quota.counted("a", 1)
    quota.counted("b", 1)
    quota.counted("a", 2)  # a is now the most recent
    quota.counted("c", 1)
    assert quota.must_count("b", 1_000)
    assert not quota.must_count("a", 1_000)
    assert not quota.must_count("c", 1_000)
