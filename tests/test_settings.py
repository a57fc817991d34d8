"""Settings: every variable read from the environment, defaults in the data directory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from config.settings import Settings, get_settings, reset_settings


def test_empty_data_dir_means_the_default_not_the_current_directory(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setenv("CROSSPOST_DATA_DIR", "")
    settings = Settings()
    assert settings.data_dir == tmp_path / "crosspost"
    assert settings.database_url == f"sqlite:///{tmp_path / 'crosspost' / 'crosspost.db'}"
    assert settings.broker_url.startswith("sqla+sqlite:///")


def test_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CROSSPOST_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CROSSPOST_TICK_INTERVAL", "2.5")
    monkeypatch.setenv("CROSSPOST_WORKER_POOL", "prefork")
    monkeypatch.setenv("CROSSPOST_SECRET_KEY", "key-that-must-not-print-0123456789")
    settings = Settings()
    assert (settings.data_dir, settings.tick_interval, settings.worker_pool) == (tmp_path, 2.5, "prefork")
    assert "key-that-must-not-print" not in repr(settings)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == "key-that-must-not-print-0123456789"


def test_the_readme_gives_the_code_s_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `NAME` (figure) the README's settings paragraph gives is the setting's default."""
    for key in list(os.environ):
        if key.startswith("CROSSPOST_"):
            monkeypatch.delenv(key)
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    paragraph = text[text.index("Settings (environment"):].split("\n\n", 1)[0]
    figures = re.findall(r"`([A-Z_]+)` \(([^):]+)[):]", paragraph)
    assert len(figures) >= 15, paragraph
    defaults = Settings(_env_file=None)
    for name, figure in figures:
        value = getattr(defaults, name.lower())
        shown = figure.removesuffix(" s")
        assert str(value).removesuffix(".0") == shown, f"README says {name} ({figure}); the code has {value}"


def test_settings_a_thread_began_reading_before_a_reset_are_not_kept_after_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's heartbeat reads the settings every half second: if its reading began before the
    environment changed and ended after the reset, what it read must not become the cached settings
    (it did with a plain lru_cache, and tests then ran on the default data directory)."""
    import config.settings as settings_module

    monkeypatch.setenv("CROSSPOST_LEASE_SECONDS", "61")
    reset_settings()
    began = settings_module._generation
    stale = Settings()  # the slow reader's view, taken before the change below
    monkeypatch.setenv("CROSSPOST_LEASE_SECONDS", "62")
    reset_settings()
    settings_module._keep(began, stale)  # ...and it finishes after the reset
    assert get_settings().lease_seconds == 62
    assert get_settings() is get_settings()  # what was read after the reset is cached
    reset_settings()
