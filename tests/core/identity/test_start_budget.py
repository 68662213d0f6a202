"""Sign-in starts per network: a flood from one network is bounded, others are served."""

from __future__ import annotations

from consentgate.core.identity.start_budget import StartBudget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_network_over_its_budget_is_refused_and_others_are_served() -> None:
    clock = Clock()
    budget = StartBudget(clock, limit=3, window=60)
    assert [budget.take("203.0.113.9") for _ in range(4)] == [True, True, True, False]
    assert budget.take("198.51.100.7")


def test_the_budget_comes_back_as_the_window_slides() -> None:
    clock = Clock()
    budget = StartBudget(clock, limit=2, window=60)
    assert budget.take("n") and budget.take("n") and not budget.take("n")
    clock.now += 60
    assert budget.take("n")


def test_memory_is_bounded_by_forgetting_the_least_recent_network() -> None:
    clock = Clock()
    budget = StartBudget(clock, limit=1, window=60, max_networks=2)
    assert budget.take("a") and budget.take("b") and budget.take("c")
    assert budget.take("a")  # forgotten, so counted afresh
    assert not budget.take("c")
