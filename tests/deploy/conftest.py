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
    """The single file for Debian 12's python3: ``TEST_PYZ`` (``.ci/run`` builds it), else
    built now with ``tools/build_pyz.py --python /usr/bin/python3`` (needs the index)."""
    given = os.environ.get("TEST_PYZ", "")
    if given:
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
