"""``consentgate audit``: list and verify the store's hash-chained audit trail
(``consents verify`` checks the chain too, with :func:`print_chain`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from consentgate.cli.conventions import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    add_config_argument,
    add_store_keys_argument,
    error,
    json_line,
    load,
    utc,
)
from consentgate.cli.store_session import with_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from consentgate.audit.chain import ChainReport
    from consentgate.audit.trail import AuditRecord
    from consentgate.store import ConsentStore


def print_chain(chain: ChainReport) -> None:
    """One line on the audit chain: intact (which rows), or the first broken row."""
    if chain.ok:
        if chain.checked:
            print(
                f"audit trail: {chain.checked} row(s) verify, an unbroken chain from row "
                f"{chain.first_seq} to row {chain.last_seq}"
            )
        else:
            print("audit trail: empty")
        return
    where = f"row {chain.broken_seq}" if chain.broken_seq is not None else "its end"
    print(f"audit trail: broken at {where}: {chain.problem}")


async def audit_behind_mark(args: argparse.Namespace, store: ConsentStore) -> Path | None:
    """Compare the trail with the high-water mark of the configured keys directory
    (when it is on this machine); print the problem and return the mark's file when
    the trail is behind it: emptied or cut back in the database, which the chain
    alone cannot show."""
    from consentgate.store.auditmark import MARK_NAME, read_mark

    keys_dir = load(args).keys.dir
    mark = read_mark(keys_dir)
    if mark is None:
        return None
    problem = mark if isinstance(mark, str) else await store.audit_mark_problem(mark)
    if problem is None:
        return None
    print(f"audit trail: behind its mark: {problem}")
    return keys_dir / MARK_NAME


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    async def action(store: ConsentStore) -> int:
        chain = await store.verify_audit()
        print_chain(chain)
        mark = await audit_behind_mark(args, store)
        if mark is not None:
            error(
                f"the audit trail is behind the mark in {mark}: rows were deleted in the "
                "database; restore the store from a backup (or, to accept the loss, "
                "remove that file and start the gate again)"
            )
            return EXIT_FAILURE
        if not chain.ok:
            error(
                "the audit trail failed verification: rows were edited or deleted in the "
                "database; compare with a backup and an export"
            )
            return EXIT_FAILURE
        return EXIT_OK

    return with_store(args, action, verifying=True)


def _since(text: str | None) -> int | None:
    from consentgate.core.auditquery import parse_since

    if text is None:
        return None
    try:
        return parse_since(text, time.time())
    except ValueError as exc:
        raise ValueError(f"--{exc}") from None


async def _each(records: list[AuditRecord]) -> AsyncIterator[AuditRecord]:
    for record in records:
        yield record


def _cmd_audit_list(args: argparse.Namespace) -> int:
    from consentgate.core.auditquery import EVENTS
    from consentgate.core.requestids import parse_request_id

    try:
        since = _since(args.since)
        if args.request_id is not None:
            parse_request_id("--request-id", args.request_id)
    except ValueError as exc:
        error(str(exc))
        return EXIT_USAGE
    if args.event is not None and args.event not in EVENTS:
        error(f"--event: expected one of {', '.join(EVENTS)}, got {args.event!r}")
        return EXIT_USAGE

    async def action(store: ConsentStore) -> int:
        await store.flush_audit()
        if not args.json:
            print("SEQ\tTIME\tEVENT\tACTOR\tCLIENT_ID\tREDIRECT_URI\tSCOPES\tSUBJECT\tDETAIL")
        filters = {
            "since": since,
            "event": args.event,
            "client_id": args.client_id,
            "request_id": args.request_id,
        }
        if args.user is None:
            records = store.iter_audit(**filters)
        else:
            # Several subjects may share a name ([identity]): their rows, in chain order.
            named = [
                record
                for subject in await store.people.subjects_named(args.user)
                async for record in store.iter_audit(**filters, subject=subject)
            ]
            records = _each(sorted(named, key=lambda r: r.seq))
        async for record in records:
            if args.json:
                print(json_line(record.as_json()))
                continue
            detail = " ".join(f"{k}={v}" for k, v in sorted(record.details().items()))
            columns = (
                str(record.seq),
                utc(record.at),
                record.event,
                record.actor or "-",
                record.client_id or "-",
                record.redirect_uri or "-",
                record.scopes or "-",
                record.subject or "-",
                detail or "-",
            )
            print("\t".join(columns))
        return EXIT_OK

    return with_store(args, action, verifying=True)


def add_audit(commands: Commands) -> None:
    audit = commands.add_parser("audit", help="list and verify the hash-chained audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    trail = audit_commands.add_parser("list", help="print audit rows, oldest first")
    add_config_argument(trail)
    trail.add_argument(
        "--since", metavar="WHEN", help='only rows since a duration ago ("7d") or a UTC date'
    )
    trail.add_argument("--client", dest="client_id", metavar="ID", help="only this client_id")
    trail.add_argument("--event", metavar="E", help="only this event (approved, denied, ...)")
    trail.add_argument(
        "--request-id",
        metavar="ID",
        help="only the rows of this request (the id at the foot of every page of the gate)",
    )
    trail.add_argument(
        "--user",
        metavar="NAME",
        help="only the rows of this person ([identity] display claim, e.g. email)",
    )
    trail.add_argument("--json", action="store_true", help="one JSON object per line")
    add_store_keys_argument(trail)
    trail.set_defaults(handler=_cmd_audit_list)
    check = audit_commands.add_parser(
        "verify", help="check the chain; exit 1 and name the first broken row"
    )
    add_config_argument(check)
    add_store_keys_argument(check)
    check.set_defaults(handler=_cmd_audit_verify)
