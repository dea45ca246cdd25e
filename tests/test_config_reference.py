"""docs/config.md is generated from the Settings model (``python -m scripts.config_reference``)."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field, SecretStr

from ctid.config import Settings
from scripts.config_reference import NOTES, OUT, all_keys, attribute_docstrings, render, section


class _Example(BaseModel):
    """An example section."""

    token: SecretStr | None = None
    """Bearer token; ``none`` disables writes."""
    mode: Literal["a", "b"] = "a"
    rows: int = Field(default=100_000, gt=0, le=1_000_000)
    name: str = Field(pattern=r"^x|y$", description="Given as a description.")


def test_config_reference_is_up_to_date() -> None:
    assert OUT.read_text(encoding="utf-8") == render(), (
        "docs/config.md is out of date: run .venv/bin/python -m scripts.config_reference"
    )


@pytest.mark.parametrize(
    "text",
    [
        "`CTID_HTTP__PORT`",
        "`store.url`",
        "`pbx[].secret_env`",
        "`seats[].endpoints`",
        "`mqtt.topic_prefix`",
        "`CTID_SHOW_NUMBERS`",
        "## `[[pbx]]`",
    ],
)
def test_known_keys_are_documented(text: str) -> None:
    assert text in render()


def test_every_key_of_the_model_has_a_row() -> None:
    text = render()
    for key in all_keys():
        assert f"| `{key}` |" in text


def test_defaults_and_constraints_come_from_the_model() -> None:
    text = render()
    assert "| `http.port` | int | `9480` | ≥ 0, ≤ 65535 | `CTID_HTTP__PORT` |" in text
    assert "| `pbx[].name` | string | *required* |" in text


def test_attribute_docstrings_are_read_from_the_source() -> None:
    assert attribute_docstrings(Settings)["show_numbers"].startswith("Print/publish")
    assert "Print/publish customer numbers in full" in render()


def test_notes_only_fill_keys_without_a_docstring() -> None:
    # A note shadowed by a docstring would be dead text; delete the note instead.
    text = render()
    for key, note in NOTES.items():
        assert " ".join(note.split()) in text, key


def test_a_new_key_is_picked_up_with_its_docstring_and_constraints() -> None:
    text = section("example", _Example, False, "")
    assert "An example section." in text
    assert (
        "| `example.token` | secret (optional) | `none` |  | `CTID_EXAMPLE__TOKEN` |"
        " Bearer token; `none` disables writes. |"
    ) in text
    assert '| `example.mode` | "a" \\| "b" | `"a"` |' in text
    assert "| `example.rows` | int | `100_000` | > 0, ≤ 1000000 |" in text
    assert "| *required* | matches `^x\\|y$` |" in text
    assert "Given as a description." in text


def test_array_sections_have_no_per_key_variables() -> None:
    text = section("things", _Example, True, "")
    assert "## `[[things]]`" in text
    assert "`CTID_THINGS`" in text
    assert "| `things[].mode` | " in text
    assert "CTID_THINGS__" not in text
