"""Many domains in one model: a hypernetwork from a CLIP text direction to a domain-modulation vector.

HyperDomainNet's idea, our network. The input of a domain text ``T`` is the concatenation, over the
run's CLIPs, of the unit text direction ``unit(E(T) - E(source))`` (the same embeddings the
directional loss uses: templates and source text as the run's). A small MLP (two hidden layers of
``hyper_width`` with LeakyReLU, then one linear head) maps it to the log-multipliers ``d`` of every
styled convolution (the ``modulation`` space of :mod:`nada.domains.parameterisations`). The head
starts at zero, so at the start every domain is the base generator exactly.

Training (``nada adapt --param hyper --target A --target B ...``): sample ``i`` of step ``s`` belongs
to domain ``(s * batch + i) % K`` (no random draw, every domain every few steps); each domain's
samples are drawn through its own predicted vector and scored by the run's guidance towards its own
text. The cross-domain term (HyperDomainNet's ``tt_direction``, weight ``lambda_cross_domain``) asks
the CLIP image difference of two samples of different domains to point along their texts'
difference. HyperDomainNet's other regulariser, ``indomain`` (pairwise image angles kept from the
frozen images), is our ``lambda_manifold`` guidance term.

The run writes ``domain.safetensors`` with ``param = hyper``: the network's weights (``net/...``),
the inputs of the trained texts (``inputs``, K x D) and in its metadata the texts, the source text,
the CLIPs and templates, and the output layout. :class:`HyperDomain` turns it into a plain
``modulation`` :class:`~nada.domains.domain.Domain` for any text (``nada sample --domain F --text T``):
a trained text uses its stored input (no CLIP needed); any other text is embedded by the CLIPs the
file names, and the domain is the hypernetwork's guess.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..adapt.errors import AdaptError
from ..adapt.layers import parse_layers
from ..adapt.parameterisation import Parameterisation, StepContext
from ..generators.stylegan2 import Generator
from .parameterisations import SPACES, fold_into, run_synthesis, space_hooks

__all__ = ["HyperDomain", "HyperNetwork", "HyperParameterisation", "hyper_from_file", "text_input"]

MAX_LAYOUT = 256  # output vectors (a 1024-px generator has 17 styled convs)
MAX_CHANNELS = 4096
MAX_INPUT = 16384  # concatenated CLIP embedding sizes
MAX_WIDTH = 4096


class HyperNetwork(nn.Module):
    """``input (D,) -> {"modulation/<layer>": d (C_in,)}``; zero at the start (the head is zero)."""

    def __init__(self, in_dim: int, layout: Sequence[tuple[str, int]], width: int = 256):
        super().__init__()
        self.in_dim, self.width = int(in_dim), int(width)
        self.layout = [(str(k), int(c)) for k, c in layout]
        self.body = nn.Sequential(nn.Linear(in_dim, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2))
        self.head = nn.Linear(width, sum(c for _, c in self.layout))
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = self.head(self.body(x))
        return dict(zip((k for k, _ in self.layout), flat.split([c for _, c in self.layout], dim=-1)))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm().clamp_min(1e-12)


def text_input(clips: Sequence[Any], text: str, source: str, templates: Sequence[str] | None,
               use_templates: bool) -> torch.Tensor:
    """The hypernetwork's input for ``text``: per CLIP ``unit(E(text) - E(source))``, concatenated."""
    from ..guidance.directions import domain_text_embedding

    parts = []
    with torch.no_grad():
        for clip in clips:
            t = domain_text_embedding(clip, text, templates, use_templates)
            s = domain_text_embedding(clip, source, templates, use_templates)
            parts.append(_unit(t - s).float().cpu())
    return torch.cat(parts)


