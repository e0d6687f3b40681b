"""``AdaptConfig``: every option of an adaptation run, serialisable to YAML so a run can be reproduced.

Each option is declared once, as a field with its default, help text and check
(:func:`nada.options.option`); the ``nada adapt`` flags, ``--help``, the YAML loader and the
docs' option tables are made from these fields. :func:`merge` is the one place options are
combined: defaults < the generator's preset (:func:`nada.plugins.preset`) < a config file <
flags or keyword arguments.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .._io import atomic_write_text
from ..errors import ConfigError
from ..guidance.config import GuidanceConfig
from ..options import check_fields, number, option
from .layers import LAYER_GROUPS, SCOPES

__all__ = ["AdaptConfig", "AdaptConfigError", "DEFAULT_GENERATOR", "merge"]

# The generator a run adapts when none is named: a name, resolved through nada.plugins when loaded.
DEFAULT_GENERATOR = "toy"


class AdaptConfigError(ConfigError):
    pass


# Sizes beyond these are typing mistakes, not runs: refused up front instead of exhausting memory.
MAX_BATCH = 4096  # batch, n_samples, stop_samples, auto_layer_batch (and k, chunk)
MAX_ITERS = 10**7  # iters and every step interval
MAX_PROBE_ITERS = 10**4  # auto_layer_iters
MAX_TARGETS = 64  # --param hyper's target texts
MAX_HYPER_WIDTH = 4096
MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds; the run adds small offsets to its seed

_size = number(integer=True, lo=1, hi=MAX_BATCH)
_interval = number(integer=True, lo=1, hi=MAX_ITERS)
_every = number(integer=True, lo=0, hi=MAX_ITERS, what=" (0 = never)")
_beta = number(integer=False, lo=0, hi=1, hi_open=True, what=" (an Adam beta)")
_psi = number(integer=False, lo=float("-inf"))  # any finite psi is a valid truncation


def _flag(name: str, v: Any) -> str | None:
    return None if isinstance(v, bool) else f"{name} must be true or false, got {v!r}"


def _name(name: str, v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else f"{name} must be a non-empty string, got {v!r}"


def _scope(name: str, v: Any) -> str | None:
    return None if v in SCOPES else f"{name} must be one of {', '.join(SCOPES)}, got {v!r}"


def _param(name: str, v: Any) -> str | None:
    from ..domains.defaults import PARAMS

    return None if v in PARAMS else f"{name} must be one of {', '.join(PARAMS)}, got {v!r}"


def _targets(name: str, v: Any) -> str | None:
    if not isinstance(v, (list, tuple)) or not all(isinstance(t, str) and t.strip() for t in v):
        return f"{name} must be a list of non-empty texts, got {v!r}"
    if len(v) > MAX_TARGETS:
        return f"{name}: at most {MAX_TARGETS} target texts, got {len(v)}"
    if len(set(v)) != len(v):
        return f"{name}: each target text once, got {list(v)}"
    return None


def _layers(name: str, v: Any) -> str | None:
    if isinstance(v, str):
        if v not in LAYER_GROUPS and not all(t.strip().isdigit() for t in v.split(",") if t.strip()):
            return f"layers must be one of {', '.join(LAYER_GROUPS)} or row indices like '0,1,4', got {v!r}"
    elif not (isinstance(v, (list, tuple)) and all(isinstance(r, int) and not isinstance(r, bool) for r in v)):
        return f"layers must be one of {', '.join(LAYER_GROUPS)} or a list of row indices, got {v!r}"
    return None


@dataclass
class AdaptConfig:
    generator: str = option(DEFAULT_GENERATOR, check=_name,
                            help="checkpoint file or name of the generator to adapt (plug-in names such as toy)")
    iters: int = option(1000, check=number(integer=True, lo=1, hi=MAX_ITERS), help="training iterations")
    batch: int = option(16, check=_size, help="latents per iteration")
    lr: float = option(0.002, check=number(integer=False, lo=0, lo_open=True), help="Adam learning rate")
    beta1: float = option(0.0, check=_beta, help="Adam beta1 (StyleGAN2's)")
    beta2: float = option(0.99, check=_beta, help="Adam beta2 (StyleGAN2's)")
    train_truncation: float = option(1.0, check=_psi, help="truncation psi of the training latents the loss sees")
    sample_truncation: float = option(0.7, check=_psi, help="truncation psi of the sample grids")
    mixing: float = option(0.0, check=number(integer=False, lo=0, hi=1, what=" (a probability)"),
                           help="style-mixing probability for training latents")
    seed: int = option(0, check=number(integer=True, lo=0, hi=MAX_SEED),
                       help="seed of everything random in the run (latents, augmentation, patches)")

    param: str = option("finetune", check=_param,
                         help="what trains: finetune (the synthesis weights), modulation (a per-channel multiplier of "
                              "each conv weight, HyperDomainNet), stylespace (style offsets, StyleDomain), stylespace+ "
                              "or affine+ (StyleDomain's); all but finetune write a small domain.safetensors and bring "
                              "their own lr and iters (docs/domains.md)")
    targets: list[str] = option([], cli=False, check=_targets,
                                help="--param hyper: every target text one hypernetwork learns (give --target once per "
                                     "text; the first is also target_text)")
    hyper_width: int = option(256, check=number(integer=True, lo=8, hi=MAX_HYPER_WIDTH),
                              help="--param hyper: width of the hypernetwork's two hidden layers")
    lambda_cross_domain: float = option(0.4, check=number(integer=False, lo=0),
                                        help="--param hyper: weight of the cross-domain direction loss (image "
                                             "differences between two domains along their text difference; "
                                             "HyperDomainNet's tt_direction)")
    layers: Any = option("adaptive", check=_layers,
                         help="which W+ rows train: adaptive, all, texture, shape, no-fine, or rows like 0,1,5")
    layer_scope: str = option("full", check=_scope,
                              help="parameters within chosen layers: full, conv (weights only), affine (modulation + noise)")
    auto_layer_k: int = option(1, check=_size, help="adaptive: rows to train")
    auto_layer_iters: int = option(1, check=number(integer=True, lo=1, hi=MAX_PROBE_ITERS),
                                   help="adaptive: W+ optimisation steps per selection")
    auto_layer_batch: int = option(8, check=_size, help="adaptive: latents per selection")
    auto_layer_lr: float = option(0.01, check=number(integer=False, lo=0), help="adaptive: learning rate of the W+ probe")
    auto_layer_interval: int = option(1, check=_interval, help="adaptive: select every N steps (1 = the paper)")
    auto_layer_falloff: int = option(0, check=_every, help="adaptive: train one row fewer every N steps (0 = never)")
    auto_layer_min_k: int = option(1, check=_size, help="adaptive: floor of the shrinking k")
    auto_layer_chunk: int = option(0, check=number(integer=True, lo=0, hi=MAX_BATCH, what=" (0 = the whole batch at once)"),
                                   help="adaptive: push the selection batch through in pieces of N to save memory "
                                        "(0 = all at once)")

    # Early stop: every stop_every steps CLIP reads stop_samples fixed latents; once at least
    # stop_share of them are closer to the target than to the source, training ends (0 = off),
    # stop_patience steps after the check that first reached the share.
    stop_share: float = option(0.0, check=number(integer=False, lo=0, hi=1, what=" (a share; 0 = train every iteration)"),
                               help="stop once CLIP reads at least this share of the check samples as the target "
                                    "(0 = run every iteration)")
    stop_every: int = option(10, check=_interval, help="check CLIP's target share every N steps (with --stop-share)")
    stop_samples: int = option(32, check=_size, help="fixed latents CLIP reads at each check")
    stop_patience: int = option(0, check=number(integer=True, lo=0, hi=MAX_ITERS),
                                help="train this many more steps after the check that first reaches --stop-share")
    # False: no stop for content edits (a source group applies, e.g. "red" -> "blue"), which CLIP
    # reads as done while the change is still half-way (docs/toyworld.md)
    stop_content_edits: bool = option(True, check=_flag, help="also stop early when a source group applies "
                                                              "(a shape or colour swapped for another)")

    sample_every: int = option(100, check=_every, help="write a frozen-over-trained grid every N steps (0 = never)")
    save_every: int = option(100, check=_every,
                             help="write the resumable training state every N steps (0 = only at the end)")
    n_samples: int = option(8, check=_size, help="samples per grid row")
    device: str = option("auto", check=_name, help="auto (CUDA when available, else CPU), cpu, cuda, cuda:1, ...")
    export_rosinality: bool = option(False, check=_flag, help="also write generator_rosinality.pt")

    guidance: GuidanceConfig = field(default_factory=lambda: GuidanceConfig(target_text=None))

    def __post_init__(self) -> None:
        if isinstance(self.guidance, dict):
            self.guidance = GuidanceConfig.from_dict(self.guidance)
        self.guidance.seed = self.seed  # one seed drives the whole run (latents, augmentation, patches)
        self.check()

    def check(self) -> None:
        """Every option's type and range, finite numbers only, absurd sizes refused: one line each."""
        message = check_fields(self)
        if message:
            raise AdaptConfigError(message)
        if self.param == "hyper":
            if not self.targets and self.guidance.target_text is not None:
                self.targets = [self.guidance.target_text]
            if not self.targets:
                raise AdaptConfigError("--param hyper: give the target texts (--target TEXT, once per domain)")
            if self.guidance.target_text != self.targets[0]:
                self.guidance.target_text = self.targets[0]
            if self.stop_share > 0:
                raise AdaptConfigError("--param hyper trains every step (--stop-share reads one target only; set it to 0)")
        elif len(self.targets) > 1:
            raise AdaptConfigError(f"{len(self.targets)} target texts need --param hyper (one hypernetwork for many "
                                   f"domains); other parameterisations learn one target")

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "guidance"}
        if d["param"] == "finetune":  # the default: config files stay as they were before parameterisations
            del d["param"]
        if d.get("param") != "hyper":  # hypernetwork options: written only where they apply
            for key in ("targets", "hyper_width", "lambda_cross_domain"):
                del d[key]
        if isinstance(d["layers"], tuple):
            d["layers"] = list(d["layers"])
        d["guidance"] = self.guidance.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AdaptConfig":
        """A config from a mapping (a YAML file's); what it leaves out comes from the generator's preset, then defaults."""
        return merge(data)

    def save(self, path: str | os.PathLike) -> None:
        import yaml

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "AdaptConfig":
        return merge(read_file(path))


