"""Typed run configuration: strict YAML -> pydantic models, with ``key=value`` overrides.

Every config class derives from :class:`StrictModel`, so an unknown or misspelt key in a YAML
file is an error rather than a silently ignored setting.

A config file may start from another: ``base: other.yaml`` (a path relative to the file) loads that
file first and lays this one over it, mappings merged key by key, any other value (lists included)
replaced, and a mapping with another ``type:`` than the base's (both named) replaces the base's whole;
bases may have bases. A
variant then states only what differs (``configs/synth/*.yaml``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

__all__ = [
    "BASE_KEY", "ConfigError", "StrictModel", "Timestamp", "apply_overrides", "dump_config", "load_config",
    "load_tree", "validate_config",
]

BASE_KEY = "base"
"""Top-level key of a config file naming the file it is laid over."""

M = TypeVar("M", bound="StrictModel")


class ConfigError(ValueError):
    """A configuration file or override that cannot be turned into a valid config."""


def _parse_time(value: Any) -> Any:
    # Accept what scientists type and numpy/pandas accept ("2000-01-31T18", "2000-01-31 18:00",
    # datetime64), not only full ISO datetimes.
    if value is None or isinstance(value, datetime):
        return value
    try:
        return pd.Timestamp(value).to_pydatetime()
    except (ValueError, TypeError):
        return value  # let pydantic report it


Timestamp = Annotated[datetime, BeforeValidator(_parse_time)]
"""A UTC time in a config: any ISO-8601 form (``2000-01-31``, ``2000-01-31T18``, ``2000-01-31T18:00``)."""


class StrictModel(BaseModel):
    """Base for all configs: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _list_index(node: list, key: str, dotted: str, where: str) -> int:
    """``key`` as an index into the list ``node`` (at ``where`` in override ``dotted``), else a :class:`ConfigError`."""
    try:
        index = int(key)
    except ValueError:
        raise ConfigError(f"override {dotted!r}: {where} is a list; {key!r} is not an index (0 .. "
                          f"{len(node) - 1})") from None
    if not -len(node) <= index < len(node):
        raise ConfigError(f"override {dotted!r}: {where} has {len(node)} item(s); index {index} is out of range")
    return index


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = tree
    for i, key in enumerate(keys):
        where = ".".join(keys[:i]) or "the config"
        if not isinstance(node, dict | list):
            raise ConfigError(f"override {dotted!r}: {where} is a {type(node).__name__} ({node!r}), not a mapping")
        last = i == len(keys) - 1
        if isinstance(node, list):
            index = _list_index(node, key, dotted, where)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if last:
            node[key] = value
        else:
            if key not in node or node[key] is None:
                node[key] = {}
            node = node[key]


def apply_overrides(tree: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a raw config tree, in place."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        _set_dotted(tree, key.strip(), yaml.safe_load(raw))
    return tree


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        # A mapping of another ``type`` (e.g. model: {type: afno} over an SFNO) replaces the base's whole:
        # the base's keys belong to the other type. Only when both name their type: a base mapping that
        # leaves it at its default (a loss without ``type``) is merged, its keys kept (input_noise, ...).
        other_type = isinstance(value, dict) and isinstance(out.get(key), dict) and \
            "type" in value and "type" in out[key] and value["type"] != out[key]["type"]
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not other_type:
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_tree(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw config tree of a YAML file, its ``base:`` chain resolved (see the module docstring)."""
    path = Path(path)
    if path.resolve() in _chain:
        names = " -> ".join(str(p) for p in (*_chain, path.resolve()))
        raise ConfigError(f"config file {path} is its own base: {names}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path} must hold a mapping at top level")
    base = tree.pop(BASE_KEY, None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise ConfigError(f"config file {path}: {BASE_KEY} must be a path, not {base!r}")
    return _merge(load_tree(path.parent / base, (*_chain, path.resolve())), tree)


def load_config(cls: type[M], path: str | Path, overrides: list[str] | None = None) -> M:
    """Load ``path`` (YAML, with its ``base:`` chain) into config class ``cls``, applying ``overrides`` first.

    Relative paths inside the config are kept as written: they are resolved against the working
    directory when used, as ``make`` targets run from the repository root.
    """
    tree = load_tree(path)
    return validate_config(cls, tree, overrides, source=f"config file {path}")


def validate_config(cls: type[M], tree: dict[str, Any], overrides: list[str] | None = None,
                    source: str = "the configuration") -> M:
    """Config class ``cls`` from a raw tree (e.g. ``{}`` for all defaults), applying ``overrides`` first."""
    apply_overrides(tree, overrides)
    try:
        return cls.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"{source} is invalid: {_one_line(exc)}") from exc


def _one_line(exc: ValidationError) -> str:
    """Pydantic's errors as one line (the CLI's error is one line): ``field.path: message (got value)``."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "the config"
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r:.60})"
        parts.append(f"{where}: {err['msg']}{got}")
    return "; ".join(parts)


def dump_config(config: StrictModel) -> str:
    """The config as YAML text, in a form that :func:`load_config` reads back to an equal config."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
