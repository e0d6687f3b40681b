"""``GuidanceConfig``: everything the guidance layer needs, as one serialisable dataclass.

The training engine and the CLI build a :class:`nada.guidance.guidance.Guidance` from it.
Values are checked on construction (types and ranges, one-line errors); whether the
config is complete enough to train (a target, a source) is checked by
:meth:`GuidanceConfig.check_ready`, so a partly filled config can still be built up.
"""
from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..options import check_fields, option
from .ensemble import parse_clip_spec
from .errors import GuidanceError
from .terms import TERMS
from .terms._checks import count_check, groups_check, group_words as _group_words, templates_check, text_check

__all__ = ["CLIP_DTYPES", "DEFAULT_CLIPS", "GuidanceConfig", "LOSS_TERMS", "TERMS"]

# The paper's pair: the CLIPs of a run when neither the generator's preset nor the user names any.
DEFAULT_CLIPS = ("ViT-B/32", "ViT-B/16")

# loss term name -> the config field holding its weight, in the terms' declared order
LOSS_TERMS = {name: term.weight_field for name, term in TERMS.items()}

CLIP_DTYPES = ("float32", "float16", "bfloat16")

# Sizes beyond these are typing mistakes, refused before anything loads.
MAX_AUGMENT = 1024  # clip_augment views per image
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; small offsets are added to it


def _clip_check(name: str, v: Any) -> str | None:
    if not v:
        return "at least one CLIP model is needed (clip: [NAME[:WEIGHT], ...])"
    for spec in v:
        parse_clip_spec(spec)
    return None


def _dtype_check(name: str, v: Any) -> str | None:
    return None if v in CLIP_DTYPES else f"{name} must be one of {CLIP_DTYPES}, got {v!r}"


def _augment_check(name: str, v: Any) -> str | None:
    if v < 0:
        return f"{name} must be >= 0 (0 = off), got {v}"
    if v > MAX_AUGMENT:
        return f"{name} must be at most {MAX_AUGMENT} views, got {v}"
    return None


def _seed_check(name: str, v: Any) -> str | None:
    return None if 0 <= v <= MAX_SEED else f"{name} must be an integer from 0 to 2**63-1, got {v}"


# (name, type, option): the options every run has, before and after the loss terms' own
_HEAD: list[tuple[str, Any, Any]] = [
    ("clip", list[str], option(
        list(DEFAULT_CLIPS), check=_clip_check,
        help="CLIP model NAME[:WEIGHT] (hub id, ViT-B/32-style alias, directory or plug-in name); repeat for an ensemble",
        default_text=f"the generator preset's CLIPs, else {' and '.join(DEFAULT_CLIPS)}")),
    ("clip_dtype", str, option("float32", help="float32, or float16/bfloat16 on CUDA", check=_dtype_check)),
    ("source_text", str | None, option("photo", flag="source", check=text_check,
                                       help="text describing the generator's current domain, e.g. 'photo'")),
    ("target_text", str | None, option(None, flag="target", check=text_check, repeatable=True,
                                       help="text describing the domain to reach, e.g. 'sketch'; with --param hyper "
                                            "give it once per domain")),
    ("target_image_dir", str | None, option(None, flag="target-images", check=text_check,
                                            help="folder of target-style images, instead of --target")),
    ("auto_source", bool, option(False, help="pick the source text that CLIP finds closest to the generator's samples "
                                             "(from source_candidates and source_text)")),
    ("source_candidates", list[str], option([], help="candidate source texts for --auto-source; repeatable")),
    ("source_samples", int, option(16, check=count_check,
                                   help="frozen-generator samples used by --auto-source and --target-images")),
    ("use_templates", bool, option(True, help="embed texts through the ImageNet-style prompt templates")),
    ("templates", list[str] | None, option(None, check=templates_check, default_text="the built-in ImageNet-style set",
                                           help="a custom prompt template containing {}; repeatable")),
]
_AFTER_WEIGHTS: list[tuple[str, Any, Any]] = [
    ("learned_weights", bool, option(False, help="learn the loss weights by log-variance weighting "
                                                 "(exp(-s_i) L_i + s_i; the lambdas give the initial weights)")),
    ("clip_augment", int, option(0, check=_augment_check,
                                 help="augmented views per image before CLIP encoding, against fooling (0 = off)")),
]
_TAIL: list[tuple[str, Any, Any]] = [
    # per-sample source: a group applies when the source text names one of its words and the target
    # text does not; each image's source text then takes the alternative CLIP reads in its frozen twin
    ("source_group", list[str], option(
        [], check=groups_check("a source_group"),
        help="alternatives of what the source names, e.g. 'circle,square,triangle,star': each sample's source "
             "becomes the one CLIP reads in it; repeatable")),
    ("seed", int, option(0, cli=False, check=_seed_check,
                         help="seed of augmentation and patch sampling (a run sets it to its own seed)")),
]


