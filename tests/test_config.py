from __future__ import annotations

from pathlib import Path

import pytest

from ctid.config import load_settings
from ctid.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ctid.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "[http]\nport = 9000\n[site]\nname = 'a'\n")
    monkeypatch.setenv("CTID_HTTP__PORT", "9481")
    settings = load_settings(path)
    assert (settings.http.port, settings.site.name) == (9481, "a")


def test_secret_from_a_named_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, '[[pbx]]\nname = "pbx1"\nsecret_env = "PBX1_SECRET"\n')
    monkeypatch.setenv("PBX1_SECRET", "hunter2")
    (pbx,) = load_settings(path).pbx
    assert pbx.resolved_secret() == "hunter2"
    assert "hunter2" not in repr(pbx)
    monkeypatch.delenv("PBX1_SECRET")
    with pytest.raises(ConfigError, match="PBX1_SECRET"):
        pbx.resolved_secret()


def test_secret_is_never_shown(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[pbx]]\nname = "pbx1"\nsecret = "hunter2"\n')
    assert "hunter2" not in repr(load_settings(path))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[site]\ntimezone = "Mars/Base"', "site.timezone: Value error, unknown time zone"),
        ("[sitez]\n", "sitez: Extra inputs are not permitted"),
        ("x =", "invalid TOML"),
        ('[[pbx]]\nname = "a"\n[[pbx]]\nname = "a"\n', "names must be unique"),
        ('[[seats]]\nid = "1"\nkind = "cyborg"\n', "seats[0].kind"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_settings(_write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "absent.toml")


def test_world_readable_secret_is_warned_about(tmp_path: Path) -> None:
    from ctid.config import config_warnings

    path = _write(tmp_path, '[[pbx]]\nname = "pbx1"\nsecret = "hunter2"\n')
    path.chmod(0o644)
    (warning,) = config_warnings(path)
    assert "world-readable" in warning
    assert "pbx[0].secret" in warning
    assert "hunter2" not in warning
    path.chmod(0o600)
    assert config_warnings(path) == []


def test_every_kind_of_secret_in_a_world_readable_file_is_named(tmp_path: Path) -> None:
    from ctid.config import config_warnings

    path = _write(
        tmp_path,
        '[http]\napi_token = "tok-1"\n[mqtt]\npassword = "mq-2"\n'
        '[store]\nurl = "postgresql+psycopg://ctid:db-3@db/ctid"\n',
    )
    path.chmod(0o644)
    (warning,) = config_warnings(path)
    for key in ("http.api_token", "mqtt.password", "store.url (password)"):
        assert key in warning
    assert not any(secret in warning for secret in ("tok-1", "mq-2", "db-3"))


def test_a_world_readable_file_without_secrets_is_fine(tmp_path: Path) -> None:
    from ctid.config import config_warnings

    path = _write(tmp_path, '[store]\nurl = "postgresql+psycopg://ctid@db/ctid"\n')
    path.chmod(0o644)
    assert config_warnings(path) == []
