"""``consentgate consents``: list, revoke, verify and export the consent records.

Conventions: Hydra's admin API (list and revoke by subject, by client or one by one);
the store's ``page_records``/``iter_records`` and ``revoke`` are the admin API's too,
so both are one implementation. The store is imported inside the handlers, so
``--version`` and ``check-config`` stay light.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from consentgate.cli.audit_commands import audit_behind_mark, print_chain
from consentgate.cli.conventions import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Commands,
    add_config_argument,
    add_store_keys_argument,
    error,
    json_line,
    program_name,
    utc,
)
from consentgate.cli.store_session import with_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from consentgate.audit.integrity import RecordKind
    from consentgate.core.signed.records import ConsentRecord
    from consentgate.store import ConsentStore


def _warn_failures(count: int) -> None:
    if count:
        print(
            f"consentgate: warning: {count} record(s) failed verification and are not "
            f"shown; run: {program_name()} consents verify",
            file=sys.stderr,
        )


def _cmd_consents_list(args: argparse.Namespace) -> int:
    from consentgate.clients.kinds import Describer
    from consentgate.core.signed.records import consent_listing
    from consentgate.store import VerificationFailure

    async def action(store: ConsentStore) -> int:
        async def is_registered(client_id: str) -> bool:
            return await store.get_client(client_id) is not None

        # A URL client by its URL, any other by whether the store keeps its
        # registration: the admin API's GET /admin/consents says the same.
        described = Describer(is_registered)
        failures: list[VerificationFailure] = []
        now = store.clock()
        subjects = await _subjects(store, args)
        # The name a person signed in with ([identity]), beside their subject.
        names = await store.people.names()

        async def each_subject() -> AsyncIterator[ConsentRecord]:
            for subject in subjects:
                async for record in store.iter_records(
                    client_id=args.client_id,
                    redirect_uri=args.redirect_uri,
                    subject=subject,
                    failures=failures,
                ):
                    yield record

        records = each_subject()
        out = sys.stdout
        if args.json:
            out.write("[")
            first = True
            async for record in records:
                out.write("\n" if first else ",\n")
                description = await described(record.client_id)
                listed = {**consent_listing(record, now), "user": names.get(record.subject)}
                out.write(json_line({**listed, **description.fields()}))
                first = False
            out.write("\n]\n")
        else:
            columns = (
                "ID STATUS SUBJECT USER CLIENT_ID REDIRECT_URI SCOPES RESOURCE GRANTED EXPIRES "
                "CLIENT_KIND CLIENT_DOMAIN"
            )
            out.write(columns.replace(" ", "\t") + "\n")
            async for record in records:
                description = await described(record.client_id)
                fields = (
                    record.id,
                    record.status(now),
                    record.subject,
                    _cell(names.get(record.subject)),
                    record.client_id,
                    record.redirect_uri,
                    " ".join(sorted(record.scopes)) or "-",
                    record.resource or "-",
                    utc(record.granted_at),
                    utc(record.expires_at),
                    description.kind,
                    description.domain or "-",
                )
                out.write("\t".join(fields) + "\n")
        out.flush()
        _warn_failures(len(failures))
        return EXIT_OK

    return with_store(args, action, verifying=True)


def _cell(value: str | None) -> str:
    """A value for one tab-separated cell: "-" when none, tabs and line ends made spaces
    (a display claim is the provider's text, :func:`consentgate.core.identity.person.clean_display`
    removes control characters already)."""
    if not value:
        return "-"
    return " ".join(value.split())


async def _subjects(store: ConsentStore, args: argparse.Namespace) -> list[str | None]:
    """The subjects ``--user`` names ([identity]: every subject shown by that name,
    :mod:`consentgate.store.parts.person_names`), else ``--subject`` (None: any)."""
    if args.user is None:
        return [args.subject]
    subjects: list[str | None] = list(await store.people.subjects_named(args.user))
    if not subjects:
        print(f"consentgate: warning: nobody signed in as {args.user!r}", file=sys.stderr)
    return subjects


def _cmd_consents_revoke(args: argparse.Namespace) -> int:
    if args.all and not args.yes:
        error("--all revokes every consent; add --yes to confirm")
        return EXIT_USAGE

    async def action(store: ConsentStore) -> int:
        if args.user is not None:
            subjects = await store.people.subjects_named(args.user)
            if not subjects:
                error(f"nobody signed in as {args.user!r}")
                return EXIT_FAILURE
            count = 0
            for subject in subjects:
                count += await store.revoke(subject=subject, by="cli")
            print(f"revoked {count} consent(s) of {len(subjects)} person(s) named {args.user!r}")
            return EXIT_OK
        count = await store.revoke(
            id=args.id,
            client_id=args.client_id,
            redirect_uri=args.redirect_uri,
            subject=args.subject,
            all=args.all,
            by="cli",
        )
        if store.tamper_events:
            print(
                f"consentgate: warning: {store.tamper_events} matching record(s) failed "
                f"verification and were left as they are; run: {program_name()} consents verify",
                file=sys.stderr,
            )
        if args.id is not None and count == 0:
            error(f"no unrevoked consent with id {args.id!r}")
            return EXIT_FAILURE
        print(f"revoked {count} consent(s)")
        return EXIT_OK

    return with_store(args, action)


#: How ``consents verify`` names each kind of row it counts.
_KIND_NAMES: dict[RecordKind, str] = {
    "consent": "consent record(s)",
    "client": "client registration(s)",
    "pending": "pending row(s) of an older version",
    "sighting": "client sighting(s)",
}


def _cmd_consents_verify(args: argparse.Namespace) -> int:
    async def action(store: ConsentStore) -> int:
        report = await store.verify_all()
        counts = report.counts  # every row paged, revoked and expired included
        for failure in report.failures:
            print(f"{failure.kind} {failure.id}: {failure.reason}")
        stored = await store.stored_keys()
        for name in stored.unreadable:
            print(f"setting {name}: not the public key its name says (edited)")
        unknown = sorted(set(stored.keys) - set(store.keyring.kids))
        if unknown:
            print(
                f"consentgate: note: the store also keeps key(s) {', '.join(unknown)} that "
                "this keys directory lacks; records signed with them fail here",
                file=sys.stderr,
            )
        restored = await store.restored_revocations()
        for record, revoked in restored:
            print(
                f"consent {record.id}: unrevoked, but a signed audit row says it was revoked "
                f"at {utc(revoked)} (granted {utc(record.granted_at)}): a copy from before "
                "the revocation was put back in the database"
            )
        chain = await store.verify_audit()
        print_chain(chain)
        behind = await audit_behind_mark(args, store)
        failing = {kind: sum(f.kind == kind for f in report.failures) for kind in _KIND_NAMES}
        failing["consent"] += len(restored)
        if report.failures or restored or stored.unreadable or not chain.ok or behind is not None:
            failed = [
                f"{failing[kind]} of {counts[kind]} {name}"
                for kind, name in _KIND_NAMES.items()
                if failing[kind]
            ]
            if stored.unreadable:
                failed.append(f"{len(stored.unreadable)} stored key(s)")
            if not chain.ok or behind is not None:
                failed.append("the audit trail")
            listed = ", ".join(failed[:-1]) + " and " if len(failed) > 1 else ""
            error(f"{listed}{failed[-1]} failed verification")
            return EXIT_FAILURE
        counted = [
            f"{counts['consent']} {_KIND_NAMES['consent']} (as consents list counts them: "
            "revoked and expired included)",
            f"{counts['client']} {_KIND_NAMES['client']}",
        ]
        for kind in ("pending", "sighting"):  # named only when there are any
            if counts[kind]:
                counted.append(f"{counts[kind]} {_KIND_NAMES[kind]}")
        print(f"all verify: {', '.join(counted[:-1])} and {counted[-1]}")
        return EXIT_OK

    return with_store(args, action, verifying=True)


def _cmd_consents_export(args: argparse.Namespace) -> int:
    from consentgate.core.signed.records import CLIENT_ENCODING, CONSENT_ENCODING, client_listing
    from consentgate.store import VerificationFailure

    async def write(store: ConsentStore, out: IO[str]) -> int:
        failures: list[VerificationFailure] = []
        header = {
            "format": "consentgate-export-v1",
            "encodings": {"consent": CONSENT_ENCODING, "client": CLIENT_ENCODING},
            "exported_at": int(store.clock()),
            "jwks": store.keyring.jwks(),
        }
        out.write(json_line(header) + "\n")
        async for client in store.iter_clients(failures=failures):
            out.write(json_line({"kind": "client", **client_listing(client)}) + "\n")
        async for record in store.iter_records(failures=failures):
            out.write(json_line({"kind": "consent", **record.to_json()}) + "\n")
        out.flush()
        if failures:
            for failure in failures:
                print(
                    f"consentgate: warning: not exported: {failure.kind} {failure.id}: "
                    f"{failure.reason}",
                    file=sys.stderr,
                )
            return EXIT_FAILURE
        return EXIT_OK

    async def action(store: ConsentStore) -> int:
        if args.output is None:
            return await write(store, sys.stdout)
        try:
            with args.output.open("w", encoding="utf-8") as out:
                return await write(store, out)
        except OSError as exc:
            error(f"cannot write {args.output}: {exc.strerror or exc}")
            return EXIT_FAILURE

    return with_store(args, action, verifying=True)


def add_consents(commands: Commands) -> None:
    consents = commands.add_parser("consents", help="list, revoke, verify and export consents")
    consent_commands = consents.add_subparsers(
        dest="consents_command", metavar="ACTION", required=True
    )
    show = consent_commands.add_parser("list", help="list consent records that verify")
    add_config_argument(show)
    show.add_argument("--client", dest="client_id", metavar="ID", help="only this client_id")
    show.add_argument("--redirect-uri", metavar="URI", help="only this exact redirect_uri")
    who = show.add_mutually_exclusive_group()
    who.add_argument("--subject", metavar="S", help="only this subject")
    who.add_argument(
        "--user", metavar="NAME", help="only this person's ([identity] display claim, e.g. email)"
    )
    show.add_argument("--json", action="store_true", help="print a JSON array")
    add_store_keys_argument(show)
    show.set_defaults(handler=_cmd_consents_list)

    revoke = consent_commands.add_parser("revoke", help="revoke consents")
    add_config_argument(revoke)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--id", metavar="X", help="one consent by its id")
    which.add_argument("--client", dest="client_id", metavar="ID", help="every consent of a client")
    which.add_argument("--redirect-uri", metavar="URI", help="every consent for a redirect_uri")
    which.add_argument("--subject", metavar="S", help="every consent of one subject (browser)")
    which.add_argument(
        "--user", metavar="NAME", help="every consent of a person ([identity] display claim)"
    )
    which.add_argument("--all", action="store_true", help="every consent (needs --yes)")
    revoke.add_argument("--yes", action="store_true", help="confirm --all")
    revoke.set_defaults(handler=_cmd_consents_revoke)

    verify = consent_commands.add_parser(
        "verify", help="check every signature; exit 1 and list each record that fails"
    )
    add_config_argument(verify)
    add_store_keys_argument(verify)
    verify.set_defaults(handler=_cmd_consents_verify)

    export = consent_commands.add_parser(
        "export", help="JSON lines: a header with the public keys (JWKS), then every record"
    )
    add_config_argument(export)
    export.add_argument(
        "--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of stdout"
    )
    add_store_keys_argument(export)
    export.set_defaults(handler=_cmd_consents_export)
