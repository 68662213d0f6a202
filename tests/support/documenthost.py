"""A real HTTPS document host on a loopback address, for the fetcher's tests.

It counts TCP connections at accept time (before the TLS handshake), so a test can
say "the gate never connected", records every request head, and answers each path
with a route the test gives. Its certificates come from a throwaway CA made here with
``cryptography`` (as tests/upstream/test_pool.py does for the upstream pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

#: The names the host's certificate is valid for.
HOST_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "127.0.0.2", "127.0.0.3", "::1")


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate (PEM file) and key."""

    cert_file: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def make_authority(directory: Path, name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file = directory / f"{name}.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert_file, cert, key)


def issue(
    authority: Authority, directory: Path, names: Sequence[str] = HOST_NAMES
) -> ssl.SSLContext:
    """A server context with a certificate for ``names`` signed by ``authority``."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    stem = f"{authority.cert_file.stem}-server"
    cert_file = directory / f"{stem}.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, _write_key(key, directory / f"{stem}.key"))
    return context


@dataclass(frozen=True)
class Request:
    target: str
    headers: dict[str, str]


Route = Callable[[Request, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def response_bytes(
    status: int = 200,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    *,
    chunked: bool = False,
) -> bytes:
    lines = [f"HTTP/1.1 {status} X", *(f"{name}: {value}" for name, value in headers)]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        half = len(body) // 2
        payload = b"".join(
            b"%x\r\n%b\r\n" % (len(part), part) for part in (body[:half], body[half:]) if part
        )
        payload += b"0\r\n\r\n"
    else:
        if status not in (204, 304):
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def answer(
    status: int = 200,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (("Content-Type", "application/json"),),
    *,
    chunked: bool = False,
) -> Route:
    """A route answering the same bytes every time."""
    data = response_bytes(status, body, headers, chunked=chunked)

    async def route(_: Request, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return route


def document(client_id: str, **fields: object) -> bytes:
    return json.dumps(
        {
            "client_id": client_id,
            "client_name": "Test App",
            "redirect_uris": ["http://127.0.0.1/callback"],
            **fields,
        }
    ).encode()


@dataclass
class DocumentHost:
    """An HTTPS server on one loopback address; ``routes`` by exact target."""

    address: str
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    #: TCP connections accepted (before any TLS handshake).
    accepted: int = 0
    requests: list[Request] = field(default_factory=list)
    #: Set when the first request head is in.
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: Connections still being served (awaited when the host stops).
    serving: set[asyncio.Task[None]] = field(default_factory=set)
    server: asyncio.Server | None = None

    async def first_request(self) -> Request:
        await asyncio.wait_for(self.arrived.wait(), 5)
        return self.requests[0]

    def url(self, path: str, host: str | None = None) -> str:
        shown = host or (f"[{self.address}]" if ":" in self.address else self.address)
        return f"https://{shown}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.serving.add(task)
        task.add_done_callback(self.serving.discard)
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                request = Request(lines[0].split(" ")[1], headers)
                self.requests.append(request)
                self.arrived.set()
                route = self.routes.get(request.target) or answer(404, b"", ())
                await route(request, reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)


@contextlib.asynccontextmanager
async def running(
    address: str, context: ssl.SSLContext, routes: dict[str, Route] | None = None
) -> AsyncIterator[DocumentHost]:
    host = DocumentHost(address, routes=routes or {})
    loop = asyncio.get_running_loop()

    def protocol() -> asyncio.StreamReaderProtocol:
        host.accepted += 1
        reader = asyncio.StreamReader()
        return asyncio.StreamReaderProtocol(reader, host._serve)

    server = await loop.create_server(protocol, address, 0, ssl=context)
    host.server = server
    host.port = server.sockets[0].getsockname()[1]
    try:
        yield host
    finally:
        server.close()
        if host.serving:  # each ends by itself within its own bounds (5 s at most)
            await asyncio.wait(set(host.serving), timeout=10)
        await server.wait_closed()
