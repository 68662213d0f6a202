"""Reload hooks: each resource registers its own; one failing keeps the others running."""

from __future__ import annotations

import logging

import pytest

from consentgate.config.reload_hooks import ReloadHooks


def test_every_hook_runs_and_a_failing_one_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise OSError("the key directory is gone")

    hooks = ReloadHooks()
    hooks.add(lambda: ran.append("keys"))
    hooks.add(broken)
    hooks.add(lambda: ran.append("templates"))
    with caplog.at_level(logging.ERROR, logger="consentgate"):
        hooks.run()
    assert ran == ["keys", "templates"]
    assert "a reload failed" in caplog.text


def test_a_removed_hook_no_longer_runs() -> None:
    ran: list[str] = []

    def hook() -> None:
        ran.append("x")

    hooks = ReloadHooks()
    hooks.add(hook)
    hooks.remove(hook)
    hooks.run()
    assert ran == []
