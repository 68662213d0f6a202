"""URLs from untrusted input, read as a browser reads them: split without crashing,
the scheme and the authority as the browser sees them, and the host the browser really
contacts (WHATWG URL Standard host parsing, UTS #46), which the consent page shows."""

from __future__ import annotations

import ipaddress
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.core.trust import urls
from consentgate.core.trust.urls import (
    BadURL,
    browser_host,
    is_plainly_spelled,
    split_authority,
    split_url,
)

# --- split_url -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "https://[::1/cb",  # an IPv6 literal not closed
        "https://a.example:99999/",  # a port out of range
        "https://a.example:x/",  # a port that is not a number
        "https://a\uff0fb.example/cb",  # a full-width slash that NFKC turns into '/'
        "https://a\uff03b.example/cb",  # a full-width '#'
    ],
)
def test_a_url_urlsplit_chokes_on_raises_bad_url_only(text: str) -> None:
    with pytest.raises(BadURL, match="not a well-formed URL"):
        split_url(text)


@pytest.mark.parametrize(
    ("text", "scheme", "netloc"),
    [
        # mixed case, whitespace and control characters do not hide a scheme from the
        # check (Cloudflare workers-oauth-provider #97): the browser ignores them too
        ("HtTpS://client.example/cb", "https", "client.example"),
        (" https://client.example/cb", "https", "client.example"),
        ("\x00\x1f https://client.example/cb", "https", "client.example"),
        ("JavaScript:alert(1)", "javascript", ""),
        ("ja\tvascript:alert(1)", "javascript", ""),
        ("java\nscript:alert(1)", "javascript", ""),
        ("\x01javascript:alert(1)", "javascript", ""),
        ("ht\rtps://client.example/cb", "https", "client.example"),
    ],
)
def test_the_scheme_is_read_as_the_browser_reads_it(text: str, scheme: str, netloc: str) -> None:
    parts = split_url(text)
    assert (parts.scheme, parts.netloc) == (scheme, netloc)


# --- split_authority ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("netloc", "expected"),
    [
        ("client.example", ("", "client.example", "")),
        ("client.example:8443", ("", "client.example", "8443")),
        ("user:pw@client.example:1", ("user:pw", "client.example", "1")),
        # zitadel #12559: what looks like a loopback host is userinfo; the host is
        # example.com
        ("localhost:8090%25@example.com", ("localhost:8090%25", "example.com", "")),
        ("localhost:8090@example.com", ("localhost:8090", "example.com", "")),
        ("a@b@evil.example", ("a@b", "evil.example", "")),  # the last '@' ends userinfo
        ("[::1]", ("", "[::1]", "")),
        ("[::1]:80", ("", "[::1]", "80")),
        ("u@[::1]:80", ("u", "[::1]", "80")),
        ("host:", ("", "host", "")),
    ],
)
def test_an_authority_splits_at_its_last_at_sign_and_last_colon(
    netloc: str, expected: tuple[str, str, str]
) -> None:
    assert split_authority(netloc) == expected


def test_a_percent_escaped_loopback_in_userinfo_does_not_make_the_host_loopback() -> None:
    parts = split_url("http://localhost:8090%25@example.com/cb")
    _, host, port = split_authority(parts.netloc)
    assert browser_host(host) == "example.com"
    assert (parts.hostname, parts.port, port) == ("example.com", None, "")


@pytest.mark.parametrize(("netloc", "message"), [("[::1", "not closed"), ("[::1]x", "follows")])
def test_a_broken_ipv6_authority_is_refused(netloc: str, message: str) -> None:
    with pytest.raises(BadURL, match=message):
        split_authority(netloc)


