"""Request ids: 16 hex characters from the operating system's CSPRNG, drawn in bulk.

``secrets.token_hex(8)`` makes one ``getrandom`` system call per request; this
reads 4 KiB at a time (512 ids per call) from the same source, ``os.urandom``, so
the ids are exactly as unpredictable, for a slice and a ``hex()`` per request.
A request id is a correlation id, never a secret, but it is
still not guessable nor does it count requests.

Called from the event loop's thread only (the gate has one). A forked child must
not hand out its parent's ids, so ``register_at_fork`` empties the buffer.
"""

from __future__ import annotations

import os
from typing import Final

_ID_BYTES: Final = 8
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
