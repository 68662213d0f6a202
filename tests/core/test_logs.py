"""Log formats and redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from consentgate.core.logs import configure_logging
from consentgate.core.redact import redact_query, redact_target


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes the consentgate logger; put it back for other tests."""
    logger = logging.getLogger("consentgate")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


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
