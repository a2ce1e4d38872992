"""Settings: each has one name and one default, and the README documents every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voice_app.config import SETTINGS, load_settings
from voice_app.errors import ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_settings() -> dict[str, str]:
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| ([^|]+) \|", README.read_text(), re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def test_every_setting_has_one_row_in_the_readme_with_its_default() -> None:
    documented = readme_settings()
    assert set(documented) == {setting.env for setting in SETTINGS}
    for setting in SETTINGS:
        if setting.default and len(setting.default) < 40 and setting.env != "VOICE_APP_WORKERS":
            assert documented[setting.env] == f"`{setting.default}`", setting.env


def test_settings_come_from_the_environment() -> None:
    settings = load_settings(environ={"VOICE_APP_MAX_FOLLOW_UPS": "3", "VOICE_APP_ASR": "scripted"})
    assert settings.max_follow_ups == 3
    assert settings.asr == "scripted"


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="VOICE_APP_RECORD_MAX_SECONDS"):
        load_settings(environ={"VOICE_APP_RECORD_MAX_SECONDS": "five minutes"})


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="max_followups"):
        load_settings({"max_followups": 3}, environ={})
