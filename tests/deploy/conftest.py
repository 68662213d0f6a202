"""Fixtures of the deployment tests: the single file they install (tests/deploy/debroot.py
says what they need and when they skip)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pyz_for_debian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single file for the machine's and the image's python3, Debian 12's (3.11):
    ``TEST_PYZ`` when ``.ci/run`` built it for ``/usr/bin/python3``, else built now with
    ``tools/build_pyz.py --python /usr/bin/python3`` (needs the package index). On a
    host whose python3 is another version, the file says so at its first start."""
    given = os.environ.get("TEST_PYZ", "")
    if given and os.environ.get("TEST_PYZ_PYTHON", "/usr/bin/python3") == "/usr/bin/python3":
        return Path(given)
    output = tmp_path_factory.mktemp("pyz") / "consentgate.pyz"
    built = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools/build_pyz.py"),
            "--python",
            "/usr/bin/python3",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return output
