"""Settings of one till: defaults, then an optional TOML file, then ``POS_LOYALTY_*`` variables.

These are the till's own settings (where its data lives, which database, which printer).
The loyalty programme itself (earn rules, rewards, tiers, expiry) is shared by every till and
lives, versioned, in the database.
"""
from __future__ import annotations

import os
import re
import secrets
import socket
import tomllib
import zoneinfo
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from babel import Locale, UnknownLocaleError
from babel.numbers import get_currency_name

ENV_PREFIX = "POS_LOYALTY_"


class ConfigError(Exception):
    """Configuration that cannot work; the message is one sentence for the person starting it."""


STATION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def default_station() -> str:
    """This machine's host name, as a station name: the first part, cut to what a station may be.

    One service runs per till and each till is its own machine, so the host name tells the tills
    apart without anyone setting anything, and it survives a restart, which must find the
    receipts it left queued. An odd host name is made into a valid one rather than refusing to
    start; ``station`` is set by hand where two services share a machine or a replaced till PC
    should take over the old one's queue.
    """
    name = socket.gethostname().split(".", 1)[0]
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name).lstrip("._-")[:64]
    return name or "till"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "pos-loyalty"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = ""  # empty: SQLite file ``loyalty.db`` in data_dir
    host: str = "127.0.0.1"
    port: int = 8080
    threads: int = 8
    secret_key: str = ""  # empty: generated once and kept in data_dir/secret_key
    shop_name: str = "Our Shop"
    timezone: str = "UTC"
    currency: str = "EUR"
    locale: str = "en_GB"
    card_prefix: str = "27"
    sqlite_synchronous: str = "FULL"
    run_daily_expiry: bool = True
    log_level: str = "INFO"
    testing: bool = False
    # drivers (used by the counter features)
    printer_url: str = ""
    printer_profile: str = "TM-T88V"
    printer_columns: int = 42
    scanner_url: str = ""
    scanner_baudrate: int = 9600  # an RS-232 scanner's speed (a USB-CDC one ignores it)
    feedback_url: str = ""  # empty: receipts invite no rating until the shop names its rating page
    station: str = field(default_factory=default_station)
    """Which service instance this is, among the tills sharing one database: each receipt is
    queued for the station whose printer prints it, and only that station's print queue and
    Devices page deal with it. Defaults to the host name (see :func:`default_station`)."""

    # -- derived -------------------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'loyalty.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def masked_database_url(self) -> str:
        return mask_password(self.effective_database_url)


def mask_password(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


_FIELDS = {f.name: f for f in fields(Settings)}


_KIND_WORDS = {"Path": "a directory path", "int": "a whole number", "bool": "true or false", "str": "a text"}


def _coerce(name: str, value: Any, source: str = "") -> Any:
    """Read one setting from TOML (typed) or the environment (text); refuse what it cannot be."""
    kind = _FIELDS[name].type
    try:
        if isinstance(value, (dict, list, float)):
            raise ValueError
        if kind == "Path":
            if not isinstance(value, (str, Path)) or not str(value).strip():
                raise ValueError
            return Path(str(value)).expanduser()
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError):
        where = f" (from {source})" if source else ""
        raise ConfigError(f"The setting {name}{where} must be {_KIND_WORDS[kind]}, not {value!r}.") from None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the TOML file, then the environment, then explicit overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    path = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        values.update(_read_toml(str(path)))

    for name in _FIELDS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ and environ[env_name] != "":
            values[name] = _coerce(name, environ[env_name], env_name)

    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise ConfigError(f"Unknown setting {key!r}.")
        values[key] = _coerce(key, value)

    values.setdefault("data_dir", default_data_dir(environ))
    settings = Settings(**values)
    validate(settings)
    return settings


