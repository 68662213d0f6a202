"""One HTTPS GET of a client's metadata document, to an address checked before connecting.

A URL client_id makes the gate fetch a URL an anonymous client chose, so this GET is
built around the SSRF rules (MCP Security Best Practices, "SSRF"; MCP 2025-11-25,
"Client ID Metadata Document Security"; docs/references.md):

* The host is resolved once (``loop.getaddrinfo``, or no lookup for an IP literal)
  and EVERY address it resolves to is checked with ``fetch_addresses.refusal`` and
  the operator's allow list: a name that answers one public and one private address
  is refused whole (the next lookup could give the private one first). The socket
  then connects to a checked address by number, so nothing resolves the name a
  second time between the check and the connection (DNS rebinding), and the
  connected peer is compared with that address before a byte is sent.
* TLS with ``server_hostname`` = the URL's host: the certificate is verified for the
  name the person sees, against the system's roots plus the operator's CA file.
  HTTPS only (a URL client_id is https by rule).
* No redirect is followed: a 3xx is a failure (following one would need the whole
  check again at every hop, and a document must be served at its own URL anyway).
* ``Accept: application/json``, ``Accept-Encoding: identity``, no cookies, no
  credentials, a ``User-Agent`` naming consentgate, ``Connection: close``.
* The answer must be 200 with a JSON ``Content-Type`` (or 304 to a revalidation),
  unencoded, at most 5,120 bytes (FastMCP's cap): a ``Content-Length`` above it is
  refused before the body, and a chunked or unframed body is read no further than
  one byte past the cap.
* One deadline over all of it, lookup to last byte (``fetch_timeout``): a host that
  sends its headers and then stalls ends there.

Why asyncio and llhttp rather than ``aiohttp.ClientSession``: pinning an address in
aiohttp takes a custom resolver plus a check of the connected peer inside its
connector, its pool would keep connections to hosts a stranger chose, and its
redirect, cookie and decompression machinery would each have to be switched off and
kept off. Here the socket is connected by this module to the address it checked,
the TLS layer is asyncio's, and the response is parsed by ``httptools`` (llhttp,
the strict parser the upstream pool already uses, ``upstream/pool.py``): framing
by ``Content-Length`` or chunked encoding, refusal of ambiguous framing. The
response is small and read whole, so there is no pool and no streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httptools

from consentgate import __version__
from consentgate.clients.client_id_urls import DEFAULT_PORT, SCHEME_PREFIX, ClientIdURL
from consentgate.clients.fetch_addresses import Address, Network, refusal
from consentgate.clients.fetch_results import FailureReason
from consentgate.clients.metadata_documents import MAX_DOCUMENT_BYTES

#: Status line and headers of a document response together, at most.
MAX_HEADER_BYTES: Final = 16 * 1024
USER_AGENT: Final = f"consentgate/{__version__} (client metadata document fetch)"
_READ_SIZE: Final = 8192

#: Resolves ``(host, port)`` to address texts, as ``getaddrinfo`` does (injectable so a
#: test can answer for a name without a DNS server).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class FetchError(Exception):
    """The GET failed: ``reason`` (``fetch_results.FailureReason``) and a detail for
    the log."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: FailureReason = reason
        self.detail = detail


@dataclass(frozen=True)
class DocumentResponse:
    """A 200 with its body, or a 304 (no body)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: The address connected to (for the log).
    address: str

    def header(self, name: str) -> str | None:
        """Every field line named ``name`` joined with ", " (RFC 9110 §5.3), or None."""
        lowered = name.lower()
        values = [value for key, value in self.headers if key.lower() == lowered]
        return ", ".join(values) if values else None


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for ``host`` (TCP), in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def tls_context(
    ca_file: Path | None = None, *, key: str = "clients.fetch_ca_file"
) -> ssl.SSLContext:
    """Certificates verified against the system's roots plus ``ca_file`` (PEM); host
    names checked; TLS 1.2 at least. Raises ``ValueError`` naming ``key`` (the config
    key the file came from) for a CA file that cannot be loaded."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"{key}: cannot load CA certificates from {str(ca_file)!r} ({exc})"
            ) from None
    return context


def request_target(client: ClientIdURL) -> str:
    """The path and query of the URL, exactly as written (origin-form, RFC 9112 §3.2.1)."""
    rest = client.url[len(SCHEME_PREFIX) :]
    return rest[rest.index("/") :]