def modulation_layout(G: Generator, layers: Any = "all") -> list[tuple[str, int]]:
    """``[("modulation/<layer>", in_channels)]`` of the styled convs reading the chosen W+ rows."""
    mode = parse_layers(layers, G.num_ws)
    rows = set(range(G.num_ws)) if mode == "adaptive" else set(mode)
    space = SPACES["modulation"]
    layout = [(f"modulation/{unit.name}", conv.in_channel) for _, unit, conv in space.units(G) if unit.ws_index in rows]
    if not layout:
        raise AdaptError(f"--layers {layers!r}: no styled convolution reads those rows; nothing would train")
    return layout


class HyperParameterisation(Parameterisation):
    """Trains one :class:`HyperNetwork` for the run's target texts (``cfg.targets``)."""

    name = param = "hyper"

    def __init__(self, G_frozen: Generator, cfg: Any):
        super().__init__(G_frozen)
        self.cfg = cfg
        self.texts = list(cfg.targets) or [cfg.guidance.target_text]
        self.layout = modulation_layout(G_frozen, cfg.layers)
        self.rows_ = sorted({unit.ws_index for _, unit, _ in SPACES["modulation"].units(G_frozen)
                             if f"modulation/{unit.name}" in dict(self.layout)})
        self.net: HyperNetwork | None = None
        self.inputs: torch.Tensor | None = None  # (K, D) on the generator's device
        self.targets: list[Any] = []  # per text, guidance's ClipTargets
        self.step_index = 0

    # -------------------------------------------------------------- setup
    def prepare(self, guidance: Any, frozen_sampler: Any = None) -> None:
        if guidance.targets is None:
            guidance.prepare(frozen_sampler)
        if guidance.config.target_image_dir is not None:
            raise AdaptError("--param hyper learns text domains (--target); not a target image folder")
        main = guidance.config.target_text
        self.targets = [guidance.targets if t == main else guidance.targets_for(t, frozen_sampler) for t in self.texts]
        self.source_text = guidance.source_text
        self.clip_specs = list(guidance.config.clip)
        self.templates = guidance.config.templates
        self.use_templates = bool(guidance.config.use_templates)
        self.clip_weights = list(guidance.clips.weights)
        self.clips = list(guidance.clips.models)
        device = self.G_frozen.w_avg.device
        inputs = [torch.cat([_unit(t.target - t.source).float() for t in per_clip]) for per_clip in self.targets]
        self.inputs = torch.stack(inputs).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.cfg.seed)
            self.net = HyperNetwork(self.inputs.shape[1], self.layout, self.cfg.hyper_width).to(device)

    def _require_net(self) -> HyperNetwork:
        if self.net is None:
            raise AdaptError("the hypernetwork is built by prepare(guidance) before training")
        return self.net

    def parameters(self) -> list[torch.Tensor]:
        return list(self._require_net().parameters())

    @property
    def rows(self) -> list[int]:
        return list(self.rows_)

    def vectors(self, k: int) -> dict[str, torch.Tensor]:
        """Domain ``k``'s modulation vectors (differentiable)."""
        return self._require_net()(self.inputs[k])

    # -------------------------------------------------------------- forward and loss
    def assignment(self, n: int, step: int) -> torch.Tensor:
        """The domain of each of ``n`` samples at ``step``."""
        return (torch.arange(n) + step * n) % len(self.texts)

    def _draw(self, ws: torch.Tensor, domains: torch.Tensor, noise_mode: str) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor]]]:
        groups = [(k, (domains == k).nonzero().flatten()) for k in range(len(self.texts))]
        groups = [(k, idx) for k, idx in groups if len(idx)]
        parts = {}
        for k, idx in groups:
            hooks = space_hooks(self.G_frozen, self.vectors(k), what="hyper")
            parts[k] = run_synthesis(self.G_frozen, hooks, ws[idx.to(ws.device)], noise_mode=noise_mode)
        order = torch.cat([idx for _, idx in groups])
        images = torch.cat([parts[k] for k, _ in groups])[torch.argsort(order).to(ws.device)]
        return images, groups

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """Sample ``i`` drawn in domain ``i % K`` (sample grids show every domain)."""
        return self._draw(ws, self.assignment(len(ws), 0), noise_mode)[0]

    def before_step(self, ctx: StepContext) -> None:
        self.step_index = ctx.step
        return None

    def loss(self, ws: torch.Tensor, img_frozen: torch.Tensor, guidance: Any) -> tuple[torch.Tensor, dict[str, float]]:
        n = len(ws)
        domains = self.assignment(n, self.step_index)
        images, groups = self._draw(ws, domains, "const")
        total = images.new_zeros(())
        info: dict[str, float] = {}
        for k, idx in groups:
            i = idx.to(ws.device)
            loss_k, info_k = guidance.loss(images[i], img_frozen[i], targets=self.targets[k])
            share = len(idx) / n
            total = total + share * loss_k
            for name, value in info_k.items():
                info[name] = info.get(name, 0.0) + share * value
        if self.cfg.lambda_cross_domain > 0 and len(groups) > 1:
            cross = self.cross_domain_loss(images, domains)
            total = total + self.cfg.lambda_cross_domain * cross
            info["cross_domain"] = float(cross.detach())
            info["total"] = float(total.detach())
        return total, info

    def cross_domain_loss(self, images: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """Mean over CLIPs (ensemble weights) and over pairs of samples of different domains of
        ``1 - cos(E(x_i) - E(x_j), T_i - T_j)`` (unit image and target-text embeddings)."""
        i, j = torch.triu_indices(len(domains), len(domains), offset=1)
        keep = domains[i] != domains[j]
        i, j = i[keep], j[keep]
        values = []
        for c, (clip, w) in enumerate(zip(self.clips, self.clip_weights)):
            e = clip.encode_images(images)
            texts = torch.stack([self.targets[k][c].target for k in range(len(self.texts))]).to(e)
            t = texts[domains.to(e.device)]
            di, dt = e[i.to(e.device)] - e[j.to(e.device)], t[i.to(e.device)] - t[j.to(e.device)]
            values.append(w * (1 - torch.nn.functional.cosine_similarity(di, dt, dim=-1)).mean())
        return sum(values)

    # -------------------------------------------------------------- state and results
    def state_dict(self) -> dict[str, Any]:
        return {"hyper": {k: v.detach().clone() for k, v in self._require_net().state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("hyper")
        net = self._require_net()
        mine = net.state_dict()
        if not isinstance(saved, dict) or set(saved) != set(mine) or any(saved[k].shape != v.shape for k, v in mine.items()):
            raise AdaptError("training state does not fit this hyper run (its network differs)")
        net.load_state_dict(saved)

    def domain_tensors(self, k: int = 0) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {key: v.detach().to("cpu").clone().contiguous() for key, v in self.vectors(k).items()}

    def adapted_generator(self) -> Generator:
        """The base with the first target's domain folded in (the run's other domains: its domain file)."""
        import copy

        G = copy.deepcopy(self.G_frozen)
        fold_into(G, self.domain_tensors(0), what="hyper")
        return G

    def save_domain(self, path: str | os.PathLike, base: Generator, *, source_text: str | None, target_text: str | None,
                    clips: Sequence[str], steps: int) -> Path:
        from .domain import save_domain

        net = self._require_net()
        tensors = {f"net/{k}": v for k, v in net.state_dict().items()}
        tensors["inputs"] = self.inputs
        extra = {"targets": json.dumps(self.texts), "layout": json.dumps(self.layout), "width": str(net.width),
                 "templates": json.dumps(list(self.templates) if self.templates is not None else None),
                 "use_templates": json.dumps(self.use_templates)}
        return save_domain(path, "hyper", tensors, base, source_text=self.source_text or source_text,
                           target_text=target_text, clips=clips, steps=steps, extra=extra)


class HyperDomain:
    """A loaded hypernetwork: :meth:`domain` gives the ``modulation`` domain of any text."""

    param = "hyper"

    def __init__(self, net: HyperNetwork, inputs: torch.Tensor, meta: Mapping[str, str], path: Path | None = None):
        self.net = net.eval().requires_grad_(False)
        self.inputs = inputs
        self.meta = dict(meta)
        self.path = path
        self.texts: list[str] = json.loads(self.meta["targets"])
        self._clips: list[Any] | None = None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else "hyper domain"

    @property
    def base_fingerprint(self) -> str:
        return self.meta.get("base_fingerprint", "")

    def input_for(self, text: str, clips: Sequence[Any] | None = None) -> torch.Tensor:
        """The stored input of a trained text; any other text embedded by ``clips`` (default: the file's CLIPs, loaded)."""
        from .domain import DomainError

        if not isinstance(text, str) or not text.strip():
            raise DomainError(f"{self.label}: the text for a hypernetwork domain is empty")
        if text in self.texts and clips is None:
            return self.inputs[self.texts.index(text)]
        if clips is None:
            if self._clips is None:
                from ..guidance.ensemble import ClipEnsemble

                self._clips = ClipEnsemble.from_specs(json.loads(self.meta.get("clips", "[]"))).models
            clips = self._clips
        x = text_input(clips, text, self.meta.get("source_text", ""), json.loads(self.meta.get("templates", "null")),
                       json.loads(self.meta.get("use_templates", "true")))
        if x.shape != self.inputs.shape[1:]:
            raise DomainError(f"{self.label}: CLIPs giving {x.numel()} input numbers; this hypernetwork reads "
                              f"{self.inputs.shape[1]} (its CLIPs: {self.meta.get('clips')})")
        return x

    def domain(self, text: str, clips: Sequence[Any] | None = None):
        """The ``modulation`` :class:`~nada.domains.domain.Domain` the hypernetwork predicts for ``text``."""
        from .domain import Domain

        with torch.no_grad():
            vectors = {k: v.detach().clone().contiguous() for k, v in self.net(self.input_for(text, clips)).items()}
        keep = ("base_fingerprint", "base_config", "source_text", "clips", "steps")
        meta = {k: self.meta[k] for k in keep if k in self.meta}
        meta.update(target_text=text, hyper=str(self.path or ""), trained=json.dumps(text in self.texts))
        return Domain("modulation", vectors, meta, None if self.path is None else Path(f"{self.path}[{text}]"))


def hyper_from_file(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: Path | None,
                    what: str) -> HyperDomain:
    """Rebuild a :class:`HyperDomain` from a checked domain file's tensors and metadata (one-line errors)."""
    from .domain import DomainError

    try:
        texts = json.loads(meta["targets"])
        layout = [(str(k), int(c)) for k, c in json.loads(meta["layout"])]
        width = int(meta["width"])
        json.loads(meta.get("templates", "null"))
        json.loads(meta.get("use_templates", "true"))
    except (KeyError, ValueError, TypeError) as e:
        raise DomainError(f"{what}; found a hyper domain whose metadata is incomplete ({type(e).__name__}: {e})") from None
    if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
        raise DomainError(f"{what}; found a hyper domain without its target texts")
    if not 0 < len(layout) <= MAX_LAYOUT or any(not (0 < c <= MAX_CHANNELS) or not k.startswith("modulation/")
                                                 for k, c in layout):
        raise DomainError(f"{what}; found a hyper domain with an unusable output layout")
    if not 0 < width <= MAX_WIDTH:
        raise DomainError(f"{what}; found a hyper domain of width {width} (at most {MAX_WIDTH})")
    inputs = tensors.get("inputs")
    if inputs is None or inputs.ndim != 2 or inputs.shape[0] != len(texts) or not 0 < inputs.shape[1] <= MAX_INPUT:
        raise DomainError(f"{what}; found a hyper domain whose stored inputs do not match its {len(texts)} texts")
    net = HyperNetwork(inputs.shape[1], layout, width)
    state = {k[len("net/"):]: v for k, v in tensors.items() if k.startswith("net/")}
    mine = net.state_dict()
    if set(state) != set(mine) or any(state[k].shape != v.shape for k, v in mine.items()):
        raise DomainError(f"{what}; found a hyper domain whose network weights do not fit its layout")
    net.load_state_dict(state)
    return HyperDomain(net, inputs, meta, path)
