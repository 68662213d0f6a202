"""What the consent page says about a client (pure function)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from consentgate.core.clientinfo import (
    ConsentView,
    build_approval_view,
    build_view,
    clean_name,
    safe_http_url,
    same_site_host,
)
from consentgate.core.oauth.authorization_requests import (
    parse_authorization_request,
    parse_parameters,
)
from consentgate.core.translation import PLAIN_ENGLISH
from tests.core.signed.test_records import make_record


@dataclass(frozen=True)
class Meta:
    client_name: str | None = "App"
    client_uri: str | None = None
    logo_uri: str | None = None
    tos_uri: str | None = None
    policy_uri: str | None = None


def request(redirect: str = "https://app.example.com/cb", client_id: str = "c") -> object:
    from urllib.parse import urlencode

    return parse_authorization_request(
        parse_parameters(
            urlencode({"client_id": client_id, "redirect_uri": redirect, "scope": "a b"})
        ),
        allow_request_uri=False,
        allow_request_object=False,
    )


@pytest.mark.parametrize(
    "value",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "data:text/html,x",
        "https://a.example/\x00x",
        "https://a.example/ x",
        "https://user:pw@a.example/",
        "//a.example/",
        "ftp://a.example/",
        None,
        "",
    ],
)
def test_only_plain_http_links_are_shown(value: str | None) -> None:
    assert safe_http_url(value) is None


def test_http_links_keep_their_host() -> None:
    assert safe_http_url("https://Docs.Example.com/p?q=1") == (
        "https://Docs.Example.com/p?q=1",
        "docs.example.com",
    )


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("example.com", "example.com", True),
        ("app.example.com", "example.com", True),
        ("example.com", "app.example.com", True),
        ("evilexample.com", "example.com", False),
        ("example.com.evil.net", "example.com", False),
    ],
)
def test_hosts_compare_by_site(a: str, b: str, same: bool) -> None:
    assert same_site_host(a, b) is same


def test_names_lose_control_characters_and_are_bounded() -> None:
    assert clean_name("Good\u0000 App\n") == "Good App"
    assert clean_name("   ") is None
    long = clean_name("x" * 500)
    assert long is not None and len(long) == 120


def test_view_of_a_known_client_lists_safe_links_and_flags_other_sites() -> None:
    view = build_view(
        request(),  # type: ignore[arg-type]
        Meta(
            client_uri="https://app.example.com",
            policy_uri="https://other.example/p",
            tos_uri="javascript:x",
            logo_uri="https://app.example.com/logo.png",
        ),
        scope_descriptions={"a": "Alpha"},
        show_logos=False,
        remember_mode=True,
    )
    assert [(link.label, link.host_differs) for link in view.links] == [
        ("Website", False),
        ("Privacy policy", True),
    ]
    assert view.logo_url is None
    assert [(s.scope, s.description) for s in view.scopes] == [("a", "Alpha"), ("b", None)]
    assert view.verified
    assert view.offer_remember
    assert any("different site" in w.text for w in view.warnings)


def test_logos_load_only_when_enabled_and_only_over_https() -> None:
    shown = build_view(
        request(),  # type: ignore[arg-type]
        Meta(logo_uri="https://app.example.com/logo.png"),
        scope_descriptions={},
        show_logos=True,
        remember_mode=True,
    )
    assert shown.logo_url == "https://app.example.com/logo.png"
    plain = build_view(
        request(),  # type: ignore[arg-type]
        Meta(logo_uri="http://app.example.com/logo.png"),
        scope_descriptions={},
        show_logos=True,
        remember_mode=True,
    )
    assert plain.logo_url is None


def test_an_unknown_client_is_unverified_and_says_so_first() -> None:
    view = build_view(
        request(),  # type: ignore[arg-type]
        None,
        scope_descriptions={},
        show_logos=False,
        remember_mode=False,
    )
    assert not view.verified
    assert view.client_name is None
    assert view.warnings[0].level == "danger"
    assert not view.offer_remember


def test_an_approval_is_described_like_the_consent_page_describes_its_request() -> None:
    record = make_record(redirect_uri="https://g\u043e\u043egle.com/cb", resource="https://r")
    view = build_approval_view(
        record,
        Meta(client_name="  Claude\x07 "),
        scope_descriptions={"openid": "Sign you in"},
        now=record.granted_at,
    )
    assert view.client_name == "Claude"  # cleaned, as on the consent page
    assert view.verified
    assert view.redirect is not None and view.redirect.host == "xn--ggle-55da.com"
    assert [(s.scope, s.description) for s in view.scopes] == [
        ("openid", "Sign you in"),
        ("profile", None),
    ]
    assert (view.approved_at, view.expires_at) == ("2023-11-14 22:13 UTC", "2023-12-14 22:13 UTC")
    assert view.expires_in == "in 30 days"
    assert not view.any_port


def test_an_approval_of_an_unknown_client_or_a_loopback_uri_says_so() -> None:
    record = make_record(redirect_uri="http://127.0.0.1/callback")
    view = build_approval_view(record, None, scope_descriptions={}, now=record.granted_at)
    assert view.client_name is None and not view.verified
    assert view.any_port  # recorded without its port (RFC 8252 §7.3)
    odd = build_approval_view(
        make_record(redirect_uri="no scheme"), None, scope_descriptions={}, now=0
    )
    assert odd.redirect is None and odd.redirect_uri == "no scheme"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "within a day"),
        (86_399, "within a day"),
        (86_400, "in 1 day"),
        (2 * 86_400, "in 2 days"),
    ],
)
def test_remaining_time_reads_in_days(seconds: float, text: str) -> None:
    assert PLAIN_ENGLISH.within(seconds) == text
    assert PLAIN_ENGLISH.moment(0) == "1970-01-01 00:00 UTC"


BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def _shown_text(view: object) -> str:
    """Every text field of a view, nested dataclasses included, as one string."""
    import dataclasses

    if dataclasses.is_dataclass(view) and not isinstance(view, type):
        return " ".join(_shown_text(getattr(view, f.name)) for f in dataclasses.fields(view))
    if isinstance(view, tuple):
        return " ".join(_shown_text(item) for item in view)
    return view if isinstance(view, str) else ""


def test_bidi_controls_are_removed_from_every_client_provided_text() -> None:
    """A right-to-left override in a client's words would reverse the gate's own words
    after it on the page (Unicode UAX #9; the "Trojan Source" class, CVE-2021-42574)."""
    from urllib.parse import urlencode

    every = BIDI_CONTROLS
    auth = parse_authorization_request(
        parse_parameters(
            urlencode(
                {
                    "client_id": f"c{every}1",
                    "redirect_uri": f"https://app.example.com/cb{every}/x",
                    "scope": f"read{every} write",
                    "resource": f"https://r.example/{every}",
                }
            )
        ),
        allow_request_uri=False,
        allow_request_object=False,
    )
    view = build_view(
        auth,
        Meta(client_name=f"\u202eEvil{every} App", client_uri=f"https://app.example.com/{every}"),
        scope_descriptions={},
        show_logos=False,
        remember_mode=True,
    )
    shown = _shown_text(view)
    assert not set(shown) & set(every), [c for c in shown if c in every]
    assert view.client_name == "Evil App"
    assert view.redirect is not None and view.redirect.after_host == "/cb/x"
    assert [s.scope for s in view.scopes] == ["read", "write"]
    record = make_record(redirect_uri=f"https://app.example.com/cb{every}")
    approval = build_approval_view(
        record, Meta(client_name=f"Evil{every}"), scope_descriptions={}, now=record.granted_at
    )
    assert not set(_shown_text(approval)) & set(every)
    assert approval.client_name == "Evil"


def test_a_right_to_left_name_keeps_its_letters() -> None:
    assert clean_name("\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd") == "שלום עולם"
    assert clean_name("\u202b\u0645\u0631\u062d\u0628\u0627\u202c") == "مرحبا"


# --- a client named by a URL (its metadata document stands in for the registration) ---


def cimd_view(
    redirect: str,
    meta: Meta,
    *,
    localhost_only: bool = False,
    show_logos: bool = True,
    first_seen_at: float | None = None,
    now: float = 0.0,
) -> ConsentView:
    return build_view(
        request(redirect, client_id="https://app.example.com/oauth/client.json"),  # type: ignore[arg-type]
        meta,
        scope_descriptions={},
        show_logos=show_logos,
        remember_mode=True,
        verified_domain="app.example.com",
        localhost_only=localhost_only,
        first_seen_at=first_seen_at,
        now=now,
        service_name="Acme MCP",
    )


def test_a_client_with_a_document_is_verified_by_its_domain_not_marked_unverified() -> None:
    view = cimd_view("https://app.example.com/cb", Meta(client_name="Example Notes"))
    assert view.verified and view.verified_domain == "app.example.com"
    assert view.client_name == "Example Notes"
    assert not any("Unverified" in w.text for w in view.warnings)


def test_a_document_listing_only_loopback_uris_gets_the_impersonation_warning() -> None:
    warned = cimd_view("http://127.0.0.1:5000/cb", Meta(), localhost_only=True)
    texts = [w.text for w in warned.warnings]
    assert any("cannot prevent localhost impersonation" in t for t in texts)
    assert not any("identifies itself by" in t for t in texts)  # the loopback lines say it
    quiet = cimd_view("http://127.0.0.1:5000/cb", Meta(), localhost_only=False)
    assert not any("impersonation" in w.text for w in quiet.warnings)


def test_links_of_a_url_client_are_flagged_when_they_leave_its_verified_domain() -> None:
    view = cimd_view(
        "https://elsewhere.example/cb",
        Meta(
            client_uri="https://docs.app.example.com/",
            policy_uri="https://app.example.com.evil.example/privacy",
            tos_uri="https://notapp.example.com/tos",
        ),
    )
    flags = {link.label: link.host_differs for link in view.links}
    assert flags == {"Website": False, "Privacy policy": True, "Terms of service": True}
    assert any("outside its verified domain" in w.text for w in view.warnings)


def test_a_url_client_never_gets_a_logo_even_with_logos_on() -> None:
    view = cimd_view("https://app.example.com/cb", Meta(logo_uri="https://app.example.com/l.png"))
    assert view.logo_url is None


def test_an_approval_of_a_url_client_shows_its_verified_domain_instead_of_a_name() -> None:
    record = make_record(
        client_id="https://notes.example/client.json", redirect_uri="http://127.0.0.1/callback"
    )
    view = build_approval_view(
        record, None, scope_descriptions={}, now=record.granted_at, verified_domain="notes.example"
    )
    assert view.verified and view.verified_domain == "notes.example"
    assert view.client_name is None
    assert view.client_id == "https://notes.example/client.json"
    unknown = build_approval_view(make_record(), None, scope_descriptions={}, now=0)
    assert unknown.verified_domain is None and not unknown.verified


# --- a decision that is easier to get right --------------------------------------------


def plain_view(**options: object) -> ConsentView:
    """A registered client sending the result to its own https site: no warning."""
    return build_view(
        request(),  # type: ignore[arg-type]
        Meta(),
        scope_descriptions={},
        show_logos=False,
        remember_mode=True,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "less than a minute ago"),
        (59, "less than a minute ago"),
        (60, "1 minute ago"),
        (240, "4 minutes ago"),
        (7200, "2 hours ago"),
        (86400 * 3 + 5, "3 days ago"),
    ],
)
def test_a_clients_age_reads_as_people_say_it(seconds: float, text: str) -> None:
    assert PLAIN_ENGLISH.ago(seconds) == text


