"""The decision cache: verified answers kept in memory, and when to forget them.

Why a cache: a round trip through aiosqlite costs about 100 µs and an Ed25519
verification about as much, a dictionary lookup a fraction of a microsecond
(measured, docs/references.md and docs/store.md), and the gate asks the same question
on every authorization. What is cached is the *verified* grants of one lookup key
(subject, client_id, redirect_uri, resource): each grant's scopes and expiry, so
expiry is still checked against the clock at every answer. Client registrations
are cached the same way (the gate looks its client up on every authorization),
``None`` included for a client that is unknown or failed verification.

Pure: no I/O, no clock, no database. Whether something changed is the backend's
to tell (:meth:`~consentgate.store.protocol.StoreBackend.current_counter`; SQLite:
``PRAGMA data_version`` and a trigger-maintained counter, PostgreSQL: LISTEN/NOTIFY);
this module only compares the counter it is shown with the one it was filled
under. The facade calls :meth:`DecisionCache.observe` before every cached answer.

Rules:

* Bounded: at most ``size`` decisions and ``size`` clients; the oldest entry is
  evicted first (dicts keep insertion order). ``size`` 0 disables the cache.
* A generation number moves with every invalidation, so a read that started
  before a change cannot put its (now stale) answer back afterwards.
* An own write drops only its own key when no other process wrote in between
  (:meth:`DecisionCache.after_own_write`): an
  approval no longer empties the cache of everyone's answers.
* The cache assumes the clock does not jump backwards: a grant that had expired is
  not brought back by a clock set back (the safe direction).
"""

from __future__ import annotations

import enum
from typing import Final, TypeAlias

from consentgate.core.oauth.authorization_requests import ApprovalKey
from consentgate.core.signed.records import ClientRecord

#: The verified grants of one lookup key: (scopes, expires_at) per record.
Grants: TypeAlias = tuple[tuple[frozenset[str], int], ...]
#: subject, client_id, redirect_uri, resource.


class Missing(enum.Enum):
    """Not in the cache (where None means "cached as unknown")."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING


def covered(wanted: frozenset[str], grants: Grants, now: float) -> bool:
    """Whether an unexpired grant covers ``wanted`` (subset rule; empty only by empty).

    A request without any scope is covered only by an approval that had none
    either: what "no scope" means is the upstream's choice,
    so an approval of ``read`` must not silently cover it.
    """
    if not wanted:
        return any(now < expires and not granted for granted, expires in grants)
    return any(now < expires and wanted <= granted for granted, expires in grants)


class DecisionCache:
    """Cached grants per lookup key and cached clients, invalidated by a change counter."""

    __slots__ = ("_clients", "_decisions", "enabled", "generation", "seen_counter", "size")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("cache_size must not be negative")
        self.size = size
        #: False for size 0. An attribute, not a property: it is read on every answer.
        self.enabled = size > 0
        #: Moves with every invalidation; see :meth:`put_grants`.
        self.generation = 0
        #: The change counter the cached entries were filled under (None: not yet known).
        self.seen_counter: int | None = None
        self._decisions: dict[ApprovalKey, Grants] = {}
        self._clients: dict[str, ClientRecord | None] = {}

    def __len__(self) -> int:
        """How many decisions (lookup keys) are cached; clients are not counted."""
        return len(self._decisions)

    def __contains__(self, key: object) -> bool:
        return key in self._decisions

    # --- invalidation --------------------------------------------------------------

    def clear(self) -> None:
        """Forget every decision and client, and move the generation."""
        self._decisions.clear()
        self._clients.clear()
        self.generation += 1

    def observe(self, counter: int | None) -> bool:
        """Compare the backend's change counter with the one the cache was filled under.

        A different counter empties the cache (something changed, somewhere) and
        remembers the new one; None ("cannot tell") empties it too and returns False:
        the caller must not use the cache for this answer. True: the cache may be used.
        """
        if counter is None:
            self.clear()
            return False
        if counter != self.seen_counter:
            self.seen_counter = counter
            self.clear()
        return True

    def after_own_write(
        self,
        before: int,
        after: int,
        *,
        key: ApprovalKey | None = None,
        client_id: str | None = None,
    ) -> None:
        """Forget only what this process's own write changed, when that is all that changed.

        ``before`` and ``after`` are the change counter read inside the write's
        transaction. If ``before`` is the counter the cache was last filled under, no
        other process changed anything in between, so dropping the one key (or client)
        and moving the seen counter to ``after`` keeps every other cached answer
        correct. Otherwise everything is dropped. The generation moves either way, so
        a read already in flight does not put a stale answer back.
        """
        if self.seen_counter is None or before != self.seen_counter:
            self.clear()
            return
        self.generation += 1
        if key is not None:
            self._decisions.pop(key, None)
        if client_id is not None:
            self._clients.pop(client_id, None)
        self.seen_counter = after

    # --- decisions -------------------------------------------------------------------

    def grants(self, key: ApprovalKey) -> Grants | None:
        """The cached grants of ``key`` (possibly empty: a cached "no"), or None."""
        return self._decisions.get(key)

    def put_grants(self, key: ApprovalKey, grants: Grants, generation: int) -> None:
        """Cache ``grants`` read while the generation was ``generation``; dropped if an
        invalidation happened since (the read may predate the change)."""
        if generation != self.generation or not self.size:
            return
        if len(self._decisions) >= self.size:
            del self._decisions[next(iter(self._decisions))]  # oldest first
        self._decisions[key] = grants

    # --- clients -----------------------------------------------------------------------

    def client(self, client_id: str) -> ClientRecord | Missing | None:
        """The cached client, None when it is cached as unknown, :data:`MISSING` when it
        is not cached (one dict lookup: this runs on every authorization)."""
        return self._clients.get(client_id, MISSING)

    def put_client(self, client_id: str, record: ClientRecord | None, generation: int) -> None:
        """Cache a client read while the generation was ``generation`` (as :meth:`put_grants`)."""
        if generation != self.generation or not self.size:
            return
        if len(self._clients) >= self.size:
            del self._clients[next(iter(self._clients))]  # oldest first
        self._clients[client_id] = record
