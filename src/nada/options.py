"""Options declared once: a dataclass field's default, help text, command-line flag and check.

``option(default, help=..., check=...)`` is a :func:`dataclasses.field` whose metadata the
config classes (``AdaptConfig``, ``GuidanceConfig``), the command line (``nada adapt``) and
the docs' option tables all read, so that nothing about an option is written twice.

``check(name, value)`` returns None or a one-line message (without the option's name in
front of it being required: messages usually start with it); the config class raises its
own error type with it.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Option", "option", "info", "number", "markdown_table", "default_text"]

Check = Callable[[str, Any], "str | None"]
META_KEY = "nada"


@dataclass(frozen=True)
class Option:
    help: str
    check: Check | None = None
    cli: bool = True  # offered as a `nada adapt` flag
    flag: str | None = None  # flag name without "--" when it is not the field name with dashes
    default_text: str | None = None  # how --help and the docs show the default (else the default itself)


def option(default: Any, *, help: str, check: Check | None = None, cli: bool = True, flag: str | None = None,
           default_text: str | None = None) -> Any:
    """A dataclass field with its help text and check; mutable defaults are copied per instance."""
    meta = {META_KEY: Option(help=help, check=check, cli=cli, flag=flag, default_text=default_text)}
    if isinstance(default, (list, dict, set, tuple)) and not isinstance(default, str):
        value = list(default) if isinstance(default, tuple) else default
        return dataclasses.field(default_factory=lambda: copy.deepcopy(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def info(f: dataclasses.Field) -> Option | None:
    return f.metadata.get(META_KEY)


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def default_text(f: dataclasses.Field) -> str:
    opt = info(f)
    if opt is not None and opt.default_text is not None:
        return opt.default_text
    value = default_of(f)
    return "required" if value is dataclasses.MISSING else str(value)


def check_fields(obj: Any) -> str | None:
    """The first failing field check of a dataclass instance, as a message, or None."""
    for f in dataclasses.fields(obj):
        opt = info(f)
        if opt is not None and opt.check is not None:
            message = opt.check(f.name, getattr(obj, f.name))
            if message:
                return message
    return None


def number(*, integer: bool, lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
           what: str = "") -> Check:
    """A type and range check: ``batch must be an integer from 1 to 4096, got 0``; finite numbers only."""
    def check(name: str, v: Any) -> str | None:
        kind = "an integer" if integer else "a number"
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type:
            return f"{name} must be {kind}{what}, got {v!r}"
        if not integer and not math.isfinite(v):
            return f"{name} must be a finite number{what}, got {v!r}"
        below = v <= lo if lo_open else v < lo
        above = hi is not None and (v >= hi if hi_open else v > hi)
        if below or above:
            lo_text = f"> {lo:g}" if lo_open else f">= {lo:g}"
            rng = lo_text if hi is None else f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            if integer and hi is not None:
                rng = f"from {int(lo) + lo_open} to {int(hi) - hi_open}"
            return f"{name} must be {kind} {rng}{what}, got {v!r}"
        return None
    return check


def markdown_table(cls: type, flags: bool = True) -> str:
    """The option table of a config dataclass for the docs (field, flag, default, meaning)."""
    rows = ["| field | flag | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        opt = info(f)
        if opt is None:
            continue
        flag = f"`--{opt.flag or f.name.replace('_', '-')}`" if opt.cli and flags else "(Python API only)"
        default, text = default_text(f).replace("|", "\\|"), opt.help.replace("|", "\\|")
        rows.append(f"| `{f.name}` | {flag} | `{default}` | {text} |")
    return "\n".join(rows) + "\n"
