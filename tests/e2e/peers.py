"""The guard of every real-peer test module: skip without the ``e2e`` extra, except in
CI, where a missing peer fails the run."""

from __future__ import annotations

import importlib.util
import os

import pytest

_REASON = "the real-peer tests need the e2e extra: pip install -e '.[e2e]'"


def require_peers() -> None:
    """Call at the top of a test module, before it imports fastmcp.

    The IdP is only ever imported in its own process (idp_process.py). Importing it
    here just to check would load Authlib into the test process, which installs an
    "always" filter for its deprecation warnings and prints one: look both packages
    up instead."""
    missing = [p for p in ("fastmcp", "oidc_provider_mock") if importlib.util.find_spec(p) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed; {_REASON}"
    if os.environ.get("CI_REQUIRE_E2E") == "1":  # set by .ci/run: never skip there
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)
