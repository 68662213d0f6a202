"""Log formats and redaction."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import time
import urllib.parse
from collections.abc import Callable
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.audit.events import AuditEvent, direct_sink, log_sink
from consentgate.core.trust.redact import REDACTED, SECRET_PARAMETERS, redact_query, redact_target
from consentgate.logs.formatters import Timestamps, quoted_path, text_line, text_value
from consentgate.logs.line_writers import AccessLines, DirectLines, _milliseconds
from consentgate.logs.loggers import ACCESS, AUDIT, configure_logging

#: configure_logging and serve change the consentgate logger: put back after each test.
pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("code=abc&state=xyz&scope=openid", "code=[redacted]&state=[redacted]&scope=openid"),
        ("client_secret=s3&client_id=c", "client_secret=[redacted]&client_id=c"),
        ("access%5Ftoken=t&x=1", "access%5Ftoken=[redacted]&x=1"),
        ("CODE=abc", "CODE=[redacted]"),
        ("flag&code", "flag&code"),
        ("", ""),
    ],
)
def test_secret_parameters_are_redacted_from_queries(query: str, expected: str) -> None:
    assert redact_query(query) == expected


def reference_redact_query(query: str) -> str:
    """The rule as first written (every name decoded): the faster one must agree."""
    if not query:
        return query
    parts = []
    for item in query.split("&"):
        name, sep, _value = item.partition("=")
        decoded = urllib.parse.unquote_plus(name).lower()
        parts.append(f"{name}={REDACTED}" if sep and decoded in SECRET_PARAMETERS else item)
    return "&".join(parts)


# Secret names as they are, in another case, percent-encoded, with a "+", with a Kelvin
# sign (which lower-cases to an ASCII "k"), and names that are not secret.
_QUERY_NAMES = st.sampled_from(
    [
        *sorted(SECRET_PARAMETERS),
        *("Code", "STATE", "access%5Ftoken", "ID%5fTOKEN", "to\u212aen"),
        *("client+secret", "x", "", "%"),
    ]
)
_QUERY_ITEMS = st.one_of(
    st.builds(
        lambda n, sep, v: n + sep + v, _QUERY_NAMES, st.sampled_from(["=", "", "=="]), st.text()
    ),
    st.text(),
)


@given(st.lists(_QUERY_ITEMS, max_size=6).map("&".join))
def test_the_fast_redaction_is_the_reference_rule(query: str) -> None:
    assert redact_query(query) == reference_redact_query(query)


def test_long_targets_are_truncated() -> None:
    assert redact_target("/x?" + "a" * 5000, max_length=100).endswith("...(truncated)")


def test_json_format_emits_one_object_per_line_with_fields() -> None:
    stream = io.StringIO()
    configure_logging(format="json", level="info", stream=stream)
    logging.getLogger("consentgate.access").info(
        "request", extra={"fields": {"status": 200, "path": "/x"}}
    )
    logging.getLogger("consentgate.audit").debug("hidden below the level")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert document["logger"] == "consentgate.access"
    assert document["status"] == 200
    assert document["path"] == "/x"


def test_text_format_appends_fields_as_key_value() -> None:
    stream = io.StringIO()
    configure_logging(format="text", level="info", stream=stream)
    logging.getLogger("consentgate").info(
        "listening", extra={"fields": {"address": "http://127.0.0.1:8080", "note": "a b"}}
    )
    line = stream.getvalue().strip()
    assert "consentgate listening address=http://127.0.0.1:8080" in line
    assert 'note="a b"' in line


# --- the batched access log ------------------------------------------

ACCESS_FIELDS = {
    "request_id": "0123456789abcdef",
    "client": "192.0.2.7",
    "method": "GET",
    "path": "/mcp?code=[redacted]&q=a b",
    "status": 200,
    "bytes": 512,
    "duration_ms": 1.25,
    "upstream_ms": None,
    "ended": "client",
}


@pytest.mark.parametrize("format", ["text", "json"])
@pytest.mark.parametrize("static", [None, {"worker": 2}])
def test_batched_access_lines_are_the_logging_lines_byte_for_byte(
    format: str, static: dict[str, int] | None
) -> None:
    """What the batched writer writes is what the logger would have written."""
    through_logging = io.StringIO()
    configure_logging(format=format, stream=through_logging, static=static)
    created = 1_800_000_123.456
    record = logging.getLogger(ACCESS).makeRecord(
        ACCESS, logging.INFO, __file__, 1, "request", (), None, extra={"fields": ACCESS_FIELDS}
    )
    record.created = created
    logging.getLogger(ACCESS).handle(record)

    batched = io.StringIO()
    scheduled: list[Callable[[], None]] = []
    lines = AccessLines(batched, scheduled.append, format=format, static=static)
    lines.write(dict(ACCESS_FIELDS), created)
    assert batched.getvalue() == ""  # not yet: at the end of the loop iteration
    (flush,) = scheduled
    flush()
    assert batched.getvalue() == through_logging.getvalue()


def test_a_batch_is_one_write_scheduled_once_and_a_full_batch_is_written_at_once() -> None:
    class Counting(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    stream = Counting()
    scheduled: list[Callable[[], None]] = []
    lines = AccessLines(stream, scheduled.append, max_lines=4)
    for n in range(3):
        lines.write({"n": n}, 1_800_000_000.0)
    assert len(scheduled) == 1 and stream.writes == 0
    scheduled[0]()
    assert stream.writes == 1 and stream.getvalue().count("\n") == 3
    for n in range(4):  # the fourth fills the batch: written at once, before its turn
        lines.write({"n": n}, 1_800_000_000.0)
    assert stream.writes == 2 and stream.getvalue().count("\n") == 7
    scheduled[-1]()  # the turn that was scheduled finds nothing left: no empty write
    lines.flush()
    assert stream.writes == 2


def test_a_closed_stream_loses_the_lines_but_never_raises() -> None:
    stream = io.StringIO()
    lines = AccessLines(stream, lambda call: None)
    lines.write({"n": 1})
    stream.close()
    lines.flush()  # as logging does with a closed stderr: no exception to the caller


@pytest.mark.parametrize(
    "path", ["/mcp", "/mcp?code=[redacted]", '/a"b', "/a b", "/é?x", "/a\\b", "/a\x01", ""]
)
@pytest.mark.parametrize("upstream_ms", [None, 0.8])
def test_the_request_line_template_is_the_generic_line(
    path: str, upstream_ms: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path's template writes what :meth:`AccessLines.write` writes."""
    monkeypatch.setattr("consentgate.logs.line_writers.time.time", lambda: 1_800_000_000.25)
    fields = {
        "request_id": "0123456789abcdef",
        "client": "2001:db8::1",
        "method": "POST",
        "path": path,
        "status": 201,
        "bytes": 17,
        "duration_ms": 1.5,
        "upstream_ms": upstream_ms,
    }
    generic, template = io.StringIO(), io.StringIO()
    by_fields = AccessLines(generic, lambda flush: None)
    by_fields.write(dict(fields))
    by_fields.flush()
    by_template = AccessLines(template, lambda flush: None)
    by_template.request(
        request_id="0123456789abcdef",
        client="2001:db8::1",
        method="POST",
        path=path,
        status=201,
        sent=17,
        duration_ms=1.5,
        upstream_ms=upstream_ms,
    )
    by_template.flush()
    assert template.getvalue() == generic.getvalue()
    assert template.getvalue().count("\n") == 1