# --- browser_host ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelled", "host"),
    [
        ("client.example", "client.example"),
        ("CLIENT.Example", "client.example"),
        ("client.example.", "client.example."),  # the trailing dot is kept
        # mixed-script look-alikes become punycode, as browsers show them
        ("g\u043e\u043egle.com", "xn--ggle-55da.com"),  # Cyrillic o's
        ("\u0430pple.com", "xn--pple-43d.com"),  # a Cyrillic a
        ("XN--GGLE-55DA.COM", "xn--ggle-55da.com"),
        ("fa\u00df.de", "xn--fa-hia.de"),  # non-transitional: ß stays ß
        ("e\u0301.com", "xn--9ca.com"),  # NFC first
        ("\u05d0\u05d1.com", "xn--4dbc.com"),  # a right-to-left label on its own
        # separators and full-width forms a browser maps to ASCII
        ("claude.ai\u3002evil.com", "claude.ai.evil.com"),  # ideographic full stop
        ("claude.ai\uff0eevil.com", "claude.ai.evil.com"),  # full-width full stop
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com", "example.com"),
        ("a\u00ad.com", "a.com"),  # a soft hyphen is ignored
        # percent-escapes are decoded before anything else
        ("%65vil.com", "evil.com"),
        ("a%2eevil.com", "a.evil.com"),
        # IPv4 in any number form is a dotted quad
        ("127.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("1.2.3.4.", "1.2.3.4"),
        ("%31%32%37.0.0.1", "127.0.0.1"),
        # IPv6 compressed, lower case, no dotted tail
        ("[0:0:0:0:0:0:0:1]", "[::1]"),
        ("[2001:DB8:0:0:1:0:0:1]", "[2001:db8::1:0:0:1]"),  # the first longest run
        ("[1:0:0:2:0:0:0:3]", "[1:0:0:2::3]"),  # the longest run, not the first
        ("[1:2:3:4:5:6:0:8]", "[1:2:3:4:5:6:0:8]"),  # a single zero is not compressed
        ("[::ffff:127.0.0.1]", "[::ffff:7f00:1]"),
    ],
)
def test_the_host_is_the_one_the_browser_contacts(spelled: str, host: str) -> None:
    assert browser_host(spelled) == host


@pytest.mark.parametrize(
    ("spelled", "message"),
    [
        ("", "no host"),
        ("[::1", "not closed"),
        ("[fe80::1%25eth0]", "zone identifier"),
        ("[1:2:3]", "not a valid IPv6"),
        ("1.2.3.4.5", "not one"),
        ("256.0.0.1", "out of range"),
        ("1.2.3.256", "out of range"),
        ("4294967296", "out of range"),
        ("0x100000000", "out of range"),
        ("09.1.1.1", "not one"),  # 9 is not an octal digit
        ("client.example.1", "not one"),  # a name ending in a number is an IPv4 attempt
        ("%ff.example", "UTF-8"),
        ("a b.example", "no browser accepts"),
        ("evil.example%2f", "no browser accepts"),  # a decoded '/'
        ("evil.example%40client.example", "no browser accepts"),  # a decoded '@'
        ("xn--a.example", "xn--"),
        ("xn--ggle-55d\u0430.com", "non-ASCII"),
        ("a\u05d0.example", "directions"),  # left-to-right and right-to-left in one label
    ],
)
def test_a_host_no_browser_would_contact_is_refused(spelled: str, message: str) -> None:
    with pytest.raises(BadURL, match=message):
        browser_host(spelled)


def test_an_invisible_joiner_out_of_place_is_refused() -> None:
    with pytest.raises(BadURL, match="invisible joiner"):
        browser_host("a\u200db.example")


def test_an_invisible_joiner_out_of_place_is_not_called_mixed_directions() -> None:
    with pytest.raises(BadURL) as raised:
        browser_host("a\u200db.example")
    assert "directions" not in str(raised.value)


def test_a_host_read_again_is_answered_from_memory_and_a_refusal_is_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls._remembered_host.cache_clear()
    mapped: list[str] = []
    to_ascii = urls._domain_to_ascii

    def counting(domain: str) -> str:
        mapped.append(domain)
        return to_ascii(domain)

    monkeypatch.setattr(urls, "_domain_to_ascii", counting)
    for _ in range(3):
        assert browser_host("G\u043e\u043egle.com") == "xn--ggle-55da.com"
        with pytest.raises(BadURL):
            browser_host("xn--a.example")
    assert mapped == ["G\u043e\u043egle.com", *["xn--a.example"] * 3]


def test_the_memory_of_hosts_is_bounded() -> None:
    for number in range(urls.HOST_MEMORY + 50):
        assert browser_host(f"h{number}.example") == f"h{number}.example"
    assert urls._remembered_host.cache_info().currsize == urls.HOST_MEMORY
    before = urls._remembered_host.cache_info()
    long = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 63, "example"])
    assert browser_host(long) == long  # longer than a DNS name can be: read, not kept
    assert urls._remembered_host.cache_info() == before


_HOST_CHARS = st.sampled_from(
    [
        *"abcXYZ019.-%",
        *["0x", "%2e", "%65", "xn--", "\u043e", "\u0430", "\u3002", "\uff0e"],
        *["\u00df", "\uff45", "\u0301", "\u00ad", "\u05d0", "\u200d", "\u0660", "\u2163"],
    ]
)
_HOSTS = st.one_of(
    st.lists(_HOST_CHARS, min_size=1, max_size=12).map("".join),
    st.text(max_size=20),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a.exploded}]"),
)


