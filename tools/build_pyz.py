"""Build ``dist/consentgate.pyz``: the gate as one executable file.

    python tools/build_pyz.py [--python /usr/bin/python3.11] [--output dist/consentgate.pyz]

The file is a PEP 441 zipapp made with shiv: every runtime dependency (aiohttp,
aiosqlite, cryptography, jinja2, babel with the CLDR data of the shipped languages
only, idna, asyncpg for a PostgreSQL store, joserfc for [identity]), the templates,
the compiled catalogs and the static assets inside, and nothing needed on the machine but a
``python3`` of the version it was built for. Why shiv rather than pex: the result
is a plain zipapp with a bootstrap of a few hundred lines and no runtime of its
own; it unpacks once into a cache (``~/.shiv``, or ``SHIV_ROOT``) keyed by the
build, so every later start is an ordinary import from a directory (native
extensions such as aiohttp's and cryptography's must be real files either way);
and it is one small pure-Python tool to build with. pex's strength, one file for
several platforms, does not help a file built for one server.

What a build serves: the CPython ``major.minor`` and platform of ``--python``
(default: the interpreter running this script), because aiohttp, its helpers and
asyncpg ship compiled wheels per version; cryptography's wheel is abi3. The
dependencies are installed *by that interpreter's pip*, so they are the wheels it
would pick itself (glibc or musl, x86_64 or aarch64). The zipapp refuses to start on
another Python version with a one-line message instead of an import error.

Needs the package index (or a pip configured with a local one) once, to fetch shiv,
the build backend and the dependencies; the file it produces needs no network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIV = "shiv==1.0.8"


def run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    """Run a build step, showing it; stop the build with its output when it fails."""
    print("+", " ".join(str(part) for part in command), flush=True)
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"build_pyz: step failed (exit {done.returncode})")
    return done.stdout


def target_facts(python: str) -> dict[str, str]:
    """Version and platform of the interpreter the file is built for."""
    probe = (
        "import importlib.util, json, platform, sys, sysconfig;"
        "print(json.dumps({'version': '%d.%d' % sys.version_info[:2],"
        "'implementation': sys.implementation.name,"
        "'platform': sysconfig.get_platform(),"
        "'machine': platform.machine(),"
        "'libc': ' '.join(platform.libc_ver()).strip() or 'unknown',"
        "'pip': 'yes' if importlib.util.find_spec('pip') else ''}))"
    )
    facts: dict[str, str] = json.loads(run(python, "-c", probe))
    if facts["implementation"] != "cpython":
        raise SystemExit(f"build_pyz: {python} is {facts['implementation']}, not CPython")
    return facts


def install_for(facts: dict[str, str], python: str, site: Path, requirement: str) -> None:
    """Install ``requirement`` and its dependencies into ``site`` as ``python`` would.

    With its own pip, that interpreter chooses its wheels. Without one (a bare
    ``python3`` from the distribution), this interpreter's pip installs the wheels
    for the target's version, ABI and platform (manylinux tags up to its glibc)."""
    base = ["--disable-pip-version-check", "install", "--quiet", "--no-compile"]
    base += ["--only-binary", ":all:", "--target", str(site)]
    if facts["pip"]:
        run(python, "-m", "pip", *base, requirement)
        return
    libc, _, libc_version = facts["libc"].partition(" ")
    if libc != "glibc" or not facts["platform"].startswith("linux"):
        raise SystemExit(
            f"build_pyz: {python} has no pip, and only glibc Linux targets can be built "
            "without it; install pip for it (Debian: python3-pip)"
        )
    machine = facts["machine"]
    minor = int(libc_version.split(".")[1])
    platforms = [f"manylinux_2_{n}_{machine}" for n in range(minor, 16, -1)]
    platforms += [f"manylinux2014_{machine}", f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    version = facts["version"].replace(".", "")
    targeting = ["--python-version", facts["version"], "--implementation", "cp"]
    for abi in (f"cp{version}", "abi3", "none"):
        targeting += ["--abi", abi]
    for tag in platforms:
        targeting += ["--platform", tag]
    run(sys.executable, "-m", "pip", *base, *targeting, requirement)


def prune_locale_data(site: Path) -> None:
    """Keep Babel's CLDR data for the languages the pages speak, and its root.

    Babel ships data for about a thousand locales (some 30 MB); the gate reads only
    the locales of its catalogs (``consentgate/locales``), which Babel resolves
    through their parent, ``root``. The wheel's own compiled catalogs stay as built."""
    data = site / "babel" / "locale-data"
    keep = {"root"} | {path.name for path in (ROOT / "consentgate" / "locales").iterdir()}
    for path in data.glob("*.dat"):
        if path.stem not in keep:
            path.unlink()


def preamble(path: Path, version: str, platform: str) -> None:
    """A check that runs before the gate is imported: the right Python, in one line."""
    path.write_text(
        textwrap.dedent(
            f"""\
            import sys

            if "%d.%d" % sys.version_info[:2] != "{version}":
                sys.exit(
                    "consentgate.pyz: built for Python {version} ({platform}); this is "
                    "Python %d.%d at %s. Run it with python{version}, or build one for "
                    "this interpreter: python tools/build_pyz.py --python %s"
                    % (sys.version_info[0], sys.version_info[1], sys.executable, sys.executable)
                )
            """
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python",
        help="the interpreter the file is for, and its #! line; its pip (or, without "
        "one, this interpreter's, for its version and platform) installs the "
        "dependencies (default: this one, with #!/usr/bin/env python3)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / "consentgate.pyz")
    parser.add_argument(
        "--shebang",
        help="the #! line (default: the --python given, else /usr/bin/env python3)",
    )
    args = parser.parse_args()
    python = sys.executable if args.python is None else shutil.which(args.python) or args.python
    default_shebang = (
        "/usr/bin/env python3" if args.python is None else str(Path(python).absolute())
    )
    shebang = args.shebang or default_shebang
    facts = target_facts(python)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="consentgate-pyz-") as scratch:
        work = Path(scratch)
        tools, wheels, site = work / "tools", work / "wheels", work / "site"
        pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
        run(*pip, "install", "--quiet", "--target", tools, SHIV)
        run(*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, ROOT)
        (wheel,) = wheels.glob("consentgate-*.whl")
        install_for(facts, python, site, f"consentgate[postgres,identity] @ {wheel.as_uri()}")
        prune_locale_data(site)
        check = work / "preamble.py"
        preamble(check, facts["version"], facts["platform"])
        args.output.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(tools)}
        run(
            sys.executable,
            "-m",
            "shiv",
            "--site-packages",
            site,
            "--entry-point",
            "consentgate.cli:main",
            "--preamble",
            check,
            "--python",
            shebang,
            "--compressed",
            "--reproducible",
            "--output-file",
            args.output,
            env=env,
        )
    size = args.output.stat().st_size
    print(
        f"built {args.output} ({size / 1e6:.1f} MB) in {time.monotonic() - started:.0f} s, "
        f"for CPython {facts['version']} on {facts['platform']} ({facts['libc']})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
