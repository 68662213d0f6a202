"""A choice key is a Literal type; its parser takes the choices from the type, so they
are written once, and a bad value is named with its key and every choice."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest

from consentgate.config.keyspec import ParseContext, parser_of
from consentgate.config.loading import ConfigError, config_from_mapping
from consentgate.config.model import SECTIONS
from consentgate.config.parsers import Choice

MINIMAL: dict[str, Any] = {
    "server": {"public_url": "https://mcp.example.com"},
    "upstream": {"url": "http://127.0.0.1:8000"},
}


def choice_keys() -> dict[str, tuple[Any, Any]]:
    """``section.key`` -> (its annotation, its parser) for every key typed or parsed as a choice."""
    found = {}
    for section, cls in SECTIONS.items():
        hints = get_type_hints(cls)
        for key in fields(cls):
            hint, parse = hints[key.name], parser_of(key)
            if get_origin(hint) is Literal or isinstance(parse, Choice):
                found[f"{section}.{key.name}"] = (hint, parse)
    return found


def test_the_choice_keys_are_the_four_closed_sets() -> None:
    assert sorted(choice_keys()) == [
        "consent.mode",
        "log.format",
        "log.level",
        "upstream.host_header",
    ]


@pytest.mark.parametrize("key", sorted(choice_keys()))
def test_a_choice_key_is_a_literal_whose_parser_takes_its_choices_from_the_type(key: str) -> None:
    hint, parse = choice_keys()[key]
    assert get_origin(hint) is Literal
    assert isinstance(parse, Choice)
    assert parse.options == get_args(hint)


@pytest.mark.parametrize("key", sorted(choice_keys()))
def test_a_bad_choice_names_the_key_the_value_and_every_choice(key: str) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(
            {**MINIMAL, section: {**MINIMAL.get(section, {}), name: "nope"}}, environ={}
        )
    listed = ", ".join(f'"{option}"' for option in get_args(choice_keys()[key][0]))
    assert caught.value.problems == [f"{key}: expected one of {listed}, got 'nope'"]


def test_each_choice_is_accepted_as_written() -> None:
    for key, (hint, parse) in choice_keys().items():
        for option in get_args(hint):
            assert parse(option, ParseContext(Path("/srv"))) == option, key


def test_a_choice_is_made_of_a_literal_of_strings_only() -> None:
    with pytest.raises(TypeError, match="Literal of strings"):
        Choice(str)
    with pytest.raises(TypeError, match="Literal of strings"):
        Choice(Literal[1, 2])
