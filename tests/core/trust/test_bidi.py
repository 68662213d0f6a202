"""The characters that reorder text: found anywhere in a text, never in ASCII text."""

from __future__ import annotations

import pytest

from consentgate.core.trust.bidi import BIDI_CONTROLS, has_bidi_controls


@pytest.mark.parametrize("control", sorted(BIDI_CONTROLS))
@pytest.mark.parametrize("where", ["{}", "https://idp.example/?a={}", "é{}x", "{}" + "a" * 400])
def test_a_bidi_control_is_found_wherever_it_is(control: str, where: str) -> None:
    assert has_bidi_controls(where.format(control))


@pytest.mark.parametrize(
    "text", ["", "https://idp.example/oauth2/authorize?state=x", "".join(map(chr, range(128)))]
)
def test_ascii_text_has_no_bidi_control(text: str) -> None:
    assert not has_bidi_controls(text)


def test_right_to_left_letters_are_not_controls() -> None:
    assert not has_bidi_controls("\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627")
