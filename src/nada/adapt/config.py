"""``AdaptConfig``: every option of an adaptation run, serialisable to YAML so a run can be reproduced."""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from ..guidance.config import GuidanceConfig
from .layers import LAYER_GROUPS, SCOPES
from ..errors import ConfigError

# The built-in world: a 64-px generator trained on photo renders and two small CLIPs.
BUILTIN_GENERATOR = "toy"
BUILTIN_CLIPS = ["toyworld-clip-p16", "toyworld-clip-p8"]
# The paper's pair for real generators.
PAPER_CLIPS = ["ViT-B/32", "ViT-B/16"]


class AdaptConfigError(ConfigError):
    pass


# Sizes beyond these are typing mistakes, not runs: refused up front instead of exhausting memory.
MAX_BATCH = 4096  # batch, n_samples, stop_samples, auto_layer_batch (and k, chunk)
MAX_ITERS = 10**7  # iters and every step interval
MAX_PROBE_ITERS = 10**4  # auto_layer_iters
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; the run adds small offsets to its seed


def default_clips(generator: str) -> list[str]:
    """CLIPs used when none are named: the built-in pair for the built-in generator, else the paper's pair."""
    return list(BUILTIN_CLIPS) if str(generator) == BUILTIN_GENERATOR else list(PAPER_CLIPS)


# The built-in world's content attributes as source groups (nada.toyworld.renderer's SHAPES and
# COLOURS; spelled out here so the config does not import the renderer).
TOY_SOURCE_GROUPS = ("circle,square,triangle,star", "red,green,blue,yellow,purple,orange")

# Options a generator's preset sets when the user leaves them out. The dataclass defaults are the
# reference implementation's (1000 iterations of batch 16, k=1); the built-in 64-px world is small
# and must finish in minutes on a laptop CPU, so it trains fewer, larger steps on more rows.
PRESETS: dict[str, dict[str, Any]] = {
    BUILTIN_GENERATOR: {
        # Chosen by benchmarks/toyworld_sweep.py over all six target cases (docs/toyworld.md).
        # The built-in CLIPs never saw the ImageNet template words, so templates are off. The
        # world's shapes and colours are source groups: an edit of one ("a circle" -> "a square")
        # reads each sample's own shape or colour as its source; style edits are unaffected.
        # A style flips within about ten steps and training on past the flip only bends shapes,
        # so a run stops once CLIP reads every check sample as the target (300 steps at most).
        # Content edits (a source group applies) train every step: CLIP reads a half-recoloured
        # object as blue long before it is.
        "iters": 300, "batch": 4, "lr": 0.003, "auto_layer_k": 6, "auto_layer_interval": 10,
        "stop_share": 1.0, "stop_content_edits": False, "sample_every": 50, "save_every": 50,
        "guidance": {"clip_augment": 4, "use_templates": False, "source_group": list(TOY_SOURCE_GROUPS)},
    },
}


