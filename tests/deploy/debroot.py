"""The Debian root the deployment tests boot (systemd-nspawn) and build images from
(buildah): ``debootstrap --variant=minbase bookworm`` with systemd, dbus, python3, curl
and openssl, made once and kept under ``/var/cache/consentgate-tests/`` (the machine's
cache, not the checkout: it is 300 MB and shared by every checkout and run).

Why a real root and not a mock: what the unit promises (READY=1, the dynamic user,
credentials, the hardening) is systemd's behaviour, and only systemd shows it; Debian
12's systemd 252 is the oldest the unit is written for.

These tests need root, Debian's ``debootstrap``, ``systemd-container`` (systemd-nspawn)
and, for the image, ``buildah``, and the Debian mirror once. Without them they skip,
naming what is missing, except under ``CI_REQUIRE_DEPLOY=1`` (set by ``.ci/run``),
where they fail: CI must run them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import Final, NoReturn

import pytest

CACHE: Final = Path(os.environ.get("CONSENTGATE_TEST_CACHE", "/var/cache/consentgate-tests"))
SUITE: Final = "bookworm"
MIRROR: Final = os.environ.get("CONSENTGATE_TEST_MIRROR", "http://deb.debian.org/debian")
#: What the root holds besides minbase: systemd to boot, python3 for the single file;
#: dbus (systemd-run needs the system bus), curl and openssl for the commands the docs
#: give, as on any Debian server.
PACKAGES: Final = ("systemd", "dbus", "python3", "curl", "openssl")
#: The cache entry is named after its recipe: another recipe makes another root.
ROOT: Final = CACHE / f"{SUITE}-minbase-{'-'.join(PACKAGES)}"
#: Written last: a root without it is a build that was interrupted.
COMPLETE: Final = ".consentgate-root-complete"


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under ``CI_REQUIRE_DEPLOY=1``."""
    if os.environ.get("CI_REQUIRE_DEPLOY") == "1":
        pytest.fail(f"CI_REQUIRE_DEPLOY=1 and {reason}", pytrace=False)
    pytest.skip(reason)


def require(*tools: str) -> None:
    """Root and each of ``tools`` on PATH (or in /usr/sbin), or skip/fail naming them."""
    if os.geteuid() != 0:
        unavailable("the deployment tests run as root (systemd-nspawn, mounts, buildah)")
    missing = [t for t in tools if shutil.which(t, path="/usr/sbin:/usr/bin:/sbin:/bin") is None]
    if missing:
        unavailable(
            f"{', '.join(missing)} not installed (Debian: apt-get install --no-install-recommends "
            "debootstrap systemd-container buildah)"
        )


def debian_root() -> Path:
    """The cached root, made now if it is not there (about a minute and 90 MB from the
    mirror). A lock makes concurrent runs wait for one build instead of making two."""
    require("debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / f"{ROOT.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (ROOT / COMPLETE).exists():
            return ROOT
        partial = ROOT.with_name(ROOT.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(ROOT, ignore_errors=True)
        made = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(partial),
                MIRROR,
            ],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        if made.returncode != 0:
            unavailable(f"debootstrap failed (exit {made.returncode}): {made.stderr[-1500:]}")
        # apt's downloaded packages are not part of the root: 90 MB less in every copy.
        shutil.rmtree(partial / "var/cache/apt/archives", ignore_errors=True)
        (partial / "var/cache/apt/archives/partial").mkdir(parents=True)
        (partial / COMPLETE).write_text(f"{SUITE} {' '.join(PACKAGES)}\n")
        partial.rename(ROOT)
    return ROOT
