"""``public_url`` (PATCHWIRE_PUBLIC_URL, patchwire.toml): the externally visible base that
links and the OAuth2 redirect URI are built from; checked when settings load."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchwire.config import Settings, load_settings
from patchwire.errors import ConfigError


def test_without_one_the_public_url_is_the_bind_address() -> None:
    assert Settings(host="127.0.0.1", port=8600).effective_public_url == (
        "http://127.0.0.1:8600")
    assert Settings(host="::1", port=9000).effective_public_url == "http://[::1]:9000"


def test_the_environment_sets_it_without_its_trailing_slash(tmp_path: Path) -> None:
    settings = load_settings(environ={"PATCHWIRE_PUBLIC_URL": "https://pw.example.com/x/"},
                             toml_path=tmp_path / "none.toml")
    assert settings.effective_public_url == "https://pw.example.com/x"


def test_patchwire_toml_sets_it(tmp_path: Path) -> None:
    toml = tmp_path / "patchwire.toml"
    toml.write_text('[patchwire]\npublic_url = "https://chat.example.org"\n')
    assert load_settings(environ={}, toml_path=toml).effective_public_url == (
        "https://chat.example.org")


@pytest.mark.parametrize("value", [
    "pw.example.com", "ftp://pw.example.com", "javascript:alert(1)",
    "https://pw.example.com/?x=1", "https://pw.example.com/#top",
    "https://user:pw@pw.example.com", "https://pw.example.com/a b", "https://:80",
    "https://pw.example.com:99999", "https://pw.example.com/\r\nX: 1",
])
def test_an_unusable_public_url_is_a_config_error_naming_the_setting(
        tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="public_url"):
        load_settings(environ={"PATCHWIRE_PUBLIC_URL": value},
                      toml_path=tmp_path / "none.toml")
