"""The decision cache on its own: eviction order, the generation, the change counter
and the own-write rule. Pure: no database, no clock."""

from __future__ import annotations

import pytest

from consentgate.core.oauth.authorization_requests import ApprovalKey
from consentgate.core.signed.records import ClientRecord
from consentgate.store.cache import MISSING, DecisionCache, Grants, covered

YES: Grants = ((frozenset({"openid"}), 100),)


def key(name: str) -> ApprovalKey:
    return ApprovalKey(name, "client-1", "https://app.example/cb", "")


def client(client_id: str) -> ClientRecord:
    return ClientRecord.from_registration({"client_id": client_id}, 1)


def filled(size: int, names: list[str], counter: int = 7) -> DecisionCache:
    cache = DecisionCache(size)
    assert cache.observe(counter)
    for name in names:
        cache.put_grants(key(name), YES, cache.generation)
    return cache


def test_the_oldest_decision_is_evicted_first() -> None:
    cache = filled(3, ["a", "b", "c"])
    cache.put_grants(key("d"), YES, cache.generation)
    assert len(cache) == 3
    assert [name for name in "abcd" if key(name) in cache] == ["b", "c", "d"]
    cache.put_grants(key("b"), (), cache.generation)  # a key already cached is replaced
    assert cache.grants(key("b")) == ()


def test_the_oldest_client_is_evicted_first_and_a_cached_unknown_is_remembered() -> None:
    cache = DecisionCache(2)
    assert cache.observe(1)
    cache.put_client("one", client("one"), cache.generation)
    cache.put_client("none", None, cache.generation)
    cache.put_client("three", client("three"), cache.generation)
    assert cache.client("one") is MISSING
    assert cache.client("none") is None
    assert cache.client("three") == client("three")
    assert len(cache) == 0  # clients are not decisions


def test_an_answer_read_before_an_invalidation_is_not_put_back() -> None:
    cache = filled(10, [])
    generation = cache.generation
    cache.clear()  # a change happened while the read was in flight
    cache.put_grants(key("a"), YES, generation)
    cache.put_client("one", client("one"), generation)
    assert cache.grants(key("a")) is None
    assert cache.client("one") is MISSING


def test_a_moved_counter_empties_the_cache_and_an_unknown_one_disables_it() -> None:
    cache = filled(10, ["a", "b"], counter=7)
    assert cache.observe(7)
    assert len(cache) == 2
    assert cache.observe(8)  # someone changed something: usable, but empty
    assert len(cache) == 0
    assert cache.seen_counter == 8
    cache.put_grants(key("a"), YES, cache.generation)
    assert not cache.observe(None)  # cannot tell: not usable, and emptied
    assert len(cache) == 0


def test_an_own_write_drops_only_its_own_key_when_nobody_else_wrote() -> None:
    cache = filled(10, ["a", "b"], counter=7)
    cache.put_client("one", client("one"), cache.generation)
    cache.put_client("two", client("two"), cache.generation)
    generation = cache.generation
    cache.after_own_write(7, 9, key=key("a"), client_id="two")
    assert [name for name in "ab" if key(name) in cache] == ["b"]
    assert cache.client("one") == client("one")
    assert cache.client("two") is MISSING
    assert cache.seen_counter == 9
    assert cache.generation != generation  # a read in flight does not put "a" back
    assert cache.observe(9)  # the counter after our commit: nothing else to forget
    assert key("b") in cache


@pytest.mark.parametrize("seen", [None, 6])
def test_an_own_write_after_someone_elses_empties_everything(seen: int | None) -> None:
    cache = DecisionCache(10)
    if seen is not None:
        assert cache.observe(seen)
    cache.put_grants(key("b"), YES, cache.generation)
    cache.after_own_write(7, 8, key=key("a"))  # 7 != what the cache was filled under
    assert len(cache) == 0
    assert cache.observe(8)
    assert cache.seen_counter == 8


def test_a_cache_of_size_zero_keeps_nothing_and_a_negative_size_is_refused() -> None:
    cache = DecisionCache(0)
    assert not cache.enabled
    cache.put_grants(key("a"), YES, cache.generation)
    cache.put_client("one", None, cache.generation)
    assert len(cache) == 0
    assert cache.client("one") is MISSING
    with pytest.raises(ValueError, match="not be negative"):
        DecisionCache(-1)


def test_covered_is_the_subset_rule_with_expiry_and_empty_only_by_empty() -> None:
    grants: Grants = ((frozenset({"read", "write"}), 100), (frozenset(), 50))
    assert covered(frozenset({"read"}), grants, 99.9)
    assert not covered(frozenset({"read"}), grants, 100)  # expired at its second
    assert not covered(frozenset({"read", "admin"}), grants, 0)
    assert covered(frozenset(), grants, 49)  # the scopeless approval
    assert not covered(frozenset(), grants, 50)  # ... expired; "read" does not cover it
    assert not covered(frozenset({"read"}), (), 0)