def test_a_reload_writes_the_waiting_lines_then_switches_the_format_or_stops() -> None:
    stream = io.StringIO()
    lines = AccessLines(stream, lambda flush: None)
    lines.write({"path": "/before"})
    lines.configure(format="json", enabled=True)
    assert stream.getvalue().count("\n") == 1  # the waiting line, written as text first
    lines.write({"path": "/json"})
    lines.configure(format="text", enabled=False)
    lines.write({"path": "/off"})
    lines.request(
        request_id="r",
        client="c",
        method="GET",
        path="/off-too",
        status=200,
        sent=0,
        duration_ms=1.0,
        upstream_ms=None,
    )
    lines.flush()
    first, second = stream.getvalue().splitlines()
    assert "path=/before" in first
    assert json.loads(second)["path"] == "/json"
    assert not lines.enabled


def test_access_lines_built_off_write_nothing() -> None:
    stream = io.StringIO()
    lines = AccessLines(stream, lambda flush: None, enabled=False)
    lines.write({"path": "/x"})
    lines.flush()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("format", ["text", "json"])
@pytest.mark.parametrize("static", [None, {"worker": 2}])
@pytest.mark.parametrize("severity", ["info", "warning"])
def test_direct_audit_lines_are_the_logging_lines_byte_for_byte(
    format: str, static: dict[str, int] | None, severity: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve``'s audit sink writes what :func:`log_sink` makes the logger write."""
    monkeypatch.setattr("time.time", lambda: 1_800_000_123.456)
    event = AuditEvent(
        "consent_silent",
        "authorization relayed without asking",
        "0123456789abcdef",
        severity=severity,  # type: ignore[arg-type]
        fields={
            "reason": "remembered",
            "redirect_uri": "https://a.example/cb?x=1 2",
            "bound": True,
        },
    )
    through_logging = io.StringIO()
    configure_logging(format=format, stream=through_logging, static=static)
    log_sink(event)
    log_sink(event)
    direct = io.StringIO()
    scheduled: list[Callable[[], None]] = []
    sink = direct_sink(DirectLines(direct, scheduled.append, format=format, static=static))
    sink(event)
    sink(event)
    assert direct.getvalue() == ""  # not yet: at the end of the loop iteration
    (flush,) = scheduled
    flush()
    assert direct.getvalue() == through_logging.getvalue() != ""


def test_direct_audit_lines_follow_the_logger_level_line_by_line() -> None:
    """The level is the logger's, read at each line: a reload's level holds from the
    next line (the logger object is kept, its answers are not)."""
    configure_logging(level="warning", stream=io.StringIO())
    direct = io.StringIO()
    lines = DirectLines(direct, lambda flush: None)
    sink = direct_sink(lines)
    sink(AuditEvent("consent_silent", "relayed", "id"))
    sink(AuditEvent("tamper", "a record failed verification", "id", severity="warning"))
    configure_logging(level="info", stream=io.StringIO())
    sink(AuditEvent("consent_approved", "approved", "id"))
    configure_logging(level="error", stream=io.StringIO())
    sink(AuditEvent("consent_denied", "denied", "id", severity="warning"))
    lines.flush()
    events = [line.split(" event=")[1].split()[0] for line in direct.getvalue().splitlines()]
    assert events == ["tamper", "consent_approved"]
    configure_logging(level="info", stream=io.StringIO())


def test_audit_lines_of_one_iteration_are_one_write_in_their_order() -> None:
    class Counting(io.StringIO):
        writes = 0
        flushes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

        def flush(self) -> None:
            self.flushes += 1

    configure_logging(level="info", stream=io.StringIO())
    stream = Counting()
    scheduled: list[Callable[[], None]] = []
    lines = DirectLines(stream, scheduled.append, max_lines=4)
    for n in range(3):
        lines.write(AUDIT, logging.INFO, "event", {"n": n}, 1_800_000_000.0)
    assert len(scheduled) == 1 and stream.writes == 0
    scheduled[0]()
    assert (stream.writes, stream.flushes) == (1, 1)
    assert [line.rsplit("=", 1)[1] for line in stream.getvalue().splitlines()] == ["0", "1", "2"]
    for n in range(4):  # the fourth fills the batch: written at once, before its turn
        lines.write(AUDIT, logging.INFO, "event", {"n": n}, 1_800_000_000.0)
    assert stream.writes == 2 and stream.getvalue().count("\n") == 7
    scheduled[-1]()  # the turn that was scheduled finds nothing left: no empty write
    lines.flush()
    assert stream.writes == 2


def test_a_reload_of_the_audit_format_writes_the_waiting_lines_first() -> None:
    configure_logging(level="info", stream=io.StringIO())
    stream = io.StringIO()
    lines = DirectLines(stream, lambda flush: None)
    lines.write(AUDIT, logging.INFO, "before", {}, 1_800_000_000.0)
    lines.configure(format="json")
    lines.write(AUDIT, logging.INFO, "after", {}, 1_800_000_000.0)
    lines.flush()
    text, document = stream.getvalue().splitlines()
    assert text.endswith(" consentgate.audit before")
    assert json.loads(document)["message"] == "after"


def test_audit_lines_to_a_closed_stream_are_lost_without_an_error() -> None:
    configure_logging(level="info", stream=io.StringIO())
    stream = io.StringIO()
    lines = DirectLines(stream, lambda flush: None)
    lines.write(AUDIT, logging.INFO, "event", {})
    stream.close()
    lines.flush()


# --- the access line's hot path (at most 5 µs a request) ------------------------


@given(st.text())
def test_the_quick_path_quoting_is_the_generic_quoting(path: str) -> None:
    assert quoted_path(path) == text_value(path)


@given(st.floats() | st.floats(min_value=0, max_value=600) | st.sampled_from([0.0, 0.0005, 1e9]))
def test_milliseconds_are_written_as_the_rounded_number(seconds: float) -> None:
    assert _milliseconds(seconds) == str(round(seconds * 1000, 2))


def _near_millisecond_edges() -> st.SearchStrategy[list[float]]:
    """Runs of neighbouring floats around the end of a millisecond, in time order."""

    def run(second: int, millisecond: int, before: int, length: int) -> list[float]:
        time = second + (millisecond + 1) / 1000
        for _ in range(before):
            time = math.nextafter(time, -math.inf)
        times = [time]
        for _ in range(length):
            times.append(math.nextafter(times[-1], math.inf))
        return times

    return st.builds(
        run,
        st.integers(0, 2**34),
        st.integers(0, 999),
        st.integers(0, 6),
        st.integers(0, 12),
    )


@given(
    st.lists(st.floats(min_value=0, max_value=253_402_300_799), max_size=20)  # to year 9999
    | _near_millisecond_edges()
    | st.lists(st.sampled_from([1_800_000_000.0, 1_800_000_000.0009, 1_800_000_000.001]))
)
def test_a_remembered_stamp_is_the_stamp_made_afresh(times: list[float]) -> None:
    remembering = Timestamps()
    assert [remembering(t) for t in times] == [Timestamps()(t) for t in times]


_TARGETS = (
    st.sampled_from(
        [
            "/mcp",
            "/mcp/tools/call?session=7&code=abc",
            "/auth/callback?CODE=x&state=y&scope=openid",
            "/x?access%5Ftoken=t&y",
            '/a"b',
            "/a b",
            "/a\\b?c=1",
            "/é?x=1",
            "/",
            "",
            "/long/" + "x" * 3000 + "?code=abc",
            "/remembered/" + "y" * 250,
        ]
    )
    | st.text()
)


@pytest.mark.parametrize("format", ["text", "json"])
@pytest.mark.parametrize("static", [None, {"worker": 2}])
@given(
    request_id=st.sampled_from(["0123456789abcdef", "req-1:a.b_c", "-"]) | st.text(),
    client=st.sampled_from(["127.0.0.1", "2001:db8::1", "-", 'a="b"']) | st.text(),
    target=_TARGETS,
    seconds=st.floats(min_value=0, max_value=3600),
    upstream=st.none() | st.floats(min_value=0, max_value=3600),
)
def test_the_hot_path_writes_the_generic_line(
    *,
    format: str,
    static: dict[str, int] | None,
    request_id: str,
    client: str,
    target: str,
    seconds: float,
    upstream: float | None,
) -> None:
    """:meth:`AccessLines.ended` (raw target, seconds) writes what :meth:`AccessLines.write`
    writes for the fields the logger would be given."""
    fields = {
        "request_id": request_id,
        "client": client,
        "method": "GET",
        "path": redact_target(target),
        "status": 200,
        "bytes": 17,
        "duration_ms": round(seconds * 1000, 2),
        "upstream_ms": None if upstream is None else round(upstream * 1000, 2),
    }
    generic, hot = io.StringIO(), io.StringIO()
    with mock.patch.object(time, "time", return_value=1_800_000_000.25):
        by_fields = AccessLines(generic, lambda flush: None, format=format, static=static)
        by_fields.write(fields)
        by_fields.flush()
        by_hot_path = AccessLines(hot, lambda flush: None, format=format, static=static)
        for _ in range(2):  # the second time, from what was remembered
            by_hot_path.ended(request_id, client, "GET", target, 200, 17, seconds, upstream)
        by_hot_path.flush()
    assert hot.getvalue() == generic.getvalue() * 2


def test_a_target_with_a_secret_is_redacted_each_time_and_never_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redacted: list[str] = []

    def counting(target: str) -> str:
        redacted.append(target)
        return redact_target(target)

    monkeypatch.setattr("consentgate.logs.line_writers.redact_target", counting)
    secret, plain = "/kept-test/cb?code=SECRET&x=1", "/kept-test/mcp?session=1"
    lines = AccessLines(io.StringIO(), lambda flush: None)
    for _ in range(3):
        lines.ended("id", "127.0.0.1", "GET", secret, 200, 0, 0.001, None)
        lines.ended("id", "127.0.0.1", "GET", plain, 200, 0, 0.001, None)
    assert redacted.count(secret) == 3
    assert redacted.count(plain) == 1


def test_request_lines_and_other_lines_keep_their_order() -> None:
    """A request line waits as its values; a line made by ``write`` (a request that
    ended otherwise) formats those before it, and a full batch is written at once."""
    stream = io.StringIO()
    scheduled: list[Callable[[], None]] = []
    lines = AccessLines(stream, scheduled.append, max_lines=3)
    lines.ended("a", "c", "GET", "/1", 200, 0, 0.001, None)
    lines.write({"path": "/2", "ended": "client"})
    lines.ended("b", "c", "GET", "/3", 200, 0, 0.001, None)
    assert len(scheduled) == 1 and stream.getvalue() == ""
    scheduled[0]()
    assert [line.split(" path=")[1].split()[0] for line in stream.getvalue().splitlines()] == [
        "/1",
        "/2",
        "/3",
    ]
    for n in range(3):
        lines.ended("c", "c", "GET", f"/{n}", 200, 0, 0.001, None)
    assert stream.getvalue().count("\n") == 6  # the third filled the batch


# --- the libraries' loggers -----------------------------------------------------------

BEARER = "mcp-bearer-" + "7f3a9c" * 6
COOKIE_VALUE = "Zq8vR2" * 8
CODE = "auth-code-" + "41" * 10


def _bad_header() -> BaseException:
    """What aiohttp's parser raises, quoting the header line (web_protocol logs it)."""
    try:
        raise ValueError(f"Invalid header value char:\n\n  b'Authorization: Bearer {BEARER}\\x01'")
    except ValueError as inner:
        try:
            raise RuntimeError(f"while reading Cookie: cg_bid={COOKIE_VALUE}") from inner
        except RuntimeError as outer:
            return outer


@pytest.mark.parametrize("format", ["text", "json"])
@pytest.mark.parametrize(
    "name", ["aiohttp.server", "aiohttp.web", "asyncio", "asyncpg", "aiosqlite"]
)
def test_the_libraries_log_records_are_routed_through_the_gates_handler_and_redacted(
    format: str, name: str
) -> None:
    stream = io.StringIO()
    configure_logging(format=format, level="info", stream=stream)
    logger = logging.getLogger(name)
    logger.error("Error handling request from %s", "127.0.0.1", exc_info=_bad_header())
    logger.warning(
        "Executing <Task pending coro=<handler(url='/auth/callback?code=%s&state=s1')>> "
        "took 0.2 seconds; Authorization: Bearer %s; Set-Cookie: cg_b_x=%s",
        CODE,
        BEARER,
        COOKIE_VALUE,
    )
    logger.info("below the libraries' level: not written")
    written = stream.getvalue()
    for secret in (BEARER, COOKIE_VALUE, CODE, "s1'"):
        assert secret not in written
    assert "not written" not in written
    if format == "json":
        lines = [json.loads(line) for line in written.splitlines()]
        assert [(line["logger"], line["level"]) for line in lines] == [
            (name, "error"),
            (name, "warning"),
        ]
        assert lines[0]["message"] == "Error handling request from 127.0.0.1"
        assert "RuntimeError" in lines[0]["exception"] and "ValueError" in lines[0]["exception"]
    else:
        assert f" ERROR   {name} Error handling request from 127.0.0.1\n" in written
        assert f" WARNING {name} Executing <Task pending" in written
        # The frames stay (where it failed); the messages, which may quote a request, not.
        assert "in _bad_header" in written
        assert "builtins.RuntimeError" in written and "builtins.ValueError" in written


def test_the_libraries_handler_is_installed_once_and_follows_the_configured_level() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(level="info", stream=first)
    configure_logging(level="error", stream=second)
    logging.getLogger("aiohttp.server").warning("a warning")
    logging.getLogger("aiohttp.server").error("an error")
    assert first.getvalue() == ""
    assert "a warning" not in second.getvalue()
    assert " ERROR   aiohttp.server an error" in second.getvalue()


class _Text(str):
    """A str subclass: written as ``str()`` gives it, as any other value."""


_FIELD_VALUES = (
    st.text(max_size=12)
    | st.sampled_from(["", " ", "a=b", 'say "x"', "tab\there", "line\nbreak", "\u00a0", "ok"])
    | st.integers()
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=True)
    | st.builds(_Text, st.text(max_size=6))
)


