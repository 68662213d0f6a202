"""``python tools/screenshots.py --out DIR``: the one command behind docs/*.png, run
as a person runs it (a process, Debian's chromium, the demo stacks on loopback)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.consent_flow.test_browser import chromium_path

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "screenshots.py"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_tool_writes_the_chosen_shots_of_the_plain_and_the_themed_gate(
    tmp_path: Path,
) -> None:
    if chromium_path() is None:
        pytest.skip("no chromium found: apt install chromium, or set CHROMIUM_PATH")
    chosen = ["consent-page-phone.png", "error-page-branded.png"]
    done = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path), *(f"--only={n}" for n in chosen)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(chosen)
    assert png_size(tmp_path / "consent-page-phone.png")[0] == 750  # 375 px at 2x
    width, height = png_size(tmp_path / "error-page-branded.png")
    assert width == 1000 and height >= 480


def test_an_unknown_shot_is_refused_with_the_names_it_knows(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path), "--only", "nope.png"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert "no such shot: nope.png" in done.stderr
    assert list(tmp_path.iterdir()) == []
