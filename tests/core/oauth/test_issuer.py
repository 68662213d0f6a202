"""The issuer of the gate's error redirects (pure: the fetch is passed in)."""

from __future__ import annotations

import json

from consentgate.core.oauth.issuer import METADATA_PATH, RETRY_AFTER, IssuerCache
from tests.conftest import FakeClock


class Metadata:
    def __init__(self, status: int, document: object) -> None:
        self.status, self.document, self.asked = status, document, 0

    async def __call__(self, path: str) -> tuple[int, bytes]:
        assert path == METADATA_PATH
        self.asked += 1
        return self.status, json.dumps(self.document).encode()


async def test_the_advertised_issuer_is_kept_byte_for_byte() -> None:
    fetch = Metadata(200, {"issuer": "https://as.example/tenant/"})
    cache = IssuerCache("", FakeClock())
    assert await cache.get(fetch) == "https://as.example/tenant/"
    assert await cache.get(fetch) == "https://as.example/tenant/"
    assert fetch.asked == 1


async def test_an_unreadable_document_leaves_the_issuer_unknown_and_is_read_again_later() -> None:
    clock = FakeClock()
    fetch = Metadata(503, None)
    cache = IssuerCache("", clock)
    assert await cache.get(fetch) is None
    assert await cache.get(fetch) is None
    assert fetch.asked == 1
    fetch.status, fetch.document = 200, {"issuer": "https://as.example"}
    clock.advance(RETRY_AFTER)
    assert await cache.get(fetch) == "https://as.example"


async def test_a_document_read_for_the_endpoints_gives_and_updates_the_issuer() -> None:
    fetch = Metadata(503, None)
    cache = IssuerCache("", FakeClock())
    cache.note({"issuer": "https://as.example"})
    cache.note({"issuer": "ftp://as.example"})  # not an issuer: ignored
    cache.note({})
    assert await cache.get(fetch) == "https://as.example"
    cache.note({"issuer": "https://as.example/"})
    assert await cache.get(fetch) == "https://as.example/"
    assert fetch.asked == 0


async def test_a_configured_issuer_is_not_replaced() -> None:
    cache = IssuerCache("https://configured.example", FakeClock())
    cache.note({"issuer": "https://advertised.example"})
    assert await cache.get(Metadata(200, {"issuer": "https://x.example"})) == (
        "https://configured.example"
    )
