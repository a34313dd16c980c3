"""A till's settings: defaults, then a TOML file, then POS_LOYALTY_* variables, then the caller's."""
from __future__ import annotations

from pathlib import Path

import pytest

from pos_loyalty.app import create_app
from pos_loyalty.config import ConfigError, Settings, load_settings, mask_password


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_with_nothing_configured_the_till_keeps_a_sqlite_file_in_its_data_directory(tmp_path):
    settings = load_settings(environ={"XDG_DATA_HOME": str(tmp_path)})
    assert settings.data_dir == tmp_path / "pos-loyalty"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'pos-loyalty' / 'loyalty.db'}"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)


def test_the_environment_overrides_the_file_and_the_file_overrides_the_defaults(tmp_path):
    toml = write(tmp_path / "till.toml", 'data_dir = "/srv/till"\nport = 9000\nshop_name = "Käserei Huber"\n')
    settings = load_settings(
        config_file=toml,
        environ={"POS_LOYALTY_PORT": "9100", "POS_LOYALTY_DATABASE_URL": "postgresql://till:pw@db/store"},
    )
    assert settings.data_dir == Path("/srv/till")
    assert settings.port == 9100
    assert settings.shop_name == "Käserei Huber"
    assert settings.effective_database_url == "postgresql://till:pw@db/store"


def test_the_file_may_be_named_by_POS_LOYALTY_CONFIG_and_hold_its_settings_in_a_pos_loyalty_table(tmp_path):
    toml = write(tmp_path / "till.toml", '[pos_loyalty]\ntimezone = "Europe/Vienna"\nrun_daily_expiry = false\n')
    settings = load_settings(environ={"POS_LOYALTY_CONFIG": str(toml)})
    assert settings.timezone == "Europe/Vienna"
    assert settings.run_daily_expiry is False


def test_create_app_without_arguments_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("POS_LOYALTY_DATA_DIR", str(tmp_path / "till"))
    monkeypatch.setenv("POS_LOYALTY_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.delenv("POS_LOYALTY_CONFIG", raising=False)
    app = create_app()
    settings: Settings = app.extensions["pos_loyalty"].settings
    assert settings.data_dir == tmp_path / "till"
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'store.db'}"
    assert (tmp_path / "till" / "secret_key").exists()
    assert app.config["SECRET_KEY"] == (tmp_path / "till" / "secret_key").read_text().strip()
    app.extensions["pos_loyalty"].db.dispose()


def test_the_secret_key_is_made_once_and_kept(tmp_path):
    settings = {"data_dir": tmp_path, "database_url": f"sqlite:///{tmp_path / 'loyalty.db'}"}
    first, second = create_app(settings), create_app(settings)
    assert first.config["SECRET_KEY"] and first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    for app in (first, second):
        app.extensions["pos_loyalty"].db.dispose()


@pytest.mark.parametrize(
    "url, masked",
    [
        ("postgresql://till:s3cret@db.local:5432/store", "postgresql://till:***@db.local:5432/store"),
        ("postgresql+psycopg://till:p@ss:w@rd@db/store", "postgresql+psycopg://till:***@db/store"),
        ("postgresql://till@db/store", "postgresql://till@db/store"),
        ("sqlite:////var/lib/till/loyalty.db", "sqlite:////var/lib/till/loyalty.db"),
    ],
)
def test_the_database_password_is_never_shown(url, masked):
    assert mask_password(url) == masked


@pytest.mark.parametrize(
    "environ, says",
    [
        ({"POS_LOYALTY_PORT": "eighty"}, "port (from POS_LOYALTY_PORT) must be a whole number"),
        ({"POS_LOYALTY_PORT": "70000"}, "The port must be between 1 and 65535"),
        ({"POS_LOYALTY_PORT": "-1"}, "The port must be between 1 and 65535"),
        ({"POS_LOYALTY_TIMEZONE": "Europe/Atlantis"}, "The time zone 'Europe/Atlantis' is unknown"),
        ({"POS_LOYALTY_DATABASE_URL": "mysql://till:s3cret@db/store"}, "mysql://till:***@db/store is not supported"),
        ({"POS_LOYALTY_DATABASE_URL": "sqlite://"}, "is not supported"),
        ({"POS_LOYALTY_DATABASE_URL": "sqlite:///:memory:"}, "is not supported"),
        ({"POS_LOYALTY_DATABASE_URL": "postgresql+psycopg2://db/store"}, "is not supported"),
        ({"POS_LOYALTY_RUN_DAILY_EXPIRY": "sometimes"}, "run_daily_expiry (from POS_LOYALTY_RUN_DAILY_EXPIRY) must be true or false"),
        ({"POS_LOYALTY_LOG_LEVEL": "LOUD"}, "The log level must be one of"),
        ({"POS_LOYALTY_CURRENCY": "euro"}, "ISO 4217"),
        ({"POS_LOYALTY_CARD_PREFIX": "99"}, "The card prefix must be two digits from 20 to 29"),
        ({"POS_LOYALTY_HOST": " "}, "The host to listen on is empty"),
        ({"POS_LOYALTY_FEEDBACK_URL": "shop.example/rate"}, "feedback_url must be the web address of the shop's rating page"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_one_sentence(environ, says):
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=environ)
    message = str(refused.value)
    assert says in message
    assert "\n" not in message and message.endswith(".")
    assert "s3cret" not in message


@pytest.mark.parametrize(
    "text, says",
    [
        ("colour = 'blue'\n", "has an unknown setting 'colour'"),
        ("port = 80.5\n", "The setting port (from "),
        ("port = true\n", "must be a whole number"),
        ("timezone = 1\n", "The setting timezone (from "),
        ("data_dir = ['a']\n", "must be a directory path"),
        ("port = \n", "is not valid TOML"),
        ("[pos_loyalty]\nport = 1\n[printer]\nurl = 'x'\n", "unknown setting 'printer' outside [pos_loyalty]"),
        ("pos_loyalty = 3\n", "pos_loyalty must be a table"),
    ],
)
def test_a_settings_file_with_a_mistake_is_refused_naming_the_file(tmp_path, text, says):
    toml = write(tmp_path / "till.toml", text)
    with pytest.raises(ConfigError) as refused:
        load_settings(config_file=toml, environ={})
    assert says in str(refused.value)
    assert str(toml) in str(refused.value)


def test_a_missing_settings_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_file=tmp_path / "nowhere.toml", environ={})


def test_a_directory_given_as_the_settings_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(config_file=tmp_path, environ={})


def test_port_0_asks_for_any_free_port():
    assert load_settings({"port": 0}, environ={}).port == 0


def test_receipts_invite_no_rating_until_the_shop_names_its_rating_page(tmp_path):
    """A placeholder address would print a QR code to nowhere on every receipt."""
    assert load_settings(environ={}).feedback_url == ""
    settings = load_settings(environ={"POS_LOYALTY_FEEDBACK_URL": "https://shop.example/rate?store=7"})
    assert settings.feedback_url == "https://shop.example/rate?store=7"