def read_file(path: str | os.PathLike) -> dict[str, Any]:
    """The options in a YAML (or JSON) config file, as written: a mapping, not yet merged."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AdaptConfigError(f"cannot read config '{path}': {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise AdaptConfigError(f"config '{path}' is not valid YAML: {' '.join(str(exc).split())}") from exc
    data = data if data is not None else {}
    if not isinstance(data, dict):
        raise AdaptConfigError(f"an adaptation config must be a mapping, got {type(data).__name__}")
    return data


def _check_keys(layer: Mapping[str, Any]) -> None:
    if not isinstance(layer, Mapping):
        raise AdaptConfigError(f"an adaptation config must be a mapping, got {type(layer).__name__}")
    valid = {f.name for f in dataclasses.fields(AdaptConfig)}
    unknown = sorted(set(layer) - valid)
    if unknown:
        raise AdaptConfigError(f"unknown config key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(sorted(valid))}")


def merge(*layers: Mapping[str, Any] | None) -> AdaptConfig:
    """The run's config: defaults < the generator's preset < the parameterisation's defaults < the preset's
    values for that parameterisation (its ``params`` entry) < each layer in turn.

    The parameterisation's defaults (:data:`nada.domains.defaults.PARAM_DEFAULTS`: ``lr`` and
    ``iters`` for ``modulation`` and ``stylespace``) replace the preset's, which were tuned for
    fine-tuning, and yield to anything a layer (config file, flags, keyword arguments) sets.

    A layer is a mapping of :class:`AdaptConfig` keys, ``guidance`` a mapping of
    :class:`GuidanceConfig` keys (or a GuidanceConfig); None layers are skipped. The generator
    whose preset applies is the one the last layer naming one names (for a generator file `nada adapt`
    wrote, the base it names). A ``clip`` list left
    empty counts as unset: the preset's CLIPs, else :data:`nada.guidance.config.DEFAULT_CLIPS`.
    """
    from .. import plugins

    layers_ = [dict(layer) for layer in layers if layer is not None]
    for layer in layers_:
        _check_keys(layer)
    generator = next((layer["generator"] for layer in reversed(layers_) if layer.get("generator") is not None),
                     DEFAULT_GENERATOR)
    data: dict[str, Any] = {}
    guidance: dict[str, Any] = {}
    from ..domains.defaults import PARAM_DEFAULTS

    param = next((layer["param"] for layer in reversed(layers_) if layer.get("param") is not None), "finetune")
    own = PARAM_DEFAULTS.get(param, {}) if isinstance(param, str) else {}
    from ..generators.checkpoints import preset_name_for

    # a generator nada adapt wrote takes the preset of the base it names (its metadata's base_generator)
    preset_name = preset_name_for(str(generator))
    preset = plugins.preset(preset_name) if preset_name else {}
    # a preset may hold values for one parameterisation ("params: {stylespace: {lr: 0.5}}"): they apply
    # over that parameterisation's own defaults
    preset.pop("mapper", None)  # the latent mapper's options (nada.mapper.mapper_config)
    per_param = preset.pop("params", None) or {}
    if not isinstance(per_param, Mapping) or not all(isinstance(v, Mapping) for v in per_param.values()):
        raise AdaptConfigError(f"the {generator} preset's params must map parameterisations to options")
    preset_own = dict(per_param.get(param, {})) if isinstance(param, str) else {}
    _check_keys(preset_own)
    for layer in [preset, dict(own), preset_own, *layers_]:
        g = layer.pop("guidance", None)
        data.update(layer)
        if isinstance(g, GuidanceConfig):
            g = g.to_dict()
        if g is not None:
            if not isinstance(g, Mapping):
                raise AdaptConfigError(f"guidance must be a mapping of guidance options, got {type(g).__name__}")
            guidance.update({k: v for k, v in g.items() if not (k == "clip" and not v)})
    return AdaptConfig(**data, guidance=GuidanceConfig.from_dict(guidance))
