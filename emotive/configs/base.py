"""Config machinery: frozen dataclasses, dotted overrides, JSON round trips.

Every experiment config is a tree of frozen dataclasses. Users change it from
the command line with `--set model.num_layers=4 optim.lr=3e-4`; each value is
parsed according to the field's declared type, and unknown keys or values of
the wrong type raise `UserError` with the list of valid keys.

Configs check themselves: `check(cfg)` calls the `validate()` of every section in the tree
(nested dataclasses, also those inside tuples), innermost first, then the config's own.
`apply_overrides` (so every `configs.load`) and `from_dict` (every checkpoint's config) end
with it, so a section's `validate()` holds its own checks only and an experiment's holds only
the checks that span sections; none calls another's by hand.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

from emotive.errors import UserError


def is_config(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def to_dict(cfg: Any) -> dict:
    """Returns the config as nested plain dicts (JSON-ready)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if is_config(value):
            value = to_dict(value)
        elif isinstance(value, tuple):
            value = [to_dict(v) if is_config(v) else v for v in value]
        out[f.name] = value
    return out


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def valid_keys(cfg: Any, prefix: str = "") -> list[str]:
    """All dotted leaf keys of a config, e.g. ['model.num_layers', ...]."""
    keys = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if is_config(value):
            keys += valid_keys(value, prefix + f.name + ".")
        else:
            keys.append(prefix + f.name)
    return keys


def _field_types(cfg: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(cfg))


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """Returns (inner type, whether None is allowed)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def parse_value(text: str, tp: Any, key: str) -> Any:
    """Parses a command-line string into a value of type `tp`."""
    inner, optional = _strip_optional(tp)
    if optional and text.strip().lower() in ("none", "null"):
        return None
    origin = typing.get_origin(inner)
    try:
        if inner is bool:
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(text)
        if inner is int:
            return int(text)
        if inner is float:
            return float(text)
        if inner is str:
            return text
        if origin is typing.Literal:
            choices = typing.get_args(inner)
            if text not in choices:
                raise ValueError(text)
            return text
        if origin is tuple:
            args = typing.get_args(inner)
            parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
            elem = args[0] if args else str
            if len(args) != 2 or args[1] is not Ellipsis:
                if len(args) != len(parts):
                    raise ValueError(text)
                return tuple(parse_value(p.strip(), a, key) for p, a in zip(parts, args))
            return tuple(parse_value(p.strip(), elem, key) for p in parts)
    except (ValueError, UserError):
        pass
    else:
        raise UserError(f"config key '{key}' has type {tp!r}, which --set cannot parse; "
                        "edit the config module instead")
    raise UserError(f"bad value '{text}' for config key '{key}': expected {_type_name(tp)}")


def _type_name(tp: Any) -> str:
    inner, optional = _strip_optional(tp)
    if typing.get_origin(inner) is typing.Literal:
        name = "one of " + ", ".join(map(str, typing.get_args(inner)))
    elif typing.get_origin(inner) is tuple:
        name = "a comma-separated tuple like 1,2,3"
    else:
        name = getattr(inner, "__name__", str(inner))
    return name + (" or none" if optional else "")


def override(cfg: Any, key: str, text: str, _prefix: str = "") -> Any:
    """Returns a copy of `cfg` with the dotted `key` set from string `text`."""
    head, _, rest = key.partition(".")
    full = _prefix + key
    names = {f.name for f in dataclasses.fields(cfg)}
    if head not in names:
        raise UserError(f"unknown config key '{full}'; valid keys: "
                        f"{', '.join(valid_keys(cfg, _prefix))}")
    current = getattr(cfg, head)
    if rest:
        if not is_config(current):
            raise UserError(f"config key '{_prefix + head}' has no sub-keys; valid keys: "
                            f"{', '.join(valid_keys(cfg, _prefix))}")
        return dataclasses.replace(cfg, **{head: override(current, rest, text,
                                                          _prefix + head + ".")})
    if is_config(current):
        raise UserError(f"config key '{full}' is a section; set one of its keys: "
                        f"{', '.join(valid_keys(current, full + '.'))}")
    value = parse_value(text, _field_types(cfg)[head], full)
    return dataclasses.replace(cfg, **{head: value})


def check(cfg: Any) -> Any:
    """Validates the whole config tree bottom-up and returns `cfg`.

    Walks every nested dataclass (fields, and the items of tuple fields) depth first and
    calls each node's own `validate()` after its children's, so a section's checks run
    whether or not any parent mentions it, and a parent's cross-section checks see valid
    sections. Raises the first `UserError` a `validate()` raises.
    """
    if isinstance(cfg, tuple):
        for item in cfg:
            check(item)
        return cfg
    if not is_config(cfg):
        return cfg
    for f in dataclasses.fields(cfg):
        check(getattr(cfg, f.name))
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def apply_overrides(cfg: Any, assignments: list[str]) -> Any:
    """Applies ['a.b=1', 'c=x', ...] in order (each must have the form key=value), then
    `check`s the result; with no assignments it just checks `cfg` (a preset's output)."""
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad --set item '{item}': expected key=value, e.g. model.num_layers=4")
        cfg = override(cfg, key.strip(), text.strip())
    return check(cfg)


def from_dict(cls: type, data: dict) -> Any:
    """Rebuilds a config of class `cls` from `to_dict` output (checkpoint JSON) and
    `check`s it, so a hand-edited or stale config fails here with the section's message."""
    return check(_from_dict(cls, data))


def _from_dict(cls: type, data: dict) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue  # a field added since the checkpoint was written keeps its default
        value = data[f.name]
        tp, _ = _strip_optional(hints[f.name])
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            value = _from_dict(tp, value)
        elif typing.get_origin(tp) is tuple and isinstance(value, list):
            value = tuple(_from_dict(t, v) if dataclasses.is_dataclass(t) and isinstance(v, dict)
                          else v for t, v in zip(_tuple_item_types(tp, len(value)), value))
        kwargs[f.name] = value
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise UserError(f"config JSON has keys {sorted(unknown)} unknown to {cls.__name__}; "
                        "was it written by a newer version of emotive?")
    return cls(**kwargs)


def _tuple_item_types(tp: Any, n: int) -> list[Any]:
    """The declared type of each of n items of a tuple type (tuple[X, ...] or tuple[X, Y])."""
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return [args[0]] * n
    return list(args[:n]) + [Any] * (n - len(args))
