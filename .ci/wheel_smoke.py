"""Run the installed ``consentgate serve`` and check that it answers with its own pages.

Used by .ci/run against the wheel installed in a fresh virtualenv, so the templates
must come from inside the installed package, not from the checkout.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, accept: str, language: str = "en") -> tuple[int, str]:
    headers = {"Accept": accept, "Accept-Language": language}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def main(executable: str) -> int:
    port, dead = free_port(), free_port()
    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "gate.toml"
        config.write_text(
            f'[server]\npublic_url = "http://127.0.0.1:{port}"\nlisten = "127.0.0.1:{port}"\n'
            f'[upstream]\nurl = "http://127.0.0.1:{dead}"\n'
        )
        process = subprocess.Popen(  # noqa: S603
            [executable, "serve", "--config", str(config)],
            stderr=subprocess.PIPE,
            text=True,
            cwd=directory,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    status, _ = get(f"{base}/_consentgate/healthz", "application/json")
                    if status == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the installed gate never became healthy")
            status, page = get(f"{base}/anything", "text/html")
            assert status == 502, status
            # The person's words; the operator's reason ("unreachable") stays in the log.
            assert "<!doctype html>" in page, page[:200]
            assert "Please try again in a minute" in page, page[:2000]
            assert "unreachable" not in page, page[:2000]
            # The compiled catalogs of the wheel (hatch_build.py), not a checkout's .po.
            status, page = get(f"{base}/anything", "text/html", "de-DE,de;q=0.9")
            assert status == 502, status
            assert '<html lang="de" dir="ltr">' in page, page[:200]
            assert "Bitte versuchen Sie es in einer Minute erneut" in page, page[:2000]
            status, page = get(f"{base}/anything", "text/html", "ar")
            assert '<html lang="ar" dir="rtl">' in page, page[:200]
            status, css = get(f"{base}/_consentgate/static/consent.css", "text/css")
            assert status == 200 and "prefers-color-scheme" in css
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
    installed = subprocess.run(  # noqa: S603
        [
            str(Path(executable).with_name("python")),
            "-c",
            "import consentgate.web.rendering.catalogs as c; "
            "print(all(c.catalog_path(l, '.mo').is_file() for l in c.SHIPPED_LANGUAGES))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.strip() == "True", installed.stdout
    print("installed wheel serves its pages, in German and Arabic too: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