def test_a_client_registered_minutes_ago_is_a_warning_and_makes_deny_the_first_action() -> None:
    view = plain_view(registered_at=1000.0, now=1240.0, service_name="Acme MCP")
    assert view.client_age == "4 minutes ago"
    assert any("registered with Acme MCP 4 minutes ago" in w.text for w in view.warnings)
    assert view.deny_first


def test_a_client_registered_long_ago_is_only_a_fact_and_allow_stays_first() -> None:
    view = plain_view(registered_at=1000.0, now=1000.0 + 3 * 86400)
    assert view.client_age == "3 days ago"
    assert view.warnings == ()
    assert not view.deny_first


def test_a_client_without_a_known_registration_time_says_nothing_about_its_age() -> None:
    assert plain_view().client_age is None
    url_client = cimd_view("https://app.example.com/cb", Meta())
    assert url_client.client_age is None


def test_a_url_client_first_seen_minutes_ago_is_a_warning_and_makes_deny_the_first_action() -> None:
    """For a client named by a URL the first sighting is the first time anyone used it
    at this gate: a look-alike made for the attack is minutes old."""
    view = cimd_view("https://app.example.com/cb", Meta(), first_seen_at=1000.0, now=1240.0)
    assert view.client_seen == "4 minutes ago"
    assert view.client_age is None  # it never registered
    (warning,) = view.warnings
    assert "first used with Acme MCP 4 minutes ago: nobody had used it here" in warning.text
    assert view.deny_first


def test_a_url_client_first_seen_weeks_ago_shows_its_age_and_allow_stays_first() -> None:
    view = cimd_view(
        "https://app.example.com/cb", Meta(), first_seen_at=1000.0, now=1000.0 + 40 * 86400
    )
    assert view.client_seen == "40 days ago"
    assert view.warnings == ()
    assert not view.deny_first


def test_a_first_sighting_is_not_a_registration_for_a_client_without_a_document() -> None:
    assert plain_view(first_seen_at=1000.0, now=1240.0).client_seen is None


def test_step_up_marks_the_already_approved_scopes_and_the_new_ones() -> None:
    view = plain_view(approved_scopes=frozenset({"a"}))
    assert view.step_up
    assert [(s.scope, s.already_approved) for s in view.scopes] == [("a", True), ("b", False)]
    assert not plain_view(approved_scopes=frozenset({"a", "b", "c"})).step_up
    assert not plain_view().step_up


def test_the_idp_host_and_its_scopes_are_shown_without_bidi_controls() -> None:
    view = plain_view(idp_host="accounts.example", idp_scopes=("openid", "dri\u202eve"))
    assert view.idp_host == "accounts.example"
    assert view.idp_scopes == ("openid", "drive")
