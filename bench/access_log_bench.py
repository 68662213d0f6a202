"""What one access-log line costs, in this process: ``python bench/access_log_bench.py``.

The gate's ``AccessLogger.log`` for one request, three ways in the same run: the
batched writer ``serve`` uses (``AccessLines``, text and JSON), and the
``logging`` record it replaced (``consentgate.access`` logger, the same formatter),
each writing to an in-memory stream, plus the parts of the batched text line. The
load benchmark (``python -m bench.run --nolog``) measures the same thing as CPU per
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

from consentgate.core.logs import ACCESS, AccessLines, configure_logging
from consentgate.core.redact import redact_target
from consentgate.web.access import AccessLogger
from consentgate.web.appkeys import REQUEST_ID

NUMBER = 100_000


def per_call(call: Callable[[], object]) -> float:
    """Microseconds per call, the best of five repeats."""
    return min(timeit.repeat(call, number=NUMBER, repeat=5)) / NUMBER * 1e6


def main() -> int:
    request = make_mocked_request("GET", "/mcp/tools/call?session=7&code=abc")
    request[REQUEST_ID] = "0123456789abcdef"
    response = web.Response(text="{}")

    def batched(format: str) -> Callable[[], object]:
        lines = AccessLines(io.StringIO(), lambda flush: None, format=format)
        logger = AccessLogger(lines, "")
        return lambda: logger.log(request, response, 0.0012)

    configure_logging(stream=io.StringIO())
    through_logging = AccessLogger(logging.getLogger(ACCESS), "")
    rows = [
        ("batched text line (serve)", per_call(batched("text"))),
        ("batched JSON line", per_call(batched("json"))),
        (
            "logging record (before)",
            per_call(lambda: through_logging.log(request, response, 0.0012)),
        ),
    ]
    stamp = AccessLines(io.StringIO(), lambda flush: None)
    parts = [
        ("  of which: redact the target", per_call(lambda: redact_target(request.raw_path))),
        ("  of which: one request.get", per_call(lambda: request.get(REQUEST_ID))),
        (
            "  of which: build + queue the line",
            per_call(
                lambda: stamp.request(
                    request_id="0123456789abcdef",
                    client="127.0.0.1",
                    method="GET",
                    path="/mcp/tools/call?session=7&code=[redacted]",
                    status=200,
                    sent=2,
                    duration_ms=1.2,
                    upstream_ms=0.8,
                )
            ),
        ),
    ]
    print(f"one access line, µs per request (best of 5 x {NUMBER:,}; {time.strftime('%Y-%m-%d')})")
    for label, value in rows + parts:
        print(f"{label:<36} {value:6.2f}")
    print(f"{'logging / batched text (ratio)':<36} {rows[2][1] / rows[0][1]:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
