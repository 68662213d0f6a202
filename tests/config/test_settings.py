"""One configuration snapshot per request, swapped whole."""

from __future__ import annotations

from pathlib import Path

from consentgate.config.settings import GATE_COOKIE_PREFIXES, LiveSettings, Settings
from consentgate.core.oauth.paths import Route
from tests.conftest import make_config


def test_a_snapshot_derives_the_path_rules_and_public_host_from_its_config(
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path,
        "http://127.0.0.1:9000",
        "https://gate.example:8443",
        upstream={"authorize_path": "/oauth/authorize"},
    )
    settings = Settings.of(config)
    assert settings.config is config
    assert settings.public_host == "gate.example:8443"
    assert settings.cookie_prefixes == GATE_COOKIE_PREFIXES
    assert settings.path_rules.classify("/oauth/authorize").route is Route.AUTHORIZE
    assert settings.path_rules.classify("/authorize").route is Route.RELAY
    assert settings.path_rules.classify(config.server.prefix + "/x").route is Route.GATE


def test_swap_replaces_the_whole_snapshot_and_leaves_the_old_one_intact(tmp_path: Path) -> None:
    old_config = make_config(tmp_path, "http://127.0.0.1:9000", "https://old.example")
    new_config = make_config(tmp_path, "http://127.0.0.1:9000", "https://new.example")
    live = LiveSettings(old_config)
    taken = live.current
    swapped = live.swap(new_config)
    assert live.current is swapped
    assert (taken.config, taken.public_host) == (old_config, "old.example")
    assert (swapped.config, swapped.public_host) == (new_config, "new.example")
