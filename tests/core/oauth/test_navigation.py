"""Which requests to the authorization endpoint are a person's browser opening it (pure)."""

from __future__ import annotations

import pytest

from consentgate.core.oauth.navigation import is_navigation


@pytest.mark.parametrize(
    ("mode", "dest", "accept"),
    [
        ("navigate", "document", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("navigate", "document", "application/json"),  # fetch metadata decides
        ("navigate", None, None),
        (None, None, "text/html"),  # a browser without fetch metadata
        (None, None, "*/*"),  # curl
        (None, None, None),
        (None, None, ""),
        (None, None, "application/json, */*;q=0.1"),  # accepts HTML, if reluctantly
        (None, None, "application/json, text/*"),
        (None, None, "image/png"),  # asks for no JSON: not a program we recognise
    ],
)
def test_these_requests_are_navigations(
    mode: str | None, dest: str | None, accept: str | None
) -> None:
    assert is_navigation(fetch_mode=mode, fetch_dest=dest, accept=accept)


@pytest.mark.parametrize(
    ("mode", "dest", "accept"),
    [
        ("cors", None, "application/json"),  # mcp-remote: Node's fetch adds the mode
        ("cors", "empty", "*/*"),  # a page's fetch()
        ("no-cors", "image", "image/*"),
        ("navigate", "iframe", "text/html"),  # a frame is not the top-level document
        ("NAVIGATE", "Embed", "text/html"),
        (None, None, "application/json"),  # a program without fetch metadata
        (None, None, "Application/JSON; charset=utf-8"),
        (None, None, "application/json, text/html;q=0"),
        (None, None, "application/json, */*;q=0"),
        (None, None, "application/json;q=0.5, text/html;q=0, */*;q=0.9"),
    ],
)
def test_these_requests_are_not_navigations(
    mode: str | None, dest: str | None, accept: str | None
) -> None:
    assert not is_navigation(fetch_mode=mode, fetch_dest=dest, accept=accept)


def test_an_unreadable_weight_counts_as_zero() -> None:
    assert not is_navigation(fetch_mode=None, fetch_dest=None, accept="application/json, */*;q=x")
