"""``consentgate pages``: every page with sample data, written with its assets, so a
theme is reviewed without a sign-in; a template the gate would refuse is refused here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consentgate.cli import main
from consentgate.core.error_pages import all_wordings

CONFIG = """[server]
public_url = "https://gate.example"
[upstream]
url = "http://127.0.0.1:9"
[consent]
service_name = "Example Notes Cloud"
[ui]
templates_dir = "theme"
logo_file = "theme/logo.svg"
accent_color = "#0a7"
support_url = "https://help.example/ticket"
"""
LOGO = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"/>'


def write_theme(tmp_path: Path, footer: str = "<p>Example Notes Cloud support</p>") -> Path:
    theme = tmp_path / "theme"
    theme.mkdir(exist_ok=True)
    (theme / "logo.svg").write_text(LOGO)
    (theme / "base.html").write_text(
        (Path(__file__).resolve().parents[2] / "static" / "base.html")
        .read_text()
        .replace(
            "{% block footer %}",
            "{% block footer %}" + footer + "{#",
        )
        .replace("{% endblock %}\n</footer>", "#}{% endblock %}\n</footer>")
    )
    config = tmp_path / "gate.toml"
    config.write_text(CONFIG)
    return config


def test_every_page_is_written_with_the_theme_and_its_assets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_theme(tmp_path)
    out = tmp_path / "out"
    assert main(["pages", "--config", str(config), "--out", str(out)]) == 0
    written = {path.name for path in out.glob("*.html")}
    expected_errors = {f"error-{key}.html" for key in all_wordings()}
    assert expected_errors <= written
    assert {
        "index.html",
        "consent.html",
        "consent-warnings.html",
        "denied.html",
        "approvals.html",
        "approvals-empty.html",
        "approvals-confirm.html",
    } <= written
    for name in written - {"index.html"}:
        text = (out / name).read_text()
        assert "<script" not in text and "style=" not in text, name
        assert "<p>Example Notes Cloud support</p>" in text, name  # the operator's base.html
        assert "Protected by consentgate" not in text, name
        for link in re.findall(r'(?:href|src)="(static/[^"]+)"', text):
            assert (out / link).is_file(), (name, link)
        assert re.search(r'src="static/logo\.[0-9a-f]{12}\.svg"', text), name
    assert re.search(r'href="static/theme\.[0-9a-f]{12}\.css"', (out / "denied.html").read_text())
    assert 'class="notice' in (out / "consent-warnings.html").read_text()
    assert 'class="notice' not in (out / "consent.html").read_text()
    assert "https://help.example/ticket" in (out / "error-502.html").read_text()
    assert "Example Notes Cloud" in (out / "consent.html").read_text()
    assert f"to {out}" in capsys.readouterr().out


def test_a_theme_the_gate_would_refuse_is_refused_with_the_same_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_theme(tmp_path, footer="{{ service_name|safe }}")
    assert main(["pages", "--config", str(config), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "ui.templates_dir: the template" in err and "base.html" in err
    assert "safe filter is not allowed" in err
    assert not (tmp_path / "out").exists()


def test_the_samples_include_a_step_up_and_a_client_with_a_verified_domain(
    tmp_path: Path,
) -> None:
    """Every state of the consent page is in the sample set, so a theme and the
    accessibility audit see them: new scopes beside approved ones, where the person
    signs in next, and a client named by a URL whose domain is verified, first used
    here minutes ago (its age and the new-client warning, Deny first)."""
    config = write_theme(tmp_path)
    out = tmp_path / "out"
    assert main(["pages", "--config", str(config), "--out", str(out)]) == 0
    step_up = (out / "consent-step-up.html").read_text()
    assert 'class="scopes new-scopes"' in step_up and 'class="scopes approved-scopes"' in step_up
    assert "Next, you sign in at" in step_up and 'class="scopes idp-scopes"' in step_up
    verified = (out / "consent-verified.html").read_text()
    assert 'class="verified"' in verified
    assert "First seen by this service 4 minutes ago" in verified
    assert "first used with Example Notes Cloud 4 minutes ago: nobody had used it" in verified
    assert 'value="deny" class="deny primary"' in verified
    assert "Registered 40 days ago" in step_up
    assert "consent-step-up.html" in (out / "index.html").read_text()


def test_the_pages_are_written_in_the_language_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_theme(tmp_path)
    out = tmp_path / "out"
    assert main(["pages", "--config", str(config), "--out", str(out), "--language", "ar"]) == 0
    consent = (out / "consent.html").read_text()
    assert '<html lang="ar" dir="rtl">' in consent
    assert ">سماح</button>" in consent


def test_a_language_that_is_not_enabled_is_refused_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_theme(tmp_path)
    config.write_text(CONFIG + 'languages = ["en", "de"]\n')
    out = tmp_path / "out"
    assert main(["pages", "--config", str(config), "--out", str(out), "--language", "fr"]) != 0
    assert "--language: 'fr' is not one of ui.languages ['en', 'de']" in capsys.readouterr().err