@given(st.dictionaries(st.text(min_size=1, max_size=8), _FIELD_VALUES, max_size=8))
def test_a_text_line_writes_each_field_as_text_value_writes_it(fields: dict[str, object]) -> None:
    # The line is checked for quoting as a whole when it can be; byte for byte the
    # same as quoting each value on its own.
    expected = "2026-01-01T00:00:00.000+00:00 INFO    consentgate.audit said"
    if fields:
        expected += " " + " ".join(f"{k}={text_value(v)}" for k, v in fields.items())
    assert (
        text_line("2026-01-01T00:00:00.000+00:00", "INFO", "consentgate.audit", "said", fields)
        == expected
    )


_QUOTED_WHEN = re.compile(r'[\s"=]')


@given(
    st.text(max_size=16)
    | st.sampled_from(["\x1c", "a\x85b", "\u2028", "\u3000x", "x\u00a0", "\x0b", "\ufeff", "a b"])
)
def test_a_value_is_quoted_when_it_is_empty_or_holds_whitespace_a_quote_or_an_equals_sign(
    text: str,
) -> None:
    # Unicode whitespace as the regular expression's \s reads it (str.isspace).
    expected = json.dumps(text) if not text or _QUOTED_WHEN.search(text) else text
    assert text_value(text) == expected
    line = text_line("t", "INFO", "l", "m", {"a": "plain", "b": text, "c": 1})
    assert line == f"t INFO    l m a=plain b={expected} c=1"
