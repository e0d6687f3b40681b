"""The latent mapper: a small network that moves W+ codes towards a text's region (StyleCLIP's levels mapper).

For an adapted generator that mixes source and target (cats *and* dogs), the mapper learns, per code,
an offset that pushes its image towards the target: ``w' = w + multiplier · M(w)`` row by row. As in
StyleCLIP, the rows are split into three levels, coarse (0–3), medium (4–7) and fine (8 on), each with
its own MLP (PixelNorm, then ``depth`` linear layers of width ``w_dim`` with LeakyReLU(0.2) between);
its last layer starts at zero, so the mapper starts as the identity. ``levels`` chooses which levels
move (StyleCLIP's ``no_coarse_mapper`` etc.).

Loss per step, on codes drawn from the generator's mapping network: the run's CLIP guidance between the
mapped images and the unmapped ones (the directional loss from the source to the target text, and any
other term), plus ``lambda_offset_l2 · mean ||multiplier · M(w)||²`` (StyleCLIP's latent L2 term) and StyleGAN-NADA's
extra norm term ``lambda_offset_norm · mean ||multiplier · M(w)||`` (per row), which keeps the offsets short.

``mapper.safetensors``: the weights, and in the metadata ``format = nada-mapper``, ``num_ws``, ``w_dim``,
``depth``, ``levels``, ``multiplier``, the texts and the base generator's fingerprint.
:class:`MappedGenerator` is a generator view (``mapping``, ``synthesis``, ``forward``) that applies it.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .errors import NadaError
from .options import check_fields, number, option

__all__ = ["LevelsMapper", "MappedGenerator", "MapperConfig", "MapperError", "load_mapper", "mapper_config", "mapper_to_dir",
           "save_mapper", "train_mapper"]

FORMAT_NAME = "nada-mapper"
LEVELS = ("coarse", "medium", "fine")


class MapperError(NadaError, ValueError):
    """A mapper file or option that cannot be used: one line."""


def level_rows(num_ws: int) -> dict[str, list[int]]:
    """StyleCLIP's split of the W+ rows: coarse 0–3, medium 4–7, fine 8 on (clipped to ``num_ws``)."""
    return {"coarse": list(range(0, min(4, num_ws))), "medium": list(range(4, min(8, num_ws))),
            "fine": list(range(8, num_ws))}


class _LevelMLP(nn.Module):
    def __init__(self, w_dim: int, depth: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(w_dim, w_dim))
            if i < depth - 1:
                layers.append(nn.LeakyReLU(0.2))
        self.net = nn.Sequential(*layers)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.net(w * torch.rsqrt(w.pow(2).mean(dim=-1, keepdim=True) + 1e-8))


class LevelsMapper(nn.Module):
    """``ws (N, num_ws, w_dim) -> offsets`` (N, num_ws, w_dim), zero on the levels it does not move."""

    def __init__(self, num_ws: int, w_dim: int, depth: int = 4, levels: Sequence[str] = LEVELS):
        super().__init__()
        if not set(levels) <= set(LEVELS) or not levels:
            raise MapperError(f"levels must be some of {', '.join(LEVELS)}, got {list(levels)}")
        self.num_ws, self.w_dim, self.depth = int(num_ws), int(w_dim), int(depth)
        rows = level_rows(num_ws)
        self.levels = [lv for lv in LEVELS if lv in levels and rows[lv]]
        if not self.levels:
            raise MapperError(f"no W+ row of a {num_ws}-row generator is in levels {list(levels)}")
        self.rows = {lv: rows[lv] for lv in self.levels}
        self.mlps = nn.ModuleDict({lv: _LevelMLP(w_dim, depth) for lv in self.levels})

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(ws)
        for lv in self.levels:
            idx = self.rows[lv]
            out[:, idx] = self.mlps[lv](ws[:, idx])
        return out


def _flag_levels(name: str, v: Any) -> str | None:
    ok = isinstance(v, (list, tuple)) and v and all(x in LEVELS for x in v)
    return None if ok else f"{name} must be some of {', '.join(LEVELS)}, got {v!r}"


