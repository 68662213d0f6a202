"""What the upstream's hand-off to its IdP teaches the consent page (pure)."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from consentgate.core.oauth.idp_handoff import (
    MAX_SCOPES,
    MAX_UPSTREAMS,
    IdpHandoff,
    IdpMemory,
    handoff_key,
    read_handoff,
    read_split_handoff,
    scope_tokens,
)

CALLBACK = "https://gate.example/auth/callback"
CLIENT = "https://client.example/cb"


def handoff(base: str = "https://accounts.example/o/oauth2/auth", **extra: str) -> str:
    query = {
        "client_id": "proxy",
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "state": "s1",
        "scope": "openid email https://api.example/drive.readonly",
        **extra,
    }
    return f"{base}?{urlencode({k: v for k, v in query.items() if v != '-'})}"


def test_an_authorization_request_to_the_idp_gives_its_host_and_scopes() -> None:
    assert read_handoff(handoff(), client_redirect_uri=CLIENT) == IdpHandoff(
        "accounts.example", ("openid", "email", "https://api.example/drive.readonly")
    )


def test_an_internationalised_idp_host_is_shown_as_the_browser_reads_it() -> None:
    read = read_handoff(handoff("https://g\u043e\u043egle.com/auth"), client_redirect_uri=CLIENT)
    assert read is not None and read.host == "xn--ggle-55da.com"


@pytest.mark.parametrize(
    "missing", [{"redirect_uri": "-"}, {"state": "-"}, {"response_type": "-"}, {"error": "x"}]
)
def test_a_location_that_is_not_an_authorization_request_teaches_nothing(
    missing: dict[str, str],
) -> None:
    assert read_handoff(handoff(**missing), client_redirect_uri=CLIENT) is None


def test_a_redirect_back_to_the_clients_own_site_teaches_nothing() -> None:
    """An upstream answering with an error to the client's redirect URI, which the client
    spelled to look like a hand-off, must not teach the gate the client's host."""
    forged = handoff("https://client.example/cb")
    assert read_handoff(forged, client_redirect_uri=CLIENT) is None
    assert read_handoff(forged, client_redirect_uri="https://other.example/cb") is not None


@pytest.mark.parametrize(
    "location",
    [
        handoff(),
        handoff("https://g\u043e\u043egle.com/auth"),
        handoff(state="-"),
        handoff(error="x"),
        handoff("https://client.example/cb"),
        handoff("ftp://accounts.example/auth"),
        handoff("https://accounts.example\u202e/auth"),
    ],
)
def test_a_location_split_by_the_caller_reads_as_the_same_location_unsplit(
    location: str,
) -> None:
    parts = urlsplit(location)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for client in (CLIENT, "https://other.example/cb", ""):
        assert read_split_handoff(
            location, parts, pairs, client_redirect_uri=client
        ) == read_handoff(location, client_redirect_uri=client)


def test_scopes_are_scope_tokens_each_once_and_bounded() -> None:
    assert scope_tokens('a  b a "c" d\x01 e') == ("a", "b", "e")
    assert len(scope_tokens(" ".join(f"s{i}" for i in range(100)))) == MAX_SCOPES


def test_the_memory_keeps_the_latest_hand_off_per_upstream_and_is_bounded() -> None:
    memory = IdpMemory()
    memory.learn("http://up", IdpHandoff("a.example", ()))
    memory.learn("http://up", IdpHandoff("b.example", ("x",)))
    assert memory.known("http://up") == IdpHandoff("b.example", ("x",))
    for i in range(MAX_UPSTREAMS + 1):
        memory.learn(f"http://other{i}", IdpHandoff("c.example", ()))
    assert memory.known("http://up") is None
    assert memory.known("http://other-unknown") is None


def _nothing(reads: list[int]) -> Callable[[], IdpHandoff | None]:
    """A reading that teaches nothing, counted in ``reads``."""

    def read() -> IdpHandoff | None:
        reads.append(1)
        return None

    return read


def _key(location: str, client: str = CLIENT) -> tuple[str, ...]:
    parts = urlsplit(location)
    return handoff_key(parts, parse_qsl(parts.query, keep_blank_values=True), client)


def test_a_hand_off_keyed_like_the_one_learned_last_is_not_read_again() -> None:
    memory, reads = IdpMemory(), list[int]()

    def read() -> IdpHandoff:
        reads.append(1)
        return IdpHandoff("accounts.example", ("openid",))

    memory.learn_from("http://up", _key(handoff(state="s1")), read)
    memory.learn_from("http://up", _key(handoff(state="s2")), read)  # only the state differs
    assert len(reads) == 1
    assert memory.known("http://up") == IdpHandoff("accounts.example", ("openid",))


@pytest.mark.parametrize(
    "other",
    [
        handoff("https://login.example/o/oauth2/auth"),
        handoff(scope="openid"),
        handoff(scope="-"),
        handoff("http://accounts.example/o/oauth2/auth"),
    ],
)
def test_a_hand_off_of_another_idp_or_other_scopes_is_read_again(other: str) -> None:
    memory, reads = IdpMemory(), list[int]()
    memory.learn_from("http://up", _key(handoff()), lambda: IdpHandoff("a.example", ()))
    memory.learn_from("http://up", _key(other), _nothing(reads))
    memory.learn_from("http://up", _key(handoff(), "https://other.example/cb"), lambda: None)
    assert memory.known("http://up") == IdpHandoff("a.example", ())
    assert reads == [1]


def test_a_hand_off_that_teaches_nothing_is_read_again_next_time() -> None:
    memory, reads = IdpMemory(), list[int]()
    for _ in range(2):
        memory.learn_from("http://up", _key(handoff()), _nothing(reads))
    assert reads == [1, 1]
    assert memory.known("http://up") is None


def test_learning_through_the_key_knows_what_reading_every_hand_off_knows() -> None:
    """The key holds everything a reading depends on but whether the Location reads as
    a hand-off at all; a Location that does not teaches nothing, so skipping the read
    of one keyed like the last one learned never changes what is known."""
    chooser = random.Random(7)
    locations = [
        handoff(state=f"s{i}", scope=scope)
        for i, scope in enumerate(["openid", "openid email", "-", "a\u202eb"])
    ]
    locations += [
        handoff(state="-"),
        handoff(error="access_denied"),
        handoff(state="s\u202e"),
        handoff("https://client.example/cb"),
        handoff("https://login.example/auth", state="x"),
        handoff("ftp://accounts.example/auth"),
    ]
    every, keyed = IdpMemory(), IdpMemory()
    for _ in range(500):
        location = chooser.choice(locations)
        client = chooser.choice([CLIENT, "https://other.example/cb"])
        learned = read_handoff(location, client_redirect_uri=client)
        if learned is not None:
            every.learn("http://up", learned)
        keyed.learn_from(
            "http://up",
            _key(location, client),
            functools.partial(read_handoff, location, client_redirect_uri=client),
        )
        assert keyed.known("http://up") == every.known("http://up")


def test_learning_directly_makes_the_next_keyed_hand_off_read_again() -> None:
    memory, reads = IdpMemory(), list[int]()
    memory.learn_from("http://up", _key(handoff()), lambda: IdpHandoff("a.example", ()))
    memory.learn("http://up", IdpHandoff("b.example", ()))
    memory.learn_from("http://up", _key(handoff()), _nothing(reads))
    assert reads == [1]