@dataclass
class AdaptConfig:
    generator: str = BUILTIN_GENERATOR
    iters: int = 1000
    batch: int = 16
    lr: float = 0.002  # Adam with StyleGAN2's betas
    beta1: float = 0.0
    beta2: float = 0.99
    train_truncation: float = 1.0  # truncation of the latents the loss sees
    sample_truncation: float = 0.7  # truncation of the pictures shown to the user
    mixing: float = 0.0  # style-mixing probability for training latents
    seed: int = 0

    layers: Any = "adaptive"  # "adaptive", a group (all/texture/shape/no-fine) or a list of W+ rows
    layer_scope: str = "full"  # full | conv | affine
    auto_layer_k: int = 1
    auto_layer_iters: int = 1
    auto_layer_batch: int = 8
    auto_layer_lr: float = 0.01
    auto_layer_interval: int = 1  # 1 = re-select every step (the paper); N = every N steps
    auto_layer_falloff: int = 0  # shrink k by one every N steps (0 = never)
    auto_layer_min_k: int = 1
    auto_layer_chunk: int = 0  # push the selection batch through in pieces of N to bound memory (0 = whole)

    # Early stop: every stop_every steps CLIP reads stop_samples fixed latents; once at least
    # stop_share of them are closer to the target than to the source, training ends (0 = off),
    # stop_patience steps after the check that first reached the share.
    stop_share: float = 0.0
    stop_every: int = 10
    stop_samples: int = 32
    stop_patience: int = 0
    # False: no stop for content edits (a source group applies, e.g. "red" -> "blue"), which CLIP
    # reads as done while the change is still half-way (docs/toyworld.md)
    stop_content_edits: bool = True

    sample_every: int = 100
    save_every: int = 100
    n_samples: int = 8
    device: str = "cpu"
    export_rosinality: bool = False

    guidance: GuidanceConfig = field(default_factory=lambda: GuidanceConfig(clip=list(BUILTIN_CLIPS), target_text=None))

    def __post_init__(self) -> None:
        if isinstance(self.guidance, dict):
            self.guidance = GuidanceConfig.from_dict(self.guidance)
        self.guidance.seed = self.seed  # one seed drives the whole run (latents, augmentation, patches)
        self.check()

    def check(self) -> None:
        """Every option's type and range, finite numbers only, absurd sizes refused: one line each."""
        def number(name: str, *, integer: bool, lo: float, hi: float | None = None, lo_open: bool = False,
                   hi_open: bool = False, what: str = "") -> None:
            v = getattr(self, name)
            kind = "an integer" if integer else "a number"
            ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
            if isinstance(v, bool) or not ok_type:
                raise AdaptConfigError(f"{name} must be {kind}{what}, got {v!r}")
            if not integer and not math.isfinite(v):
                raise AdaptConfigError(f"{name} must be a finite number{what}, got {v!r}")
            below = v <= lo if lo_open else v < lo
            above = hi is not None and (v >= hi if hi_open else v > hi)
            if below or above:
                lo_text = f"> {lo:g}" if lo_open else f">= {lo:g}"
                rng = lo_text if hi is None else f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
                if integer and hi is not None:
                    rng = f"from {int(lo) + lo_open} to {int(hi) - hi_open}"
                raise AdaptConfigError(f"{name} must be {kind} {rng}{what}, got {v!r}")

        for name in ("batch", "n_samples", "stop_samples", "auto_layer_batch", "auto_layer_k", "auto_layer_min_k"):
            number(name, integer=True, lo=1, hi=MAX_BATCH)
        number("auto_layer_chunk", integer=True, lo=0, hi=MAX_BATCH, what=" (0 = the whole batch at once)")
        number("iters", integer=True, lo=1, hi=MAX_ITERS)
        number("auto_layer_iters", integer=True, lo=1, hi=MAX_PROBE_ITERS)
        for name in ("auto_layer_interval", "stop_every"):
            number(name, integer=True, lo=1, hi=MAX_ITERS)
        for name in ("sample_every", "save_every", "auto_layer_falloff", "stop_patience"):
            number(name, integer=True, lo=0, hi=MAX_ITERS, what=" (0 = never)" if name != "stop_patience" else "")
        number("seed", integer=True, lo=0, hi=MAX_SEED)
        number("lr", integer=False, lo=0, lo_open=True)
        number("auto_layer_lr", integer=False, lo=0)
        for name in ("train_truncation", "sample_truncation"):
            number(name, integer=False, lo=-math.inf)  # any finite psi is a valid truncation
        number("mixing", integer=False, lo=0, hi=1, what=" (a probability)")
        for name in ("beta1", "beta2"):
            number(name, integer=False, lo=0, hi=1, hi_open=True, what=" (an Adam beta)")
        number("stop_share", integer=False, lo=0, hi=1, what=" (a share; 0 = train every iteration)")
        if not isinstance(self.stop_content_edits, bool):
            raise AdaptConfigError(f"stop_content_edits must be true or false, got {self.stop_content_edits!r}")
        if not isinstance(self.export_rosinality, bool):
            raise AdaptConfigError(f"export_rosinality must be true or false, got {self.export_rosinality!r}")
        for name in ("generator", "device"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise AdaptConfigError(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.layer_scope not in SCOPES:
            raise AdaptConfigError(f"layer_scope must be one of {', '.join(SCOPES)}, got {self.layer_scope!r}")
        if isinstance(self.layers, str):
            if self.layers not in LAYER_GROUPS and not all(t.strip().isdigit() for t in self.layers.split(",") if t.strip()):
                raise AdaptConfigError(f"layers must be one of {', '.join(LAYER_GROUPS)} or row indices like '0,1,4', "
                                       f"got {self.layers!r}")
        elif not (isinstance(self.layers, (list, tuple)) and all(isinstance(r, int) and not isinstance(r, bool)
                                                                  for r in self.layers)):
            raise AdaptConfigError(f"layers must be one of {', '.join(LAYER_GROUPS)} or a list of row indices, "
                                   f"got {self.layers!r}")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "guidance"}
        if isinstance(d["layers"], tuple):
            d["layers"] = list(d["layers"])
        d["guidance"] = self.guidance.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdaptConfig":
        if not isinstance(data, dict):
            raise AdaptConfigError(f"an adaptation config must be a mapping, got {type(data).__name__}")
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise AdaptConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(sorted(valid))}")
        generator = str(data.get("generator", BUILTIN_GENERATOR))
        preset = dict(PRESETS.get(generator, {}))
        preset_guidance = preset.pop("guidance", {})
        data = {**preset, **data}
        guidance = data.get("guidance") or {}
        if isinstance(guidance, dict):
            guidance = {**preset_guidance, **guidance}
            if not guidance.get("clip"):
                guidance["clip"] = default_clips(generator)
        data["guidance"] = guidance
        return cls(**data)

    def save(self, path: str | os.PathLike) -> None:
        import yaml

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AdaptConfig":
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise AdaptConfigError(f"cannot read config '{path}': {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise AdaptConfigError(f"config '{path}' is not valid YAML: {' '.join(str(exc).split())}") from exc
        return cls.from_dict(data or {})
