"""The deployment tests' own guard: where CI promises to run them, a missing tool is a
failure, not a skip (tests/deploy/debroot.py)."""

from __future__ import annotations

import pytest

from tests.deploy.debroot import require


def test_a_missing_tool_fails_the_test_under_ci_require_deploy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI_REQUIRE_DEPLOY", "1")
    with pytest.raises(pytest.fail.Exception, match=r"^CI_REQUIRE_DEPLOY=1 and "):
        require("consentgate-no-such-tool")


def test_a_missing_tool_skips_the_test_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI_REQUIRE_DEPLOY", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"consentgate-no-such-tool|as root"):
        require("consentgate-no-such-tool")
