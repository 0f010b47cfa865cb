"""Loading TOML configuration with environment overrides, shared by broker and node.

Only the loaders here read configuration; they take the environment as a
``Mapping`` so tests pass a plain dict, and nothing else reads ``os.environ``.
Environment overrides are ``<PREFIX><KEY>`` in upper case, e.g.
``SIGNPOST_NODE_LISTEN=0.0.0.0:50051``; nested tables join with ``__``
(``SIGNPOST_BROKER_TLS__CA=/etc/signpost/ca.pem``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names file, key and expectation."""


def read_toml(path: Path, env: Mapping[str, str], prefix: str) -> dict[str, Any]:
    """The TOML document at ``path`` with ``prefix``-ed environment overrides applied."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for name, value in env.items():
        if not name.startswith(prefix):
            continue
        keys = name[len(prefix) :].lower().split("__")
        table = data
        for key in keys[:-1]:
            table = table.setdefault(key, {})
        table[keys[-1]] = value
    return data


class Reader:
    """Typed access to one table of a config document, with errors that name file and key."""

    def __init__(self, source: Path, table: Mapping[str, Any], base: Path, prefix: str = "") -> None:
        self.source, self.table, self.base, self.prefix = source, table, base, prefix

    def fail(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.source}: key '{self.prefix}{key}' must be {expected}")

    def sub(self, key: str) -> Reader:
        value = self.table.get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(key, "a table")
        return Reader(self.source, value, self.base, f"{self.prefix}{key}.")

    def text(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string")
        return value

    def path(self, key: str, default: str | None = None) -> Path:
        """A path, relative paths taken from the config file's directory."""
        return (self.base / self.text(key, default)).resolve()

    def paths(self, key: str) -> tuple[Path, ...]:
        """A non-empty list of paths (a single string is accepted as a list of one)."""
        value = self.table.get(key)
        if isinstance(value, str) and value:
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "a list of file paths")
        return tuple((self.base / v).resolve() for v in value)

    def optional_path(self, key: str) -> Path | None:
        return self.path(key) if self.table.get(key) else None

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.table.get(key, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(key, "a number") from None
        if number < minimum:
            raise self.fail(key, f"at least {minimum}")
        return number

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self.table.get(key, default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.fail(key, "a whole number") from None
        if number < minimum:
            raise self.fail(key, f"at least {minimum}")
        return number

    def address(self, key: str, default: str | None = None) -> tuple[str, int]:
        """A ``host:port`` listen address."""
        text = self.text(key, default)
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise self.fail(key, "host:port, e.g. 127.0.0.1:50051")
        return host.strip("[]"), int(port)
