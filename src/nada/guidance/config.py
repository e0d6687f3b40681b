"""``GuidanceConfig``: everything the guidance layer needs, as one serialisable dataclass.

The training engine and the CLI build a :class:`nada.guidance.guidance.Guidance` from it.
Values are checked on construction (types and ranges, one-line errors); whether the
config is complete enough to train (a target, a source) is checked by
:meth:`GuidanceConfig.check_ready`, so a partly filled config can still be built up.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from .ensemble import parse_clip_spec
from .errors import GuidanceError
from .templates import check_templates

__all__ = ["CLIP_DTYPES", "GuidanceConfig", "LOSS_TERMS"]

# loss term name -> the config field holding its weight
LOSS_TERMS = {
    "direction": "lambda_direction",
    "global": "lambda_global",
    "patch": "lambda_patch",
    "angle": "lambda_angle",
    "manifold": "lambda_manifold",
    "texture": "lambda_texture",
    "structure": "lambda_structure",
    "l2": "lambda_l2",
    "perceptual": "lambda_perceptual",
    "keep": "lambda_keep",
}

CLIP_DTYPES = ("float32", "float16", "bfloat16")

# Sizes beyond these are typing mistakes, refused before anything loads.
MAX_COUNT = 4096  # source_samples, patch_count
MAX_AUGMENT = 1024  # clip_augment views per image
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; small offsets are added to it


@dataclass
class GuidanceConfig:
    # CLIP models, "NAME[:WEIGHT]" (hub id, alias such as ViT-B/32, or directory); weights are relative
    clip: list[str] = field(default_factory=lambda: ["ViT-B/32"])
    clip_dtype: str = "float32"  # float16 only on CUDA

    # what to move from and to
    source_text: str | None = "photo"
    target_text: str | None = None
    target_image_dir: str | None = None  # a folder of target-style images instead of target_text
    auto_source: bool = False  # pick the source text from source_candidates (+ source_text) by CLIP
    source_candidates: list[str] = field(default_factory=list)
    source_samples: int = 16  # frozen-generator samples for auto source and image-folder directions
    use_templates: bool = True
    templates: list[str] | None = None  # None: the built-in ImageNet-style set

    # loss weights (0 switches a term off)
    lambda_direction: float = 1.0
    lambda_global: float = 0.0
    lambda_patch: float = 0.0
    lambda_angle: float = 0.0
    lambda_manifold: float = 0.0
    lambda_texture: float = 0.0
    lambda_structure: float = 0.0  # CLIP token self-similarity kept from the frozen image
    lambda_l2: float = 0.0
    lambda_perceptual: float = 0.0  # needs a perceptual network passed to Guidance
    lambda_keep: float = 0.0  # attribute keeping: needs keep groups
    learned_weights: bool = False  # exp(-s_i) L_i + s_i, s_i learned; lambdas give the initial weights

    # against fooling: N augmented views per image, embeddings averaged (0 = off)
    clip_augment: int = 0

    # patch directional loss
    patch_count: int = 4  # patches per image
    patch_size: float = 0.5  # patch side as a fraction of the image side
    part_templates: list[str] | None = None  # None: the built-in part templates

    # texture loss
    style_images: str | None = None  # image file or folder; default: target_image_dir
    texture_layers: list[int] | None = None  # vision hidden-state indices; None: middle and last layer

    # structure loss
    structure_layers: list[int] | None = None  # vision hidden-state indices; None: the middle layer

    # attribute keeping: each group is "a,b,c", alternatives of one attribute (e.g. shapes).
    # CLIP's zero-shot choice among them must stay what it was for the frozen image. A group
    # that names a word of the source or target text is skipped: that attribute is the change.
    keep: list[str] = field(default_factory=list)

    # per-sample source: groups of alternatives, "a,b,c". A group applies when the source text
    # names one of its words and the target text does not (that attribute is the change); each
    # image's source text then takes the alternative CLIP reads in its frozen twin, so
    # "circle" -> "square" also turns stars into squares along star -> square, instead of
    # pushing every image along circle -> square. Groups that do not apply are ignored.
    source_group: list[str] = field(default_factory=list)

    seed: int = 0  # augmentation and patch sampling

    def __post_init__(self) -> None:
        if isinstance(self.clip, str):
            self.clip = [self.clip]
        if isinstance(self.source_candidates, str):
            self.source_candidates = [self.source_candidates]
        if isinstance(self.keep, str):
            self.keep = [self.keep]
        if isinstance(self.source_group, str):
            self.source_group = [self.source_group]
        _check_types(self)
        self._check_values()

    # -- checks ---------------------------------------------------------------------------
    def _check_values(self) -> None:
        if not self.clip:
            raise GuidanceError("guidance config: at least one CLIP model is needed (clip: [NAME[:WEIGHT], ...])")
        for spec in self.clip:
            parse_clip_spec(spec)
        if self.clip_dtype not in CLIP_DTYPES:
            raise GuidanceError(f"guidance config: clip_dtype must be one of {CLIP_DTYPES}, got {self.clip_dtype!r}")
        for name, fname in LOSS_TERMS.items():
            v = getattr(self, fname)
            if not math.isfinite(v) or v < 0:
                raise GuidanceError(f"guidance config: {fname} must be a finite number >= 0, got {v}")
        if all(getattr(self, f) == 0 for f in LOSS_TERMS.values()):
            raise GuidanceError("guidance config: every loss weight is 0; set lambda_direction (or another) above 0")
        for fname in ("source_samples", "patch_count"):
            if getattr(self, fname) < 1:
                raise GuidanceError(f"guidance config: {fname} must be at least 1, got {getattr(self, fname)}")
            if getattr(self, fname) > MAX_COUNT:
                raise GuidanceError(f"guidance config: {fname} must be at most {MAX_COUNT}, got {getattr(self, fname)}")
        if self.clip_augment < 0:
            raise GuidanceError(f"guidance config: clip_augment must be >= 0 (0 = off), got {self.clip_augment}")
        if self.clip_augment > MAX_AUGMENT:
            raise GuidanceError(f"guidance config: clip_augment must be at most {MAX_AUGMENT} views, got {self.clip_augment}")
        if not (math.isfinite(self.patch_size) and 0.0 < self.patch_size <= 1.0):
            raise GuidanceError(f"guidance config: patch_size must be in (0, 1], got {self.patch_size}")
        if not 0 <= self.seed <= MAX_SEED:
            raise GuidanceError(f"guidance config: seed must be an integer from 0 to 2**63-1, got {self.seed}")
        for fname in ("texture_layers", "structure_layers"):
            layers = getattr(self, fname)
            if layers is not None and any(abs(i) > 10_000 for i in layers):
                raise GuidanceError(f"guidance config: {fname} must be hidden-state indices, got {layers}")
        if self.templates is not None:
            check_templates(self.templates)
        if self.part_templates is not None:
            check_templates(self.part_templates)
        for group in self.keep:
            words = _group_words(group)
            if len(words) < 2 or not all(words) or len(set(words)) != len(words):
                raise GuidanceError(
                    f"guidance config: a keep group lists two or more distinct alternatives, comma-separated "
                    f"(e.g. 'circle,square,triangle'), got {group!r}")
        for group in self.source_group:
            words = _group_words(group)
            if len(words) < 2 or not all(words) or len(set(words)) != len(words):
                raise GuidanceError(
                    f"guidance config: a source_group lists two or more distinct alternatives, comma-separated "
                    f"(e.g. 'circle,square,triangle'), got {group!r}")
        for fname in ("source_text", "target_text", "target_image_dir", "style_images"):
            v = getattr(self, fname)
            if v is not None and not v.strip():
                raise GuidanceError(f"guidance config: {fname} is empty; leave it unset (null) instead")

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
        if self.lambda_keep > 0 and not self.keep:
            raise GuidanceError("guidance config: lambda_keep > 0 needs keep groups, e.g. keep: ['circle,square,triangle']")
        if self.lambda_texture > 0 and self.style_images is None and self.target_image_dir is None:
            raise GuidanceError("guidance config: lambda_texture > 0 needs style_images (or target_image_dir)")

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


def _group_words(group: str) -> list[str]:
    return [w.strip() for w in group.split(",")]


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    raise GuidanceError(f"guidance config '{path}': use a .yaml, .yml or .json file name")


def _check_types(cfg: GuidanceConfig) -> None:
    """Check (and gently coerce: int -> float, tuple -> list) every field against its annotation."""
    hints = typing.get_type_hints(GuidanceConfig)
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
