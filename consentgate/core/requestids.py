"""Request ids: 16 hex characters from the operating system's CSPRNG, drawn in bulk.

``secrets.token_hex(8)`` makes one ``getrandom`` system call per request; this
reads 4 KiB at a time (512 ids per call) from the same source, ``os.urandom``, so
the ids are exactly as unpredictable, for a slice and a ``hex()`` per request.
A request id is a correlation id, never a secret, but it is
still not guessable nor does it count requests.

Called from the event loop's thread only (the gate has one). A forked child must
not hand out its parent's ids, so ``register_at_fork`` empties the buffer.

What a request id may be (:func:`is_request_id`): the gate's own, or one a trusted
proxy passed in ``X-Request-Id``: 1 to 128 letters, digits and ``-_.:``. The same
rule checks the id an operator looks up in the audit trail (``audit list
--request-id``, the admin API's ``request_id``), so a typo is told apart from an id
that matches no row.
"""

from __future__ import annotations

import os
from typing import Final

_ID_BYTES: Final = 8
#: The characters a request id is made of (the gate's are lower-case hex).
REQUEST_ID_CHARACTERS: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:"
)
#: The longest request id taken from a trusted proxy, or looked up.
MAX_REQUEST_ID: Final = 128
#: Says what :func:`parse_request_id` expects.
REQUEST_ID_RULE: Final = f"1 to {MAX_REQUEST_ID} letters, digits, '-', '_', '.' or ':'"


def is_request_id(text: str) -> bool:
    """Whether ``text`` is a request id the gate could have given or kept."""
    return 0 < len(text) <= MAX_REQUEST_ID and set(text) <= REQUEST_ID_CHARACTERS


def parse_request_id(name: str, text: str) -> str:
    """``text`` when it is a request id; ValueError naming ``name`` (the option or
    parameter) and the rule otherwise."""
    if not is_request_id(text):
        raise ValueError(
            f"{name}: expected {REQUEST_ID_RULE} (the id a page shows), got {text[:40]!r}"
        )
    return text


_BATCH: Final = 512 * _ID_BYTES


class _RequestIds:
    __slots__ = ("_buffer", "_offset")

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0

    def forget(self) -> None:
        self._buffer = b""
        self._offset = 0

    def __call__(self) -> str:
        offset = self._offset
        end = offset + _ID_BYTES
        if end > len(self._buffer):
            self._buffer = os.urandom(_BATCH)
            offset, end = 0, _ID_BYTES
        self._offset = end
        return self._buffer[offset:end].hex()


#: ``new_request_id()``: a fresh 16-character hex request id.
new_request_id: Final = _RequestIds()
os.register_at_fork(after_in_child=new_request_id.forget)
