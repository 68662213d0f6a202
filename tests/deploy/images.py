"""Images with Debian's buildah, for the container image's test: a storage of the tests'
own under the cache (never the machine's default storage), a base image made from the
cached Debian root (no registry is reachable), and ``--isolation chroot`` throughout,
which needs no container runtime (podman's runtimes cannot set rlimits on every
machine type).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from pathlib import Path
from typing import Any, Final

from tests.deploy.debroot import CACHE, COMPLETE, ROOT, debian_root, require

STORAGE: Final = CACHE / "containers"
#: The base is named after the root it was made from.
BASE: Final = f"localhost/consentgate-test-base:{ROOT.name}"


def command(*args: str) -> list[str]:
    """The argv of a buildah command on the tests' storage."""
    return ["buildah", "--root", str(STORAGE / "storage"), "--runroot", str(STORAGE / "run"), *args]


def buildah(*args: str, timeout: float = 600, check: bool = True) -> str:
    """A buildah command on the tests' storage; its standard output."""
    done = subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def base_image() -> str:
    """The cached Debian root as an image (made once): what ``python:3.12-slim`` is to
    users, Debian 12's python3 in a plain root."""
    require("buildah", "debootstrap")
    root = debian_root()
    STORAGE.mkdir(parents=True, exist_ok=True)
    with (STORAGE / "base.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if buildah("images", "--quiet", BASE, check=False).strip():
            return BASE
        container = buildah("from", "scratch").strip()
        try:
            mountpoint = buildah("mount", container).strip()
            parts = [str(p) for p in root.iterdir() if p.name != COMPLETE]
            subprocess.run(
                ["cp", "-a", "--", *parts, mountpoint],
                check=True,
                timeout=600,
            )
            buildah("umount", container)
            buildah("config", "--cmd", "/bin/sh", container)
            buildah("commit", "--quiet", container, BASE)
        finally:
            buildah("rm", container, check=False)
    return BASE


def inspect(image: str) -> dict[str, Any]:
    """The image's Docker-format configuration (``config`` of ``buildah inspect``)."""
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image))["Docker"][
        "config"
    ]
    return config


def size(image: str) -> str:
    """The image's size as buildah shows it (uncompressed, "351 MB")."""
    return buildah("images", "--format", "{{.Size}}", image).strip()


def build(containerfile: Path, context: Path, tag: str, base: str) -> str:
    """``buildah bud`` as CI runs it; the build's output (for a failure's message)."""
    return buildah(
        "bud",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--build-arg",
        f"BASE={base}",
        "--file",
        str(containerfile),
        "--tag",
        tag,
        str(context),
        timeout=900,
    )


def remove_image(tag: str) -> None:
    buildah("rmi", tag, check=False)