@settings(max_examples=500, deadline=None)
@given(spelled=_HOSTS)
def test_browser_host_is_idempotent_on_its_own_output(spelled: str) -> None:
    try:
        host = browser_host(spelled)
    except BadURL:
        return
    assert host.isascii()
    assert browser_host(host) == host
    assert is_plainly_spelled(host, host)


@settings(max_examples=200, deadline=None)
@given(address=st.ip_addresses(v=4))
def test_every_ipv4_number_form_of_an_address_is_that_address(
    address: ipaddress.IPv4Address,
) -> None:
    value = int(address)
    octets = address.packed
    forms = [
        str(value),
        hex(value),
        ".".join(f"0{o:o}" for o in octets),
        ".".join(hex(o) for o in octets),
        f"{octets[0]}.{int.from_bytes(octets[1:], 'big')}",
    ]
    for form in forms:
        assert browser_host(form) == str(address), form


# --- is_plainly_spelled ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelled", "plain"),
    [
        ("client.example", True),
        ("CLIENT.example", True),  # case aside
        ("client.example.", True),  # a trailing dot aside
        ("127.0.0.1", True),
        ("[::1]", True),
        ("%65vil.com", False),  # an escape
        ("0x7f.1", False),  # a number form
        ("2130706433", False),
        ("[0::1]", False),  # an uncompressed IPv6
        ("g\u043e\u043egle.com", False),  # a look-alike
        ("claude.ai\u3002evil.com", False),  # a full stop that is not '.'
        ("\uff45xample.com", False),  # a full-width letter
    ],
)
def test_a_host_is_plainly_spelled_only_when_written_as_the_browser_reads_it(
    spelled: str, plain: bool
) -> None:
    assert is_plainly_spelled(spelled, browser_host(spelled)) is plain


_QUERY_TEXT = st.lists(
    st.sampled_from([*"ab=&+%;2EFzé€ \u202e", "%41", "%E2%82%AC", "%e2%82", "%zz"]),
    max_size=30,
).map("".join)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "a=1&b=2",
        "a=%zz&b=%E2%82%AC&c=%e2%82&d&e=&=f&&g=h+i%2Bj",
        "state=%41%42&state=x",
        "x=\u00e9%41&y=%C3%A9",
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A41234%2Fauth%2Fcallback&scope=openid+email",
        "a;b=c&d=e;f",
        "%73tate=1",
        "a==b&=&&&",
    ],
)
def test_query_pairs_reads_a_query_as_parse_qsl_keeping_blank_values(query: str) -> None:
    assert urls.query_pairs(query) == urllib.parse.parse_qsl(query, keep_blank_values=True)


@settings(max_examples=400)
@given(_QUERY_TEXT)
def test_query_pairs_reads_any_query_as_parse_qsl_keeping_blank_values(query: str) -> None:
    assert urls.query_pairs(query) == urllib.parse.parse_qsl(query, keep_blank_values=True)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "a=%zz&b=%E2%82%AC&c=%e2%82&d&e=&=f&&g=h+i%2Bj",
        "state=%41%42&state=x",
        "x=\u00e9%41&y=%C3%A9",
        "redirect_uri=http%3A%2F%2F127.0.0.1%3A41234%2Fauth%2Fcallback&scope=openid+email",
        "%73tate=%2Fa&%72edirect_uri=%2Fb",
        "a==b&=&&&",
    ],
)
def test_handoff_pairs_reads_a_query_as_parse_qsl_keeping_blank_values(query: str) -> None:
    for _ in range(2):  # the second time from what was remembered
        assert urls.handoff_pairs(query) == urllib.parse.parse_qsl(query, keep_blank_values=True)


@settings(max_examples=400)
@given(_QUERY_TEXT)
def test_handoff_pairs_reads_any_query_as_parse_qsl_keeping_blank_values(query: str) -> None:
    for _ in range(2):
        assert urls.handoff_pairs(query) == urllib.parse.parse_qsl(query, keep_blank_values=True)


def test_a_handoff_state_is_decoded_afresh_and_never_remembered() -> None:
    # The hand-off's constant values (the callback, the resource) are remembered; its
    # state, the flow's own value, is not kept in memory after the request.
    urls.handoff_pairs("redirect_uri=https%3A%2F%2Fgate.example%2Fcb")
    kept = urls.remembered_handoff_values()
    assert "https%3A%2F%2Fgate.example%2Fcb" in kept
    urls.handoff_pairs("state=s%2Fecret-1&%73tate=s%2Fecret-2&redirect_uri=x")
    assert not any("ecret" in text for text in urls.remembered_handoff_values())
