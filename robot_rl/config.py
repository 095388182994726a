"""Loading typed dataclass configs from YAML files and `key=value` overrides, with errors that name
the key and the expected type."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml


def _type_ok(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args else Any
        return item is Any or all(_type_ok(v, item) for v in value)
    return True  # nested dataclasses and anything else: checked by their own constructors


def build(cls, values: dict[str, Any], where: str = ""):
    """`cls(**values)` after checking keys and value types, recursing into nested dataclasses."""
    prefix = f"{where}." if where else ""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key(s) {[prefix + k for k in unknown]}; valid keys under "
                         f"{where or 'the top level'}: {sorted(fields)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            # A registered family (e.g. agents) picks its dataclass from the values (`name`).
            resolve = getattr(hint, "resolve", None)
            kwargs[name] = build(resolve(value) if resolve else hint, value, prefix + name)
        elif not _type_ok(value, hint):
            raise ValueError(f"config key {prefix + name} must be of type "
                             f"{getattr(hint, '__name__', str(hint))}, got {value!r}")
        else:
            kwargs[name] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def coerce_sections(obj) -> None:
    """In a frozen dataclass's __post_init__: section fields given as plain dicts become their dataclass
    (`TrainConfig(reward={"model": "x.pt"})`), through `build`."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if isinstance(value, dict) and dataclasses.is_dataclass(hint):
            resolve = getattr(hint, "resolve", None)
            object.__setattr__(obj, f.name, build(resolve(value) if resolve else hint, value, f.name))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["agent.utd=8", "task=PegInsertion-v0"] -> {"agent": {"utd": 8}, "task": "PegInsertion-v0"}."""
    result: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. agent.utd=8)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise ValueError(f"cannot read config file {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ValueError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values")
    return data