class _GuidanceConfigMethods:
    """Methods of :class:`GuidanceConfig`; its fields are the core options plus every loss term's."""

    def __post_init__(self) -> None:
        for name in ("clip", "source_candidates", "keep", "source_group"):
            if isinstance(getattr(self, name, None), str):
                setattr(self, name, [getattr(self, name)])
        _check_types(self)
        self._check_values()

    # -- checks ---------------------------------------------------------------------------
    def _check_values(self) -> None:
        message = check_fields(self)
        if message:
            raise GuidanceError(f"guidance config: {message}")
        if all(getattr(self, f) == 0 for f in LOSS_TERMS.values()):
            raise GuidanceError("guidance config: every loss weight is 0; set lambda_direction (or another) above 0")

    def keep_groups(self) -> list[list[str]]:
        """The keep groups as lists of alternatives."""
        return [_group_words(g) for g in self.keep]

    def active_terms(self) -> list[str]:
        """Names of the loss terms with a weight above 0, in a fixed order."""
        return [n for n, f in LOSS_TERMS.items() if getattr(self, f) > 0]

    def check_ready(self) -> None:
        """Raise :class:`GuidanceError` unless the config says where to go and from where."""
        if self.target_text is None and self.target_image_dir is None:
            raise GuidanceError("guidance config: set target_text (e.g. 'sketch') or target_image_dir")
        if self.target_text is not None and self.target_image_dir is not None:
            raise GuidanceError("guidance config: set target_text or target_image_dir, not both")
        if self.auto_source and not (self.source_candidates or self.source_text):
            raise GuidanceError("guidance config: auto_source needs source_candidates to choose from")
        if not self.auto_source and self.target_text is not None and self.source_text is None:
            raise GuidanceError("guidance config: a target text needs a source_text (or auto_source with candidates)")
        for name in self.active_terms():
            message = TERMS[name].check_ready(self)
            if message:
                raise GuidanceError(f"guidance config: {message}")

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GuidanceConfig":
        if not isinstance(data, dict):
            raise GuidanceError(f"guidance config must be a mapping, got {type(data).__name__}")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise GuidanceError(f"unknown guidance config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        """Write as YAML (``.yaml``/``.yml``) or JSON (``.json``), atomically."""
        path = Path(path)
        fmt = _format_of(path)
        if fmt == "json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        else:
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        atomic_write_text(path, text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GuidanceConfig":
        path = Path(path)
        fmt = _format_of(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise GuidanceError(f"cannot read guidance config '{path}': {exc.strerror or exc}") from exc
        try:
            if fmt == "json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
            raise GuidanceError(f"guidance config '{path}' is not valid {fmt.upper()}: {' '.join(str(exc).split())}") from exc
        return cls.from_dict(data if data is not None else {})


def _fields() -> list[tuple[str, Any, Any]]:
    weights = [t.weight_option() for t in TERMS.values()]
    extra = [(name, typ, f) for t in TERMS.values() for name, (typ, f) in t.options.items()]
    out = _HEAD + weights + _AFTER_WEIGHTS + extra + _TAIL
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise TypeError(f"guidance options must have distinct names, got {names}")
    return out


GuidanceConfig = dataclasses.make_dataclass(
    "GuidanceConfig", _fields(), bases=(_GuidanceConfigMethods,),
    namespace={"__module__": __name__, "__doc__": """Everything the guidance layer needs, as one serialisable dataclass.

    Fields: the core options (CLIPs, texts, templates, augmentation, seed) and, for every loss
    term of :mod:`nada.guidance.terms`, its weight ``lambda_<name>`` and its own options.
    Defaults, help texts and checks live with each field (:func:`nada.options.option`)."""})


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise GuidanceError(f"guidance config '{path}': use a .yaml, .yml or .json file name")


def _check_types(cfg: GuidanceConfig) -> None:
    """Check (and gently coerce: int -> float, tuple -> list) every field against its annotation."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        ok, coerced = _coerce(value, hints[f.name])
        if not ok:
            raise GuidanceError(f"guidance config: {f.name} must be {_describe(hints[f.name])}, got {value!r}")
        setattr(cfg, f.name, coerced)


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return True, None
        for a in args:
            if a is not type(None):
                ok, v = _coerce(value, a)
                if ok:
                    return True, v
        return False, value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            return False, value
        out = []
        for item in value:
            ok, v = _coerce(item, args[0])
            if not ok:
                return False, value
            out.append(v)
        return True, out
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    return True, value


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if args and type(None) in args:
        return " or ".join(_describe(a) for a in args if a is not type(None)) + " or null"
    if origin is list:
        return f"a list of {_describe(args[0])}"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
