"""A gate with [identity] set refuses to start, in one sentence naming the key, when
the sign-in cannot work: no client_id, or no JOSE library (the optional extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from consentgate.web.identity.signin_setup import identity_problems
from tests.conftest import make_config


def test_without_an_issuer_nothing_is_required(tmp_path: Path) -> None:
    assert identity_problems(make_config(tmp_path, "http://127.0.0.1:9")) == []


def test_an_issuer_without_the_gates_client_id_is_named(tmp_path: Path) -> None:
    config = make_config(tmp_path, "http://127.0.0.1:9", identity={"issuer": "https://idp.example"})
    (problem,) = identity_problems(config)
    assert problem.startswith("identity.client_id: required when identity.issuer is set")


def test_an_issuer_without_the_jose_library_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "joserfc" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    identity = {"issuer": "https://idp.example", "client_id": "gate"}
    config = make_config(tmp_path, "http://127.0.0.1:9", identity=identity)
    (problem,) = identity_problems(config)
    assert "consentgate[identity]" in problem and problem.startswith("identity.issuer:")
