"""A provider behind a private CA ([identity] ca_file): the gate trusts it through the
one key, as ``[clients] fetch_ca_file`` does for document hosts; without the key the
sign-in fails closed; a file that is not PEM stops the start naming the key. The
provider is the test IdP over TLS on loopback, its certificate from a throwaway CA."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiohttp
import pytest

from consentgate.core.startup_errors import StartupError
from tests.conftest import StartStack, StartUpstream
from tests.support.browsersim import Browser
from tests.support.documenthost import issue, make_authority
from tests.support.testidp import TestIdp, identity_section
from tests.web.consent_flow.test_authorize import auth_params, register
from tests.web.identity.test_signin import continued


async def private_idp(tmp_path: Path, start_upstream: StartUpstream) -> tuple[TestIdp, Path]:
    authority = make_authority(tmp_path, "private-idp-ca")
    idp = TestIdp()
    idp.url = await start_upstream(idp.app(), ssl=issue(authority, tmp_path))
    assert idp.url.startswith("https://127.0.0.1:")
    return idp, authority.cert_file


async def test_a_provider_behind_a_private_ca_is_trusted_through_identity_ca_file(
    tmp_path: Path, start_upstream: StartUpstream, start_stack: StartStack
) -> None:
    idp, ca_file = await private_idp(tmp_path, start_upstream)
    stack = await start_stack(identity=identity_section(idp, ca_file=str(ca_file)))
    client_id = await register(stack)
    trusting = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(ca_file)))
    async with Browser(stack.url) as browser, aiohttp.ClientSession(connector=trusting) as tls:
        started = await browser.authorize(auth_params(client_id))
        assert started.status == 302 and started.location.startswith(idp.url)
        # The browser at the provider (which the person's browser trusts, as it would).
        async with tls.get(started.location, allow_redirects=False) as answered:
            assert answered.status == 302
            back = await browser.get(answered.headers["Location"], site="cross-site")
        page = await continued(browser, back)
    assert page.is_consent_page and "alice@example.com" in page.text
    assert idp.token_requests == 1
    assert stack.proxy.reached("/authorize") == []


async def test_without_ca_file_a_private_provider_fails_closed(
    tmp_path: Path, start_upstream: StartUpstream, start_stack: StartStack
) -> None:
    idp, _ = await private_idp(tmp_path, start_upstream)
    stack = await start_stack(identity=identity_section(idp))
    client_id = await register(stack)
    async with Browser(stack.url) as browser:
        page = await browser.authorize(auth_params(client_id))
    assert page.status == 503 and "Sign-in is not available right now" in page.text
    assert stack.proxy.reached("/authorize") == []


async def test_a_ca_file_that_is_not_pem_stops_the_start_naming_the_key(
    tmp_path: Path, start_upstream: StartUpstream, start_stack: StartStack
) -> None:
    idp, _ = await private_idp(tmp_path, start_upstream)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(StartupError, match=r"identity\.ca_file: cannot load CA certificates"):
        await start_stack(identity=identity_section(idp, ca_file=str(garbage)))