def host_header(client: ClientIdURL) -> str:
    return client.host if client.port == DEFAULT_PORT else f"{client.host}:{client.port}"


def request_head(client: ClientIdURL, validators: Sequence[tuple[str, str]] = ()) -> bytes:
    lines = [
        f"GET {request_target(client)} HTTP/1.1",
        f"Host: {host_header(client)}",
        f"User-Agent: {USER_AGENT}",
        "Accept: application/json",
        "Accept-Encoding: identity",
        "Connection: close",
        *(f"{name}: {value}" for name, value in validators),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def _addresses(client: ClientIdURL, resolve: Resolver) -> list[Address]:
    literal = client.address
    if literal is not None:
        return [literal]
    try:
        texts = await resolve(client.host, client.port)
    except (OSError, UnicodeError) as exc:  # socket.gaierror; a label idna cannot encode
        raise FetchError("dns_failed", f"{client.host} does not resolve ({exc})") from None
    addresses: list[Address] = []
    for text in dict.fromkeys(texts):
        try:
            addresses.append(ipaddress.ip_address(text))
        except ValueError:
            raise FetchError(
                "blocked_address", f"{client.host} resolves to {text!r}, not an IP address"
            ) from None
    if not addresses:
        raise FetchError("dns_failed", f"{client.host} resolves to no address")
    return addresses


def check_addresses(
    client: ClientIdURL, addresses: Sequence[Address], allowed: Sequence[Network]
) -> None:
    """Every address may be connected to, or :class:`FetchError` ``blocked_address``."""
    for address in addresses:
        why = refusal(address, allowed)
        if why is not None:
            raise FetchError("blocked_address", f"{client.host} resolves to {address} ({why})")


async def _connect(addresses: Sequence[Address], port: int) -> tuple[socket.socket, Address]:
    """A TCP connection to the first checked address that accepts one, by number."""
    loop = asyncio.get_running_loop()
    failures: list[str] = []
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)  # EMFILE, no IPv6: OSError
        except OSError as exc:
            failures.append(f"{address}: {exc.strerror or exc}")
            continue
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (str(address), port))
            peer = ipaddress.ip_address(sock.getpeername()[0])
        except OSError as exc:
            sock.close()
            failures.append(f"{address}: {exc.strerror or exc}")
            continue
        except BaseException:
            sock.close()
            raise
        if peer != address:  # pragma: no cover - a kernel that connects elsewhere
            sock.close()
            raise FetchError("blocked_address", f"connected to {peer}, not the checked {address}")
        return sock, address
    raise FetchError("connect_failed", "; ".join(failures))


class _Response:
    """llhttp's callbacks: the head, then the body up to the cap."""

    def __init__(self, parser_owner: _Exchange) -> None:
        self.exchange = parser_owner
        self.status = 0
        self.names: list[bytes] = []
        self.values: list[bytes] = []
        self.header_bytes = 0
        self.head_done = False
        self.framed = False
        self.complete = False
        self.body = bytearray()

    def on_status(self, status: bytes) -> None:
        self._count(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.names.append(name)
        self.values.append(value)
        self._count(len(name) + len(value) + 4)

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            raise FetchError(
                "bad_response", f"the response headers are longer than {MAX_HEADER_BYTES} bytes"
            )

    def on_headers_complete(self) -> None:
        status = self.exchange.parser.get_status_code()
        if status < 200:
            if status == 101:
                raise FetchError("bad_response", "the host switched protocols")
            self.names.clear()  # an interim response (100, 103): not the answer
            self.values.clear()
            self.header_bytes = 0
            return
        self.status = status
        self.head_done = True
        self.framed = any(
            name.lower() == b"content-length"
            or (name.lower() == b"transfer-encoding" and b"chunked" in value.lower())
            for name, value in zip(self.names, self.values, strict=True)
        )
        self.exchange.check_head(self)

    def on_body(self, data: bytes) -> None:
        self.body += data
        if len(self.body) > MAX_DOCUMENT_BYTES:
            raise FetchError("too_large", f"the body is longer than {MAX_DOCUMENT_BYTES} bytes")

    def on_message_complete(self) -> None:
        if self.head_done:
            self.complete = True

    def headers(self) -> tuple[tuple[str, str], ...]:
        return tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in zip(self.names, self.values, strict=True)
        )

    def header(self, name: bytes) -> str | None:
        values = [
            value.decode("latin-1")
            for key, value in zip(self.names, self.values, strict=True)
            if key.lower() == name
        ]
        return ", ".join(values) if values else None


