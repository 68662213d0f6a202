"""The fetcher's memory: the document LRU, remembered failures, the per-host budget (pure)."""

from __future__ import annotations

import pytest

from consentgate.clients.client_id_urls import parse_client_id_url
from consentgate.clients.fetch_cache import CachedDocument, DocumentCache, FailureCache, HostBudget
from consentgate.clients.metadata_documents import read_document


def entry(n: int, expires_at: float = 100.0, etag: str | None = None) -> CachedDocument:
    url = f"https://app.example/c{n}"
    body = (
        f'{{"client_id": "{url}", "client_name": "App {n}",'
        ' "redirect_uris": ["https://app.example/cb"]}'
    ).encode()
    return CachedDocument(read_document(body, parse_client_id_url(url)), expires_at, etag=etag)


def test_the_least_recently_used_document_goes_first() -> None:
    cache = DocumentCache(2)
    cache.store(entry(1))
    cache.store(entry(2))
    assert cache.fresh("https://app.example/c1", 0) is not None  # c1 is now the newest use
    cache.store(entry(3))
    assert len(cache) == 2
    assert cache.entry("https://app.example/c2") is None
    assert cache.entry("https://app.example/c1") is not None


def test_a_stale_document_is_kept_for_its_validators_but_never_fresh() -> None:
    cache = DocumentCache(10)
    cache.store(entry(1, expires_at=100.0, etag='"v1"'))
    assert cache.fresh("https://app.example/c1", 99.9) is not None
    assert cache.fresh("https://app.example/c1", 100.0) is None
    stale = cache.entry("https://app.example/c1")
    assert stale is not None and stale.revalidatable
    renewed = cache.extend("https://app.example/c1", 500.0, "max-age=400")
    assert renewed is not None and renewed.expires_at == 500.0 and renewed.etag == '"v1"'
    assert renewed.cache_control == "max-age=400"
    assert cache.extend("https://app.example/absent", 500.0, None) is None


def test_a_failure_is_remembered_until_its_time() -> None:
    failures: FailureCache[str] = FailureCache(2)
    failures.remember("a", 30.0, "timeout")
    assert failures.remembered("a", 29.0) == (30.0, "timeout")
    assert failures.remembered("a", 30.0) is None
    assert failures.remembered("a", 0.0) is None  # forgotten once expired


def test_a_host_gets_its_budget_in_any_window() -> None:
    budget = HostBudget(2, window=60.0)
    assert budget.take("a.example", 0.0) is None
    assert budget.take("a.example", 10.0) is None
    assert budget.take("a.example", 20.0) == 60.0  # the first fetch leaves the window then
    assert budget.take("b.example", 20.0) is None  # another host has its own budget
    assert budget.take("a.example", 60.0) is None
    assert budget.take("a.example", 65.0) == 70.0


def test_a_full_host_table_refuses_new_hosts_until_old_ones_go_idle() -> None:
    budget = HostBudget(5, window=60.0, max_hosts=2)
    assert budget.take("a.example", 0.0) is None
    assert budget.take("b.example", 0.0) is None
    assert budget.take("c.example", 1.0) == 61.0  # fail closed, nobody is forgotten early
    assert budget.take("c.example", 60.0) is None  # a and b are idle now


@pytest.mark.parametrize("size", [0, -1])
def test_a_cache_holds_at_least_one_entry(size: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        DocumentCache(size)
