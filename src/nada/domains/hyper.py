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

import copy
import json
from typing import Any

import torch

from ..adapt.errors import AdaptError
from ..adapt.layers import parse_layers
from ..adapt.parameterisation import Parameterisation, StepContext
from ..generators.stylegan2 import Generator
from .hypernet import HyperNetwork, unit
from .parameterisations import SPACES, fold_into, run_synthesis, space_hooks

__all__ = ["HyperParameterisation", "modulation_layout"]


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
        inputs = [torch.cat([unit(t.target - t.source).float() for t in per_clip]) for per_clip in self.targets]
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
        G = copy.deepcopy(self.G_frozen)
        fold_into(G, self.domain_tensors(0), what="hyper")
        return G

    def domain_file(self) -> tuple[str, dict[str, torch.Tensor], dict[str, str]]:
        """What ``domain.safetensors`` holds: the network's weights, the trained texts' inputs, and the
        metadata that rebuilds it (:class:`nada.domains.domain.HyperDomain`)."""
        net = self._require_net()
        tensors = {f"net/{k}": v for k, v in net.state_dict().items()}
        tensors["inputs"] = self.inputs
        extra = {"targets": json.dumps(self.texts), "layout": json.dumps(self.layout), "width": str(net.width),
                 "templates": json.dumps(list(self.templates) if self.templates is not None else None),
                 "use_templates": json.dumps(self.use_templates)}
        return self.param, tensors, extra