@dataclass
class MapperConfig:
    """Options of ``nada mapper`` (and ``nada.train_mapper``)."""

    iters: int = option(300, check=number(integer=True, lo=1, hi=10**6), help="training steps")
    batch: int = option(4, check=number(integer=True, lo=1, hi=4096), help="codes per step")
    lr: float = option(0.01, check=number(integer=False, lo=0, lo_open=True, hi=10), help="Adam learning rate")
    depth: int = option(4, check=number(integer=True, lo=1, hi=16), help="linear layers per level (StyleCLIP: 4)")
    levels: list[str] = option(list(LEVELS), check=_flag_levels,
                               help="levels the mapper moves: coarse (rows 0-3), medium (4-7), fine (8 on); repeatable")
    multiplier: float = option(0.1, check=number(integer=False, lo=0, lo_open=True, hi=10),
                               help="w' = w + multiplier * M(w) (StyleCLIP: 0.1)")
    lambda_offset_l2: float = option(0.8, check=number(integer=False, lo=0), help="weight of the mean squared offset (StyleCLIP: 0.8)")
    lambda_offset_norm: float = option(0.1, check=number(integer=False, lo=0),
                                help="weight of the mean offset length (StyleGAN-NADA's extra norm term)")
    truncation: float = option(1.0, check=number(integer=False, lo=0, hi=1), help="truncation psi of the training codes")
    seed: int = option(0, check=number(integer=True, lo=0, hi=2**63 - 1), help="seed of the training codes")

    def __post_init__(self) -> None:
        message = check_fields(self)
        if message:
            raise MapperError(message)


def mapper_config(generator: str | os.PathLike | None = None, **options: Any) -> MapperConfig:
    """The mapper's options: defaults < the ``mapper`` section of ``generator``'s preset (a name's own, or
    for an adapted file the preset of the base it names, :func:`nada.generators.checkpoints.preset_name_for`) < ``options``."""
    from .generators.checkpoints import preset_name_for
    from .plugins import preset

    name = preset_name_for(generator) if generator is not None else None
    section = preset(name).get("mapper", {}) if name else {}
    if not isinstance(section, dict):
        raise MapperError(f"the {name} preset's mapper section must map options to values")
    unknown = sorted(set(section) - set(MapperConfig.__dataclass_fields__))
    if unknown:
        raise MapperError(f"the {name} preset's mapper section has unknown options: {', '.join(unknown)}")
    return MapperConfig(**{**section, **options})


class MappedGenerator(nn.Module):
    """A generator (or domain view) whose codes pass through a mapper before synthesis."""

    def __init__(self, G: Any, mapper: LevelsMapper, multiplier: float = 0.1):
        super().__init__()
        self.G, self.mapper, self.multiplier = G, mapper, multiplier

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in ("G", "mapper"):
                raise
            return getattr(self._modules["G"], name)

    def map(self, ws: torch.Tensor) -> torch.Tensor:
        return ws + self.multiplier * self.mapper(ws)

    def mapping(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.G.mapping(*args, **kwargs)

    def synthesis(self, ws: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.G.synthesis(self.map(ws), *args, **kwargs)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "random") -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation_psi), noise_mode=noise_mode)


def train_mapper(G: Any, guidance: Any, config: MapperConfig | None = None, *, progress: bool = True,
                 log_every: int = 0) -> tuple[LevelsMapper, list[dict[str, float]]]:
    """Train a mapper for ``G`` (unchanged) under ``guidance`` (prepared here if needed)."""
    cfg = config or MapperConfig()
    device = G.w_avg.device
    gen = torch.Generator().manual_seed(cfg.seed)
    if guidance.targets is None:
        def sampler(n: int) -> torch.Tensor:
            z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 7)).to(device)
            with torch.no_grad():
                return G.synthesis(G.mapping(z, cfg.truncation), noise_mode="const")
        guidance.prepare(sampler)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        mapper = LevelsMapper(G.num_ws, G.w_dim, cfg.depth, cfg.levels).to(device)
    opt = torch.optim.Adam(mapper.parameters(), lr=cfg.lr)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.iters, desc="mapper", unit="it", dynamic_ncols=True)
    history = []
    t0 = time.perf_counter()
    try:
        for step in range(cfg.iters):
            z = torch.randn(cfg.batch, G.z_dim, generator=gen).to(device)
            with torch.no_grad():
                ws = G.mapping(z, cfg.truncation)
                img0 = G.synthesis(ws, noise_mode="const")
            offset = cfg.multiplier * mapper(ws)
            img = G.synthesis(ws + offset, noise_mode="const")
            loss, info = guidance.loss(img, img0)
            rows = [r for lv in mapper.levels for r in mapper.rows[lv]]
            moved = offset[:, rows]
            l2 = moved.pow(2).sum(-1).mean()
            norm = moved.norm(dim=-1).mean()
            total = loss + cfg.lambda_offset_l2 * l2 + cfg.lambda_offset_norm * norm
            if not torch.isfinite(total):
                raise MapperError(f"the mapper's loss became non-finite at step {step + 1}; try a lower --lr")
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            terms = {("clip_total" if k == "total" else k): float(f"{v:.6g}") for k, v in info.items()}
            history.append({"step": step + 1, **terms,
                            "l2": float(l2.detach()), "norm": float(norm.detach()), "total": float(total.detach()),
                            "time_s": round(time.perf_counter() - t0, 3)})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(total.detach()):.4f}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return mapper.eval().requires_grad_(False), history


