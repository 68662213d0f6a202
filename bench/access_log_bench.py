"""What one access-log line costs, in this process: ``python bench/access_log_bench.py``.

The gate's ``AccessLogger.log`` for one request, several ways in the same run: the
batched writer ``serve`` uses (``AccessLines``, text and JSON), and the ``logging``
record it replaced (``consentgate.access`` logger, the same formatter), each writing
to an in-memory stream, plus parts of the batched text line. The request's target
carries a code, so it is redacted every time (a target with a secret is never
remembered); a second text row logs ``/mcp``, a target remembered after its first
line, as most of the gate's requests are. The text line's budget is 5 µs.

The load benchmark (``python -m bench.run --nolog``) measures the same thing as CPU per
request with the log on and off, but its run-to-run noise on a shared machine is
about 20 µs per request, larger than what is measured here.
"""

from __future__ import annotations

import io
import logging
import time
import timeit
from collections.abc import Callable

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from consentgate.core.trust.redact import redact_target
from consentgate.logs.line_writers import AccessLines
from consentgate.logs.loggers import ACCESS, configure_logging
from consentgate.web.access import AccessLogger
from consentgate.web.appkeys import REQUEST_ID, UPSTREAM_SECONDS

NUMBER = 100_000

#: What the text access line may cost, in µs per request.
BUDGET = 5.0


def per_call(call: Callable[[], object]) -> float:
    """Microseconds per call, the best of five repeats."""
    return min(timeit.repeat(call, number=NUMBER, repeat=5)) / NUMBER * 1e6


def main() -> int:
    request = make_mocked_request("GET", "/mcp/tools/call?session=7&code=abc")
    request[REQUEST_ID] = "0123456789abcdef"
    remembered = make_mocked_request("POST", "/mcp")
    remembered[REQUEST_ID] = "0123456789abcdef"
    response = web.Response(text="{}")

    def batched(format: str, request: web.Request = request) -> Callable[[], object]:
        lines = AccessLines(io.StringIO(), lambda flush: None, format=format)
        logger = AccessLogger(lines, "")
        return lambda: logger.log(request, response, 0.0012)

    configure_logging(stream=io.StringIO())
    through_logging = AccessLogger(logging.getLogger(ACCESS), "")
    rows = [
        ("batched text line (serve)", per_call(batched("text"))),
        ("batched text line, /mcp remembered", per_call(batched("text", remembered))),
        ("batched JSON line", per_call(batched("json"))),
        (
            "logging record (before)",
            per_call(lambda: through_logging.log(request, response, 0.0012)),
        ),
    ]
    ended = AccessLines(io.StringIO(), lambda flush: None)
    parts = [
        ("  of which: redact the target", per_call(lambda: redact_target(request.raw_path))),
        ("  of which: a missing request.get", per_call(lambda: request.get(UPSTREAM_SECONDS))),
        (
            "  of which: AccessLines.ended",
            per_call(
                lambda: ended.ended(
                    "0123456789abcdef",
                    "127.0.0.1",
                    "GET",
                    "/mcp/tools/call?session=7&code=abc",
                    200,
                    2,
                    0.0012,
                    None,
                )
            ),
        ),
    ]
    print(f"one access line, µs per request (best of 5 x {NUMBER:,}; {time.strftime('%Y-%m-%d')})")
    for label, value in rows + parts:
        print(f"{label:<38} {value:6.2f}")
    print(f"{'logging / batched text (ratio)':<38} {rows[3][1] / rows[0][1]:6.2f}")
    verdict = "within" if rows[0][1] <= BUDGET else "OVER"
    print(f"{'text line vs the 5 µs budget':<38} {rows[0][1] / BUDGET:6.2f} ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
