"""Config tables (TOML, JSON, key=value overrides) into the frozen config dataclasses, checked: each value's type,
then the range and choices its field's metadata sets, every problem in one error naming its dotted key.

mentor.config declares the settings; this module knows nothing of which ones there are.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key."""


def check(config: Any, where: str = "config", prefix: str = "") -> Any:
    """Every field's range and choices (from its metadata), all problems in one error naming key, value and
    what is allowed; returns the config. Run before a run is recorded, so a bad value fails before any work."""
    problems = []
    for f in dataclasses.fields(config):
        value, meta, key = getattr(config, f.name), f.metadata, prefix + f.name
        if dataclasses.is_dataclass(value):
            try:
                check(value, where, key + ".")
            except ConfigError as err:
                problems += str(err).split("\n")[1:]
            continue
        if meta.get("choices"):
            wrong = [v for v in (value if isinstance(value, tuple) else (value,)) if v not in meta["choices"]]
            if wrong:
                problems.append(f"  '{key}' has {', '.join(map(repr, wrong))}; choose from {', '.join(meta['choices'])}"
                                if isinstance(value, tuple) else
                                f"  '{key}' is {value!r}; choose one of {', '.join(meta['choices'])}")
                continue
        if meta.get("test") and (wrong := meta["test"](value)):
            problems.append(f"  '{key}' is {value!r}: {wrong}")
        if meta.get("ge") is not None and value < meta["ge"]:
            problems.append(f"  '{key}' is {value!r}; it must be at least {meta['ge']:g}")
        if meta.get("gt") is not None and value <= meta["gt"]:
            problems.append(f"  '{key}' is {value!r}; it must be more than {meta['gt']:g}")
        if meta.get("le") is not None and value > meta["le"]:
            problems.append(f"  '{key}' is {value!r}; it must be at most {meta['le']:g}")
    if problems:
        raise ConfigError(f"{where}: {len(problems)} bad value(s):\n" + "\n".join(problems))
    return config


def from_dict(cls: type, data: dict[str, Any], where: str = "config", prefix: str = "") -> Any:
    """`data` as a `cls`; values of the wrong type are all reported in one error, together with the range and
    choice problems of the other keys (a key of the wrong type takes its default meanwhile, so the rest can be
    checked)."""
    problems: list[str] = []
    config = _from_dict(cls, data, where, prefix, problems)
    if problems:
        try:
            check(config, where)
        except ConfigError as err:
            problems += str(err).split("\n")[1:]
        raise ConfigError(f"{where}: {len(problems)} bad value(s):\n" + "\n".join(problems))
    return config


def _from_dict(cls: type, data: dict[str, Any], where: str, prefix: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: '{prefix.rstrip('.') or 'root'}' must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        close = [prefix + m for u in unknown for m in difflib.get_close_matches(u, fields, n=1)]
        raise ConfigError(f"{where}: unknown key(s) {', '.join(prefix + u for u in unknown)}"
                          + (f" (did you mean {', '.join(close)}?)" if close else "")
                          + f"; known here: {', '.join(prefix + k for k in fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        try:
            values[name] = _coerce(hints[name], value, where, prefix + name, problems)
        except _WrongType as wrong:
            problems.append(f"  {wrong}")
    return cls(**values)


class _WrongType(Exception):
    """One value of the wrong type (from_dict collects them)."""


def _coerce(kind: Any, value: Any, where: str, key: str, problems: list[str]) -> Any:
    if dataclasses.is_dataclass(kind):
        return _from_dict(kind, value, where, key + ".", problems)
    origin = typing.get_origin(kind)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _WrongType(f"'{key}' must be a list of strings")
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: '{key}' has an unsupported type")  # no optional fields today
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise _WrongType(f"'{key}' must be {kind.__name__}, got {value!r}")


def parse_value(raw: str) -> Any:
    """TOML's reading of a bare value (numbers, booleans, lists), else the string itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: '{part}' is not a section")
    node[parts[-1]] = value
