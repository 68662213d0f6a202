"""Benchmark of the consent store's answer: ``python bench/store_bench.py [--records N]``.

Targets (a benchmark, not a timed test; docs/performance.md):

* ``is_approved`` uncached p50 <= 1 ms;
* a repeated lookup served by the cache of verified answers <= 50 µs;
* with 1,000,000 records the uncached lookup within 1.5x of the 1,000-record case
  at the median and 2x at the 99th percentile, on both backends; the plan of the
  lookup is printed (``EXPLAIN QUERY PLAN`` on SQLite, ``EXPLAIN (ANALYZE,
  BUFFERS)`` on PostgreSQL): one search of the ``consents_lookup`` index.

Method. Two stores are built in a temporary directory, with 1,000 and with
``--records`` rows (default 1,000,000; ``--quick`` uses 100,000). The schema is
created by ``ConsentStore.open``; the rows are then bulk-inserted with plain
sqlite3 ``executemany`` in transactions of 50,000, each row signed once like
``ConsentStore.record`` signs it (subjects are 43-character digests, 1,000
clients). Uncached lookups use a store opened with ``cache_size=0`` and ask for
random existing records (every answer is "yes", so every lookup reads, parses and
verifies one row); each call is timed on its own with ``perf_counter_ns``, the two
stores taking turns in blocks of 250 lookups (a burst of load from elsewhere on a
shared machine then falls on both, not on whichever ran second). The
database file sits in the OS page cache, as it does in a running gate. Cached
lookups repeat one key on a store with the cache on; that path includes the
``PRAGMA data_version`` check that notices other processes' writes, which is
also measured on its own.

PostgreSQL (``--postgres URL``, or ``--postgres throwaway`` for a cluster started in
a temporary directory with tests/support/pgcluster.py, as the tests do): the same
measurements on a :class:`~consentgate.store.postgres.PostgresBackend` in a database
the script may fill (it creates the ``consentgate`` schema, bulk-loads the rows with
COPY and drops the schema at the end), plus the delay of the cache invalidation
between two instances: how long after one store's ``record`` returned another
store's ``current_counter()`` has moved (LISTEN/NOTIFY, then one read).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from consentgate.core.signed.keyring import KeyRing
from consentgate.core.signed.records import CONSENT_COLUMNS, ConsentRecord, sign_record
from consentgate.store import ConsentStore
from consentgate.store.sql_statements import POSTGRES, SQLITE, Statements
from consentgate.store.sqlite import SQLiteBackend

REPO = Path(__file__).resolve().parents[1]

NOW = int(time.time())
SCOPES = frozenset({"openid", "profile"})
BATCH = 50_000
#: A lookup key for the plan: (subject, client_id, redirect_uri, resource, now).
EXAMPLE_KEY = ("subject", "client-0007", "https://client7.example/oauth/callback", "", NOW)


def subject_of(index: int) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(b"%d" % index).digest()).decode()[:43]


def client_of(index: int) -> tuple[str, str]:
    number = index % 1000
    return f"client-{number:04d}-{'x' * 12}", f"https://client{number}.example/oauth/callback"


def rows(count: int, keyring: KeyRing) -> Iterator[tuple[object, ...]]:
    for index in range(count):
        client_id, redirect_uri = client_of(index)
        record = ConsentRecord(
            id=secrets.token_urlsafe(16),
            subject=subject_of(index),
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=SCOPES,
            resource="",
            granted_at=NOW,
            expires_at=NOW + 30 * 86400,
            revoked_at=None,
            key_id="",
            signature=b"",
        )
        yield sign_record(record, keyring).to_row()


async def create_schema(path: Path, keyring: KeyRing) -> None:
    async with await ConsentStore.open(path, keyring):
        pass


def build(path: Path, count: int, keyring: KeyRing) -> float:
    """Create a store with ``count`` signed records; returns the seconds it took."""
    started = time.perf_counter()
    asyncio.run(create_schema(path, keyring))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -1000000")  # 1 GB while loading, this connection only
    conn.execute("PRAGMA synchronous = OFF")
    insert = (
        f"INSERT INTO consents ({', '.join(CONSENT_COLUMNS)}) "  # noqa: S608 - constant
        f"VALUES ({', '.join('?' * len(CONSENT_COLUMNS))})"
    )
    source = rows(count, keyring)
    done = 0
    while done < count:
        batch = [row for _, row in zip(range(BATCH), source, strict=False)]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, batch)
        conn.execute("COMMIT")
        done += len(batch)
        if count >= 200_000:
            print(f"  ... {done:,} rows", file=sys.stderr, flush=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


#: Lookups per block when two stores are timed in alternation (:func:`alternate`).
BLOCK = 250


async def alternate(stores: list[tuple[ConsentStore, int]], lookups: int) -> list[list[float]]:
    """Microseconds per uncached ``is_approved`` of random existing records, for each
    ``(store, records)``: blocks of :data:`BLOCK` lookups taking turns (the order
    reversed every block), so that a burst of load from elsewhere on the machine
    falls on every store alike; the first block of each warms up and is not kept."""
    choosers = [random.Random(count) for _, count in stores]
    samples: list[list[float]] = [[] for _ in stores]
    for block in range(-1, max(lookups // BLOCK, 1)):
        order = list(range(len(stores)))
        for i in order if block % 2 == 0 else order[::-1]:
            store, count = stores[i]
            for _ in range(BLOCK):
                index = choosers[i].randrange(count)
                client_id, redirect_uri = client_of(index)
                started = time.perf_counter_ns()
                answer = await store.is_approved(
                    subject_of(index), client_id, redirect_uri, {"openid"}
                )
                elapsed = time.perf_counter_ns() - started
                if not answer:
                    raise AssertionError(f"record {index} was not approved")
                if block >= 0:
                    samples[i].append(elapsed / 1000)
    return samples


async def time_uncached(
    small: Path, large: Path, count: int, keyring: KeyRing, lookups: int
) -> list[list[float]]:
    """:func:`alternate` of the 1,000-record store and the ``count``-record one."""
    async with (
        await ConsentStore.open(small, keyring, cache_size=0) as few,
        await ConsentStore.open(large, keyring, cache_size=0) as many,
    ):
        return await alternate([(few, 1000), (many, count)], lookups)


async def time_cached(path: Path, keyring: KeyRing, lookups: int) -> tuple[list[float], float]:
    """Microseconds per cached lookup of one key (each timed, and the loop's mean)."""
    async with await ConsentStore.open(path, keyring) as store:
        client_id, redirect_uri = client_of(7)
        subject = subject_of(7)
        scopes = {"openid"}
        assert await store.is_approved(subject, client_id, redirect_uri, scopes)
        samples: list[float] = []
        for _ in range(lookups):
            started = time.perf_counter_ns()
            await store.is_approved(subject, client_id, redirect_uri, scopes)
            samples.append((time.perf_counter_ns() - started) / 1000)
        started = time.perf_counter_ns()
        for _ in range(lookups):
            await store.is_approved(subject, client_id, redirect_uri, scopes)
        mean = (time.perf_counter_ns() - started) / 1000 / lookups
        return samples, mean


def time_call(call: Callable[[], object], repeat: int) -> float:
    """Mean microseconds of ``call``."""
    for _ in range(1000):
        call()
    started = time.perf_counter_ns()
    for _ in range(repeat):
        call()
    return (time.perf_counter_ns() - started) / 1000 / repeat


async def time_probe(path: Path, repeat: int) -> tuple[float, float, float]:
    """Mean µs of ``PRAGMA data_version`` alone, of reading the change counter, and of
    the backend's ``current_counter()`` when nothing changed (what a cached answer pays)."""
    backend = await SQLiteBackend.open(path)
    try:
        probe = backend._probe
        version = time_call(lambda: probe.execute("PRAGMA data_version").fetchall(), repeat)
        counter = time_call(
            lambda: probe.execute("SELECT value FROM counters WHERE name = 'consents'").fetchall(),
            repeat,
        )
        current = time_call(backend.current_counter, repeat)
    finally:
        await backend.close()
    return version, counter, current


class _NotDurable(SQLiteBackend):
    """The store as it was before durable commits: every commit at ``synchronous=NORMAL``."""

    def transaction(self, body: Any, *, durable: bool = False) -> Any:
        return super().transaction(body, durable=False)


async def time_record(path: Path, keyring: KeyRing, count: int) -> tuple[list[float], list[float]]:
    """Microseconds per ``record``: as the gate runs it (durable: ``synchronous=FULL``
    for the approval's commit) and as it ran before (``NORMAL``), in alternating
    blocks on the same file, so the ratio is measured under the same load."""
    durable: list[float] = []
    normal: list[float] = []
    full_store = await ConsentStore.open(path, keyring)
    normal_store = ConsentStore(await _NotDurable.open(path), keyring)
    try:
        for block in range(count // 50):
            for store, samples in ((full_store, durable), (normal_store, normal)):
                for index in range(50):
                    subject = f"bench-{id(samples)}-{block}-{index}"
                    started = time.perf_counter_ns()
                    await store.record(subject, "client-x", "https://x.example/cb", SCOPES, ttl=60)
                    samples.append((time.perf_counter_ns() - started) / 1000)
    finally:
        await full_store.close()
        await normal_store.close()
    return durable, normal


# --- PostgreSQL -----------------------------------------------------------------------


async def pg_build(url: str, count: int, keyring: KeyRing) -> float:
    """The schema (by opening a backend), then ``count`` signed rows with COPY."""
    from consentgate.store.postgres import PostgresBackend  # noqa: PLC0415 - optional extra

    started = time.perf_counter()
    backend = await PostgresBackend.open(url)
    try:
        async with backend._connection() as conn:
            await conn.execute("TRUNCATE consentgate.consents")
            source = rows(count, keyring)
            done = 0
            while done < count:
                batch = [row for _, row in zip(range(BATCH), source, strict=False)]
                async with conn.transaction():  # a bulk load may take longer than 5 s
                    await conn.execute("SET LOCAL statement_timeout = 0")
                    await conn.copy_records_to_table(
                        "consents",
                        schema_name="consentgate",
                        columns=CONSENT_COLUMNS,
                        records=batch,
                    )
                done += len(batch)
                if count >= 200_000:
                    print(f"  ... {done:,} rows", file=sys.stderr, flush=True)
            async with conn.transaction():
                await conn.execute("SET LOCAL statement_timeout = 0")
                await conn.execute("ANALYZE consentgate.consents")
    finally:
        await backend.close()
    return time.perf_counter() - started


async def pg_store(url: str, keyring: KeyRing, cache_size: int = 10_000) -> ConsentStore:
    from consentgate.store.postgres import PostgresBackend  # noqa: PLC0415 - optional extra

    return ConsentStore(await PostgresBackend.open(url), keyring, cache_size=cache_size)


async def pg_uncached(
    small: str, large: str, count: int, keyring: KeyRing, lookups: int
) -> list[list[float]]:
    """:func:`alternate` of the 1,000-record database and the ``count``-record one."""
    async with (
        await pg_store(small, keyring, cache_size=0) as few,
        await pg_store(large, keyring, cache_size=0) as many,
    ):
        return await alternate([(few, 1000), (many, count)], lookups)


async def pg_cached(url: str, keyring: KeyRing, lookups: int) -> tuple[list[float], float, float]:
    """Cached lookups of one key, their loop mean, and ``current_counter()`` alone."""
    async with await pg_store(url, keyring) as store:
        client_id, redirect_uri = client_of(7)
        subject, scopes = subject_of(7), {"openid"}
        assert await store.is_approved(subject, client_id, redirect_uri, scopes)
        samples: list[float] = []
        for _ in range(lookups):
            started = time.perf_counter_ns()
            await store.is_approved(subject, client_id, redirect_uri, scopes)
            samples.append((time.perf_counter_ns() - started) / 1000)
        started = time.perf_counter_ns()
        for _ in range(lookups):
            await store.is_approved(subject, client_id, redirect_uri, scopes)
        mean = (time.perf_counter_ns() - started) / 1000 / lookups
        current = time_call(store._backend.current_counter, lookups)
        return samples, mean, current


async def pg_record_and_delay(
    url: str, keyring: KeyRing, count: int
) -> tuple[list[float], list[float]]:
    """``record`` on one store, and how long until a second store's counter moved."""
    async with await pg_store(url, keyring) as writer, await pg_store(url, keyring) as reader:
        writes: list[float] = []
        delays: list[float] = []
        for index in range(count):
            started = time.perf_counter_ns()
            await writer.record(
                f"bench-{index}", "client-x", "https://x.example/cb", SCOPES, ttl=60
            )
            committed = time.perf_counter_ns()
            writes.append((committed - started) / 1000)
            target = writer._backend.current_counter()
            assert target is not None
            # what is measured is when the synchronous counter moves: poll it
            while (reader._backend.current_counter() or 0) < target:  # noqa: ASYNC110
                await asyncio.sleep(0)
            delays.append((time.perf_counter_ns() - committed) / 1000)
        return writes, delays


async def pg_second_database(url: str) -> str:
    """A second database next to the one of ``url``, for the 1,000-record store."""
    import asyncpg  # noqa: PLC0415 - optional extra

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/") + "_bench_small"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


async def pg_drop_database(url: str, second: str) -> None:
    import asyncpg  # noqa: PLC0415 - optional extra

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP DATABASE "{urllib.parse.urlsplit(second).path.lstrip("/")}"')
    finally:
        await conn.close()


async def pg_drop(url: str) -> None:
    import asyncpg  # noqa: PLC0415 - optional extra

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA consentgate CASCADE")
    finally:
        await conn.close()


def postgres(url: str, large: int, keyring: KeyRing, lookups: int) -> None:
    """The PostgreSQL measurements. Both stores are timed in alternation, so they live
    in two databases: a throwaway cluster makes them; with a URL given, the second
    is ``<database>_bench_small`` (created and dropped by this script)."""
    cluster = None
    if url == "throwaway":
        sys.path.insert(0, str(REPO))
        from tests.support import pgcluster  # noqa: PLC0415 - a developer's throwaway server

        cluster = pgcluster.cluster()
        role = pgcluster.GATE_ROLE
        url = cluster.dsn(cluster.create_database(owner=role), role)
        small_url = cluster.dsn(cluster.create_database(owner=role), role)
        print(f"throwaway PostgreSQL cluster started in {cluster.started_in:.1f} s")
    else:
        small_url = asyncio.run(pg_second_database(url))
    try:
        seconds = asyncio.run(pg_build(small_url, 1000, keyring))
        print(f"PostgreSQL: built 1,000 records in {seconds:.1f} s", flush=True)
        seconds = asyncio.run(pg_build(url, large, keyring))
        print(f"PostgreSQL: built {large:,} records in {seconds:.1f} s", flush=True)
        small, big = asyncio.run(pg_uncached(small_url, url, large, keyring, lookups))
        plan = asyncio.run(pg_plan(url))
        cached, cached_mean, current = asyncio.run(pg_cached(url, keyring, 100_000))
        writes, delays = asyncio.run(pg_record_and_delay(url, keyring, 500))
        asyncio.run(pg_drop(url))
        if cluster is None:
            asyncio.run(pg_drop_database(url, small_url))
    finally:
        if cluster is not None:
            from tests.support import pgcluster  # noqa: PLC0415

            pgcluster.stop_cluster()
    print()
    print(line("PG is_approved uncached, 1,000 records", small))
    print(line(f"PG is_approved uncached, {large:,} records", big))
    print(growth("PG ", small, big))
    print("PG plan of the lookup:")
    print("\n".join(f"    {row}" for row in plan))
    print(line("PG is_approved cached (one key, repeated)", cached))
    print(f"{'PG is_approved cached, loop mean':<44} {cached_mean:.1f} µs")
    print(f"{'PG backend.current_counter()':<44} {current:.2f} µs")
    print(line("PG record (sign + insert + commit)", writes))
    print(line("PG another store's counter moved after", delays))


def growth(prefix: str, small: list[float], big: list[float]) -> str:
    """The growth from the small store to the large one, against its targets."""
    p50 = percentile(big, 0.5) / percentile(small, 0.5)
    p99 = percentile(big, 0.99) / percentile(small, 0.99)
    met = "MET" if p50 <= 1.5 and p99 <= 2 else "MISSED"
    return f"{prefix + 'growth p50 / p99 (targets <= 1.5 / 2)':<44} {p50:.2f} / {p99:.2f}: {met}"


def sqlite_plan(path: Path) -> str:
    """``EXPLAIN QUERY PLAN`` of the store's lookup (the read behind an uncached answer)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {Statements(SQLITE).lookup}", EXAMPLE_KEY)
        return "; ".join(str(row[3]) for row in rows)
    finally:
        conn.close()


async def pg_plan(url: str) -> list[str]:
    """``EXPLAIN (ANALYZE, BUFFERS)`` of the store's lookup of one existing record."""
    import asyncpg  # noqa: PLC0415 - optional extra

    client_id, redirect_uri = client_of(7)
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) {Statements(POSTGRES).lookup}",
            subject_of(7),
            client_id,
            redirect_uri,
            "",
            NOW,
        )
        return [str(row[0]) for row in rows]
    finally:
        await conn.close()


