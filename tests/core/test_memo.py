"""The bounded memory of pure text functions (core/memo.remembered)."""

from __future__ import annotations

import pytest

from consentgate.core import memo
from consentgate.core.memo import remembered


class Counted:
    """A pure function of a text that counts its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, text: str) -> str:
        self.calls.append(text)
        if text == "refused":
            raise ValueError(text)
        return text.upper()


@pytest.mark.parametrize("keep_all", [False, True])
def test_answers_are_remembered_up_to_the_longest_text(keep_all: bool) -> None:
    counted = Counted()
    call = (
        remembered(4, keep=lambda text, answer: True)(counted)
        if keep_all
        else remembered(4)(counted)
    )
    assert [call("abc"), call("abc"), call("abcde"), call("abcde")] == ["ABC"] * 2 + ["ABCDE"] * 2
    assert counted.calls == ["abc", "abcde", "abcde"]
    for _ in range(2):
        with pytest.raises(ValueError, match="refused"):
            call("refused")
    assert counted.calls.count("refused") == 2


def test_only_the_answers_keep_accepts_are_remembered() -> None:
    def no_secret(text: str, answer: str) -> bool:
        return "SECRET" not in answer

    counted = Counted()
    call = remembered(64, keep=no_secret)(counted)
    for _ in range(3):
        assert call("/cb?code=secret") == "/CB?CODE=SECRET"
        assert call("/mcp") == "/MCP"
    assert counted.calls.count("/cb?code=secret") == 3
    assert counted.calls.count("/mcp") == 1


def test_the_least_recently_used_answer_goes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memo, "ENTRIES", 2)
    counted = Counted()
    call = remembered(64, keep=lambda text, answer: True)(counted)
    call("a")
    call("b")
    call("a")  # "a" used last: "b" is the one to go
    call("c")
    counted.calls.clear()
    call("a")
    call("c")
    assert counted.calls == []
    call("b")
    assert counted.calls == ["b"]
