"""Reconnect delays: grow, cap, and spread boards apart."""

from __future__ import annotations

import random
import statistics

import pytest

from edge.backoff import backoff_delay


def test_delay_grows_then_caps() -> None:
    ceilings = [backoff_delay(n, min_s=1, max_s=60, jitter=0) for n in range(10)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert backoff_delay(10_000, min_s=1, max_s=60, jitter=0) == 60  # no overflow after days offline


def test_delay_is_jittered_within_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        draws = [backoff_delay(attempt, min_s=1, max_s=60, rng=rng) for _ in range(500)]
        ceiling = min(60.0, 2.0**attempt)
        assert all(ceiling * 0.5 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 400, "boards must not retry in lock-step"
        assert statistics.pstdev(draws) > ceiling * 0.1


def test_delay_grows_on_average_and_never_exceeds_cap() -> None:
    rng = random.Random(1)
    means = [
        statistics.mean(backoff_delay(a, min_s=0.5, max_s=30, rng=rng) for _ in range(200)) for a in range(6)
    ]
    assert means == sorted(means)
    assert max(backoff_delay(a, min_s=0.5, max_s=30, rng=rng) for a in range(100) for _ in range(20)) <= 30


@pytest.mark.parametrize("kwargs", [{"min_s": 0, "max_s": 1}, {"min_s": 2, "max_s": 1}, {"jitter": 1.5}])
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    args: dict[str, float] = {"min_s": 1, "max_s": 10, **kwargs}
    with pytest.raises(ValueError):
        backoff_delay(0, **args)  # type: ignore[arg-type]