class _Exchange:
    """One request on one connection; the answer is judged as soon as its head is in."""

    def __init__(self, revalidating: bool) -> None:
        self.revalidating = revalidating
        self.response = _Response(self)
        self.parser = httptools.HttpResponseParser(self.response)

    def check_head(self, response: _Response) -> None:
        status = response.status
        if status == 304:
            if self.revalidating:
                return
            raise FetchError("http_status", "status 304 to a request that was not conditional")
        if 300 <= status < 400:
            location = (response.header(b"location") or "")[:200]
            raise FetchError("redirect", f"status {status} to {location!r} (not followed)")
        if status != 200:
            raise FetchError("http_status", f"status {status}")
        content_type = response.header(b"content-type")
        if not _is_json(content_type):
            raise FetchError("not_json", f"Content-Type {(content_type or '')[:100]!r}")
        encoding = (response.header(b"content-encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise FetchError("not_json", f"the body is encoded ({encoding[:40]!r})")
        length = response.header(b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > MAX_DOCUMENT_BYTES:
            raise FetchError(
                "too_large", f"Content-Length {int(length)} is above {MAX_DOCUMENT_BYTES} bytes"
            )

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, FetchError):
                raise cause from None
            raise FetchError("bad_response", f"malformed response: {cause!r}") from None
        except httptools.HttpParserUpgrade:
            raise FetchError("bad_response", "the host switched protocols") from None
        except httptools.HttpParserError as exc:
            raise FetchError("bad_response", f"malformed response: {exc}") from None


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, revalidating: bool
) -> _Response:
    exchange = _Exchange(revalidating)
    response = exchange.response
    writer.write(head)
    while not response.complete:
        try:
            data = await reader.read(_READ_SIZE)
        except (OSError, ssl.SSLError) as exc:
            raise FetchError("bad_response", f"the connection failed: {exc}") from None
        if not data:
            if response.head_done and not response.framed:
                break  # a body delimited by the connection's end (RFC 9112 §6.3, rule 8)
            raise FetchError("bad_response", "the connection closed before the response ended")
        exchange.feed(data)
    return response


async def document_get(
    client: ClientIdURL,
    *,
    allowed: Sequence[Network],
    ssl_context: ssl.SSLContext,
    time_limit: float,
    resolve: Resolver = system_resolve,
    validators: Sequence[tuple[str, str]] = (),
) -> DocumentResponse:
    """GET ``client.url`` under the rules above; raises :class:`FetchError`.

    ``validators`` (``If-None-Match``, ``If-Modified-Since``) make it a revalidation:
    a 304 is then an answer (with no body)."""
    stage = "resolving the host"
    writer: asyncio.StreamWriter | None = None
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(time_limit):
            addresses = await _addresses(client, resolve)
            check_addresses(client, addresses, allowed)
            stage = "connecting"
            sock, address = await _connect(addresses, client.port)
            stage = "in the TLS handshake"
            try:
                reader, writer = await asyncio.open_connection(
                    sock=sock,
                    ssl=ssl_context,
                    server_hostname=client.host.strip("[]").rstrip("."),
                    ssl_handshake_timeout=time_limit,
                )
            except (ssl.SSLError, ssl.CertificateError) as exc:
                raise FetchError("tls_failed", f"{address}: {exc}") from None
            except OSError as exc:
                raise FetchError("tls_failed", f"{address}: the handshake failed ({exc})") from None
            sock = None  # the transport owns it now
            stage = "waiting for the answer"
            response = await _exchange(
                reader, writer, request_head(client, validators), bool(validators)
            )
    except TimeoutError:
        detail = f"no complete answer within {time_limit:g} s ({stage})"
        raise FetchError("timeout", detail) from None
    finally:
        if sock is not None:
            sock.close()
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.transport.abort()  # all that is needed is in; no keep-alive
    return DocumentResponse(
        status=response.status,
        headers=response.headers(),
        body=bytes(response.body) if response.status == 200 else b"",
        address=str(address),
    )
