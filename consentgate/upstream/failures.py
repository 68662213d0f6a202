"""How an exchange with the upstream fails, under one root the relay catches.

The relay answers each with a 502 or a 504 and one log line naming the class
(docs/references.md, "Proxy correctness"); ``str()`` never holds a header value.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """The exchange with the upstream failed; ``str()`` says how."""


class UpstreamConnectError(UpstreamError):
    """No connection could be opened (refused, unresolvable, TLS, connect timeout).

    ``os_error`` is the cause, for the log line that names the error class."""

    def __init__(self, message: str, os_error: BaseException) -> None:
        super().__init__(message)
        self.os_error = os_error


class UpstreamProtocolError(UpstreamError):
    """The upstream's answer is not well-formed HTTP/1.1 (or is too large)."""


class UpstreamDisconnected(UpstreamError):
    """The connection closed before the response ended."""