def line(label: str, samples: list[float]) -> str:
    return (
        f"{label:<44} p50 {percentile(samples, 0.5):8.1f} µs   "
        f"p99 {percentile(samples, 0.99):8.1f} µs   mean {statistics.fmean(samples):8.1f} µs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="size of the large store")
    parser.add_argument("--quick", action="store_true", help="100,000 records instead")
    parser.add_argument("--lookups", type=int, default=20_000, help="timed lookups per store")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also measure a PostgreSQL store at URL, or 'throwaway' for a temporary cluster",
    )
    parser.add_argument("--postgres-only", action="store_true", help="skip SQLite")
    args = parser.parse_args()
    large = 100_000 if args.quick else args.records
    keyring = KeyRing.generate()
    if args.postgres_only:
        if not args.postgres:
            parser.error("--postgres-only needs --postgres")
        postgres(args.postgres, large, keyring, args.lookups)
        return 0
    print(f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="consentgate-bench-") as directory:
        small_path = Path(directory) / "small.sqlite3"
        large_path = Path(directory) / "large.sqlite3"
        small_seconds = build(small_path, 1000, keyring)
        print(f"built 1,000 records in {small_seconds:.1f} s", flush=True)
        large_seconds = build(large_path, large, keyring)
        size = large_path.stat().st_size / 1e6
        print(f"built {large:,} records in {large_seconds:.1f} s ({size:.0f} MB)", flush=True)

        small, big = asyncio.run(
            time_uncached(small_path, large_path, large, keyring, args.lookups)
        )
        plan = sqlite_plan(large_path)
        cached, cached_mean = asyncio.run(time_cached(large_path, keyring, 100_000))
        version, counter, current = asyncio.run(time_probe(large_path, 100_000))
        writes = asyncio.run(time_record(small_path, keyring, 500))

    print()
    print(line("is_approved uncached, 1,000 records", small))
    print(line(f"is_approved uncached, {large:,} records", big))
    print(growth("", small, big))
    print(f"{'plan of the lookup':<44} {plan}")
    print(line("is_approved cached (one key, repeated)", cached))
    print(f"{'is_approved cached, loop mean':<44} {cached_mean:.1f} µs")
    print(f"{'PRAGMA data_version on the probe':<44} {version:.2f} µs")
    print(f"{'change counter read (after any commit)':<44} {counter:.2f} µs")
    print(f"{'backend.current_counter(), nothing changed':<44} {current:.2f} µs")
    durable, normal = writes
    print(line("record, durable (synchronous=FULL)", durable))
    print(line("record, before (synchronous=NORMAL)", normal))
    ratio = percentile(durable, 0.5) / percentile(normal, 0.5)
    print(f"{'ratio of the p50s, FULL / NORMAL':<44} {ratio:.2f}")
    if args.postgres:
        postgres(args.postgres, large, keyring, args.lookups)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