def _read_toml(path: str) -> dict[str, Any]:
    """The settings in a TOML file: at the top level, or in a ``[pos_loyalty]`` table."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"The configuration file {path} does not exist.") from None
    except OSError as exc:
        raise ConfigError(f"The configuration file {path} cannot be read: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The configuration file {path} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"The configuration file {path} is not valid TOML: it is not UTF-8 text.") from None
    section = data
    if "pos_loyalty" in data:
        section = data["pos_loyalty"]
        others = sorted(set(data) - {"pos_loyalty"})
        if not isinstance(section, dict):
            raise ConfigError(f"In the configuration file {path}, pos_loyalty must be a table of settings.")
        if others:
            raise ConfigError(f"The configuration file {path} has an unknown setting {others[0]!r} outside [pos_loyalty].")
    values = {}
    for key, value in section.items():
        if key not in _FIELDS:
            raise ConfigError(f"The configuration file {path} has an unknown setting {key!r}.")
        values[key] = _coerce(key, value, path)
    return values


SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check_database_url(url: str) -> None:
    scheme, sep, rest = url.partition("://")
    if url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX):].split("?", 1)[0]
        if path and path != ":memory:":
            return
    elif sep and scheme in POSTGRES_SCHEMES and rest:
        return
    raise ConfigError(
        f"The database URL {mask_password(url)} is not supported; use sqlite:///PATH/TO/FILE or postgresql://USER:PASSWORD@HOST/DATABASE."
    )


SERIAL_BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


def validate(s: Settings) -> None:
    _check_database_url(s.effective_database_url)
    if not s.host.strip():
        raise ConfigError("The host to listen on is empty; use 127.0.0.1 (this machine only) or 0.0.0.0 (every network).")
    if not (0 <= s.port <= 65535):
        raise ConfigError(f"The port must be between 1 and 65535 (or 0 for any free port), not {s.port}.")
    if not (1 <= s.threads <= 64):
        raise ConfigError(f"The number of server threads must be between 1 and 64, not {s.threads}.")
    try:
        zoneinfo.ZoneInfo(s.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"The time zone {s.timezone!r} is unknown; use a name like Europe/Berlin.") from None
    try:
        Locale.parse(s.locale)
    except (UnknownLocaleError, ValueError):
        raise ConfigError(f"The locale {s.locale!r} is unknown; use a name like en_GB or de_DE.") from None
    if len(s.currency) != 3 or not s.currency.isupper() or get_currency_name(s.currency, locale="en") == s.currency:
        raise ConfigError(f"The currency {s.currency!r} is not an ISO 4217 code like EUR or GBP.")
    if not (len(s.card_prefix) == 2 and s.card_prefix.isdigit() and 20 <= int(s.card_prefix) <= 29):
        raise ConfigError(
            f"The card prefix must be two digits from 20 to 29 (the in-store EAN range), not {s.card_prefix!r}."
        )
    if s.sqlite_synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
        raise ConfigError(f"sqlite_synchronous must be FULL, EXTRA or NORMAL, not {s.sqlite_synchronous!r}.")
    if s.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(f"The log level must be one of {', '.join(LOG_LEVELS)}, not {s.log_level!r}.")
    if s.printer_columns not in {32, 42, 48}:
        raise ConfigError(f"printer_columns must be 32, 42 or 48, not {s.printer_columns}.")
    if s.scanner_baudrate not in SERIAL_BAUDRATES:
        raise ConfigError(
            f"scanner_baudrate must be one of {', '.join(map(str, SERIAL_BAUDRATES))} (as set on the scanner), not {s.scanner_baudrate}."
        )
    if s.feedback_url and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", s.feedback_url):
        raise ConfigError(
            f"feedback_url must be the web address of the shop's rating page (https://...), not {s.feedback_url!r}."
        )
    if not STATION_PATTERN.fullmatch(s.station):
        raise ConfigError(
            f"The station name must be 1 to 64 letters, digits, dots, dashes or underscores (like till-2), not {s.station!r}."
        )


def ensure_data_dir(s: Settings) -> Settings:
    """Create the data directory and fill in a persistent secret key if none was configured."""
    try:
        s.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"The data directory {s.data_dir} cannot be created: {exc.strerror}.") from None
    if s.secret_key:
        return s
    key_file = s.data_dir / "secret_key"
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return replace(s, secret_key=key_file.read_text().strip())