def mapper_to_dir(G: Any, guidance: Any, out: str | os.PathLike, config: MapperConfig | None = None, *,
                  generator: str = "", domains: Sequence[str] = (), progress: bool = True) -> list[dict[str, float]]:
    """Train a mapper (:func:`train_mapper`) and write ``out``: ``mapper.safetensors``, ``final.png`` (eight codes
    before, over after), ``metrics.json`` (the loss history) and ``config.yaml``. Returns the history."""
    import yaml

    from ._io import atomic_write_text, prepare_output_dir
    from .imaging import save_grid

    cfg = config or MapperConfig()
    mapper, history = train_mapper(G, guidance, cfg, progress=progress)
    prepare_output_dir(out, "--out")
    gcfg = guidance.config
    save_mapper(Path(out) / "mapper.safetensors", mapper, multiplier=cfg.multiplier,
                meta={"generator": generator, "source_text": str(guidance.source_text),
                      "target_text": str(gcfg.target_text), "clips": json.dumps(list(gcfg.clip))})
    z = torch.randn(8, G.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 12345)).to(G.w_avg.device)
    with torch.no_grad():
        ws = G.mapping(z, 0.7)
        before = G.synthesis(ws, noise_mode="const")
        after = G.synthesis(ws + cfg.multiplier * mapper(ws), noise_mode="const")
    save_grid(torch.cat([before, after]).float().cpu().clamp(-1, 1), Path(out) / "final.png", nrow=8)
    atomic_write_text(Path(out) / "metrics.json", json.dumps({"steps": len(history), "history": history}, indent=1))
    atomic_write_text(Path(out) / "config.yaml", yaml.safe_dump(
        {"generator": generator, "domains": list(domains), "mapper": cfg.__dict__, "guidance": gcfg.to_dict()},
        sort_keys=False))
    return history


def save_mapper(path: str | os.PathLike, mapper: LevelsMapper, *, multiplier: float, meta: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    from ._io import tensors_sha256
    from .files import atomic_path

    tensors = {k: v.detach().float().cpu().contiguous() for k, v in mapper.state_dict().items()}
    full = {**(meta or {}), "format": FORMAT_NAME, "num_ws": str(mapper.num_ws), "w_dim": str(mapper.w_dim),
            "depth": str(mapper.depth), "levels": json.dumps(mapper.levels), "multiplier": repr(float(multiplier)),
            "checksum": tensors_sha256(tensors)}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=full)
    return path


def load_mapper(path: str | os.PathLike, G: Any | None = None) -> tuple[LevelsMapper, float, dict[str, str]]:
    """A mapper file (safetensors only, checksum verified) -> (mapper, multiplier, metadata); checked against ``G``."""
    from safetensors import safe_open

    from ._io import tensors_sha256

    path = Path(path)
    what = f"{path}: expected a nada mapper .safetensors"
    if not path.is_file():
        raise MapperError(f"{what}; found no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise MapperError(f"{what}; found an unreadable or damaged file ({' '.join(str(e).split())[:120]})") from None
    if meta.get("format") != FORMAT_NAME:
        raise MapperError(f"{what} (format={FORMAT_NAME}); found format={meta.get('format')!r}")
    if tensors_sha256(tensors) != meta.get("checksum"):
        raise MapperError(f"{what} whose weights match its checksum; found different ones (corrupted)")
    try:
        num_ws, w_dim, depth = int(meta["num_ws"]), int(meta["w_dim"]), int(meta["depth"])
        levels, multiplier = json.loads(meta["levels"]), float(meta["multiplier"])
    except (KeyError, ValueError) as e:
        raise MapperError(f"{what}; found incomplete metadata ({type(e).__name__}: {e})") from None
    if not (0 < num_ws <= 64 and 0 < w_dim <= 4096 and 0 < depth <= 16):
        raise MapperError(f"{what}; found sizes out of range (num_ws {num_ws}, w_dim {w_dim}, depth {depth})")
    mapper = LevelsMapper(num_ws, w_dim, depth, levels)
    mine = mapper.state_dict()
    if set(mine) != set(tensors) or any(mine[k].shape != tensors[k].shape for k in mine):
        raise MapperError(f"{what}; found weights that do not fit its metadata")
    if not all(torch.isfinite(v).all() for v in tensors.values()):
        raise MapperError(f"{what}; found non-finite weights")
    mapper.load_state_dict(tensors)
    if G is not None and (G.num_ws, G.w_dim) != (num_ws, w_dim):
        raise MapperError(f"{path}: a mapper for codes of {num_ws} x {w_dim}; this generator's are {G.num_ws} x {G.w_dim}")
    return mapper.eval().requires_grad_(False), multiplier, meta
