"""Opening the gate's sign-in with the app ([identity]): the JOSE library is there, the
configuration is whole, the provider's client is opened and closed with the app.

joserfc is the optional ``identity`` extra: a gate with ``[identity]`` set and without it
refuses to start with one sentence saying what to install, rather than failing at the
first person's sign-in. The provider's metadata is fetched once at start so a wrong
issuer shows in the log at once; a provider that is down does not stop the start (the
sign-in fails closed, with a page, until it is back).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from consentgate.config.model import Config
from consentgate.core.startup_errors import StartupError
from consentgate.web.appkeys import CLOCK, IDENTITY, LIVE_SETTINGS
from consentgate.web.identity.provider import (
    IdentityProvider,
    ProviderUnavailable,
    provider_tls,
)

log = logging.getLogger("consentgate")


def identity_problems(config: Config) -> list[str]:
    """What stops ``[identity]`` from working, each naming the key (empty when off)."""
    identity = config.identity
    if not identity.enabled:
        return []
    problems = []
    if not identity.client_id:
        problems.append(
            f"identity.client_id: required when identity.issuer is set (issuer is "
            f"{identity.issuer!r}): the gate signs in as its own client there"
        )
    if identity.ca_file is not None:
        try:
            provider_tls(identity)
        except ValueError as exc:
            problems.append(str(exc))
    if importlib.util.find_spec("joserfc") is None:
        problems.append(
            "identity.issuer: set, but the JOSE library of the sign-in (joserfc) is not "
            "installed: install consentgate[identity], or empty identity.issuer"
        )
    return problems


async def identity_ctx(app: web.Application) -> AsyncIterator[None]:
    """The provider's client for the app's life, when ``[identity]`` is set."""
    config = app[LIVE_SETTINGS].current.config
    problems = identity_problems(config)
    if problems:
        raise StartupError("; ".join(problems))
    if not config.identity.enabled:
        yield
        return
    provider = IdentityProvider(config.identity, app[CLOCK])
    app[IDENTITY] = provider
    try:
        # Logged by the provider; each sign-in fails closed until it is back.
        with contextlib.suppress(ProviderUnavailable):
            await provider.metadata()
        yield
    finally:
        await provider.close()
