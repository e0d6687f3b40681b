"""Compact StyleGAN2 training loop that makes the built-in base generator.

Non-saturating logistic loss, lazy R1 on reals, EMA of G, style mixing, residual
discriminator; trained on photo-style renders only. Resumable: ``--out`` holds a full
training state written atomically every ``--save-every`` steps.

A pure GAN of this size needs millions of images to draw crisp stars and triangles, more
than two CPU cores give in hours. ``--anchor-weight W`` adds a paired term that makes
convergence fast: a fixed, documented map :func:`scene_from_latent` turns a latent z into a
scene (shape and colour by argmax over a few z coordinates, the continuous parameters by
the normal CDF or an angle), and G(z) is pulled towards that scene's render by L1. The
adversarial loss, R1 and EMA are unchanged; ``--anchor-weight 0`` is the plain GAN.

    nada toyworld train generator --out DIR --seed 0
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._io import atomic_path, atomic_write_text
from ..generators.latents import style_mixed_ws
from ..generators.stylegan2 import Generator, GeneratorConfig
from ..imaging import save_grid
from .discriminator import Discriminator

TOY_CHANNELS = {4: 128, 8: 128, 16: 64, 32: 32, 64: 16}


@dataclass
class GanConfig:
    steps: int = 12000
    batch: int = 32
    lr: float = 0.002
    r1_gamma: float = 1.0
    d_reg_every: int = 16
    ema_half_life_kimg: float = 5.0
    mixing_prob: float = 0.9
    pool_size: int = 30000
    style: str = "photo"
    seed: int = 0
    save_every: int = 500
    sample_every: int = 500
    style_dim: int = 128
    n_mlp: int = 4
    anchor_weight: float = 0.0  # L1 weight of the scene-latent anchor; 0 = plain GAN
    # Adam lr factor for the mapping network on top of its 0.01 equalised-lr multiplier. The
    # anchor asks the mapping for one particular function of z, which 1x learns too slowly.
    mapping_lr_boost: float = 1.0
    anchor_warmup: int = 0  # first steps train G on the anchor alone (no discriminator): a quick start
    # L1 weight of pixels on or within 2 px of the object relative to background pixels; the
    # object covers ~10% of the image, and plain L1 learns the background first
    anchor_object_weight: float = 1.0
    # weight of an L1 term on image gradients (finite differences): shapes of equal area differ
    # only along their outline, which plain L1 barely sees
    anchor_edge_weight: float = 0.0
    # extra L1 weight of pixels where the four shapes, drawn at this scene's size, place and
    # rotation, disagree (inside some silhouettes, outside others): the only pixels that tell
    # shapes apart, a few percent of the image, where the anchor's shape signal lives
    anchor_shape_weight: float = 0.0
    # anchor targets drawn at rotation 0: the generator need not learn rotation from the anchor,
    # whose L1 optimum for a rotation it cannot resolve is the rotation average, a disc; the
    # adversarial loss is left to bring rotations in
    anchor_upright: bool = False
    # weight of a cross-entropy that makes shape and colour linearly readable from w, through a
    # throwaway linear head: the synthesis cannot learn to draw a shape the mapping has not
    # encoded, and the pixel loss alone gives the mapping almost no reason to encode it
    anchor_code_weight: float = 0.0
    channels: dict = field(default_factory=lambda: dict(TOY_CHANNELS))

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(resolution=64, style_dim=self.style_dim, n_mlp=self.n_mlp, channels=self.channels)


def render_pool(n: int, style: str, seed: int) -> torch.Tensor:
    """Pre-render ``n`` scenes of one style as uint8 (N, 3, 64, 64); training draws from this pool."""
    from .renderer import render, sample_scenes

    rng = np.random.default_rng(seed)
    chunks = []
    for start in range(0, n, 1000):
        scenes = sample_scenes(min(1000, n - start), rng, style=style)
        chunks.append(((render(scenes).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    return torch.cat(chunks)


# rotational symmetry order of each shape (the circle's rotation changes nothing)
SYMMETRY = {"circle": 1, "square": 4, "triangle": 3, "star": 5}


def scene_from_latent(z: torch.Tensor, style: str = "photo", upright: bool = False) -> list:
    """The anchor's fixed map from latents (N, >=21) to scenes with the renderer's distributions.

    z ~ N(0, I) gives exactly the renderer's scene distribution: argmax over 4 (6) coordinates
    is a uniform shape (colour), Phi(z) is uniform on [0, 1], and atan2 of two coordinates is a
    uniform angle. Coordinates 14 and 21 and up are not used. ``upright`` draws every shape at
    rotation 0 instead of reading the rotation from coordinate 13.
    """
    from .renderer import CENTRE_MARGIN, COLOURS, RESOLUTION, SHAPES, SIZE_RANGE, Scene

    z = z.detach().double().cpu()
    if z.ndim != 2 or z.shape[1] < 21:
        raise ValueError(f"scene_from_latent needs latents of shape (N, >=21), got {tuple(z.shape)}")
    u = 0.5 * (1 + torch.erf(z / math.sqrt(2)))  # normal CDF: uniform on (0, 1)
    def angle(i):  # uniform on [0, 2 pi)
        return torch.atan2(z[:, i], z[:, i + 1]) % (2 * math.pi)
    shape, colour = z[:, 0:4].argmax(1), z[:, 4:10].argmax(1)
    size = SIZE_RANGE[0] + u[:, 10] * (SIZE_RANGE[1] - SIZE_RANGE[0])
    margin = CENTRE_MARGIN * size + 1.0
    cx = margin + u[:, 11] * (RESOLUTION - 2 * margin)
    cy = margin + u[:, 12] * (RESOLUTION - 2 * margin)
    # A shape with k-fold symmetry looks the same after a turn of 2 pi / k, so a monotone map of
    # one coordinate onto [0, 2 pi / k) gives the renderer's images exactly and is far easier to
    # fit than an angle: with an angle, L1 is best served by the rotation average, a disc.
    order = torch.tensor([SYMMETRY[name] for name in SHAPES], dtype=z.dtype)[shape]
    rotation = u[:, 13] * (2 * math.pi) / order * (0.0 if upright else 1.0)
    bg_hue, bg_angle = angle(15) / (2 * math.pi), angle(17)
    bg_tone = u[:, 19]
    light = -math.pi * 0.9 + u[:, 20] * (math.pi * 0.8)
    return [Scene(style=style, shape=SHAPES[int(shape[i])], colour=COLOURS[int(colour[i])], size=float(size[i]),
                  cx=float(cx[i]), cy=float(cy[i]), rotation=float(rotation[i]), bg_hue=float(bg_hue[i]),
                  bg_tone=float(bg_tone[i]), bg_angle=float(bg_angle[i]), light_angle=float(light[i]), seed=i)
            for i in range(len(z))]


_UNIT_EXTENT = 1.7  # the unit-size templates cover [-1.7, 1.7]^2: star tips reach ~1.55


def _unit_sdf_range(res: int = 256) -> torch.Tensor:
    """(1, 2, res, res): min and max over the four shapes of their unit-size signed distance."""
    from .renderer import _UNIT_POLYGONS, SHAPES, _polygon_sdf

    c = torch.linspace(-_UNIT_EXTENT, _UNIT_EXTENT, res)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    fields = [points.norm(dim=1) - 1.0 if name == "circle"
              else _polygon_sdf(torch.from_numpy(_UNIT_POLYGONS[name]).float()[None], points)[0] for name in SHAPES]
    d = torch.stack(fields)
    return torch.stack([d.amin(0), d.amax(0)]).reshape(1, 2, res, res)


_SDF_RANGE: list = []


def shape_disagreement(scenes: list, band: float = 0.5) -> torch.Tensor:
    """(N, 1, 64, 64) mask of pixels inside some but not all of the four shapes drawn in each scene's place.

    All shapes scale and turn alike, so one unit-size template of the four signed distances is
    placed per scene by ``grid_sample``; ``band`` pixels count as the outline of each shape.
    """
    from .renderer import _GRID, RESOLUTION

    if not _SDF_RANGE:
        _SDF_RANGE.append(_unit_sdf_range())
    n = len(scenes)
    params = torch.tensor([[s.cx, s.cy, s.size, s.rotation] for s in scenes], dtype=torch.float32).reshape(n, 4)
    cos, sin = params[:, 3].cos()[:, None], params[:, 3].sin()[:, None]
    dx, dy = _GRID[None, :, 0] - params[:, 0:1], _GRID[None, :, 1] - params[:, 1:2]
    size = params[:, 2:3]
    # the inverse rotation takes the pixel into the unit shape's frame
    q = torch.stack([(cos * dx + sin * dy) / size, (-sin * dx + cos * dy) / size], dim=-1) / _UNIT_EXTENT
    d = F.grid_sample(_SDF_RANGE[0].expand(n, -1, -1, -1), q.reshape(n, RESOLUTION, RESOLUTION, 2),
                      mode="bilinear", padding_mode="border", align_corners=True)
    threshold = (band / size).reshape(n, 1, 1, 1)
    return ((d[:, :1] < threshold) & (d[:, 1:] > -threshold)).float()


def mixed_ws(G: Generator, batch: int, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Map two z per sample and switch between them at a random W+ row with probability ``prob``."""
    return style_mixed_ws(G, torch.randn(2, batch, G.z_dim, generator=gen), prob, gen)


def d_logistic_loss(real_pred: torch.Tensor, fake_pred: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_pred).mean() + F.softplus(-real_pred).mean()


def g_nonsaturating_loss(fake_pred: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_pred).mean()


def r1_penalty(real_pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(real_pred.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


class GanTrainer:
    def __init__(self, cfg: GanConfig, out: Path):
        self.cfg, self.out = cfg, out
        torch.manual_seed(cfg.seed)
        self.G = Generator(cfg.generator_config())
        self.D = Discriminator(64, cfg.channels)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        c = cfg.d_reg_every / (cfg.d_reg_every + 1)  # lazy regularisation keeps the effective lr
        mapping = [p for _, p in self.G.mapping_parameters()]
        synthesis = [p for _, p in self.G.synthesis_parameters()]
        # mapping first: the flat order is G.parameters()' order, as in states saved with one group
        self.opt_g = torch.optim.Adam([{"params": mapping, "lr": cfg.lr * cfg.mapping_lr_boost}, {"params": synthesis}],
                                      lr=cfg.lr, betas=(0.0, 0.99))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr * c, betas=(0.0, 0.99**c))
        from .renderer import COLOURS, SHAPES

        self.code_head = torch.nn.Linear(cfg.style_dim, len(SHAPES) + len(COLOURS))
        self.opt_code = torch.optim.Adam(self.code_head.parameters(), lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.step = 0
        self.log: list[dict] = []
        self.pool = self._pool()
        self.fixed_z = torch.randn(32, self.G.z_dim, generator=torch.Generator().manual_seed(1234))

    def _pool(self) -> torch.Tensor:
        """The rendered training pool, cached in the output directory (rendering it is the slow part of a restart)."""
        cfg = self.cfg
        path = self.out / f"pool_{cfg.style.replace(' ', '_')}_{cfg.pool_size}_{cfg.seed}.pt"
        if path.exists():
            return torch.load(path, weights_only=True)
        pool = render_pool(cfg.pool_size, cfg.style, cfg.seed + 2)
        with atomic_path(path) as tmp:
            torch.save(pool, tmp)
        return pool

    # -------------------------------------------------------------- state

    def state(self) -> dict:
        return {
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "code_head": self.code_head.state_dict(), "opt_code": self.opt_code.state_dict(),
            "gen": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
            "step": self.step, "log": self.log, "config": asdict(self.cfg),
        }

    def save(self) -> None:
        with atomic_path(self.out / "state.pt") as tmp:
            torch.save(self.state(), tmp)

    def load(self) -> bool:
        path = self.out / "state.pt"
        if not path.exists():
            return False
        s = torch.load(path, weights_only=True)
        self.G.load_state_dict(s["G"]); self.D.load_state_dict(s["D"]); self.G_ema.load_state_dict(s["G_ema"])
        self.opt_g.load_state_dict(self._two_groups(s["opt_g"])); self.opt_d.load_state_dict(s["opt_d"])
        if "code_head" in s:  # states from before the code term have none
            self.code_head.load_state_dict(s["code_head"]); self.opt_code.load_state_dict(s["opt_code"])
        self.gen.set_state(s["gen"]); torch.set_rng_state(s["torch_rng"])
        self.step, self.log = s["step"], s["log"]
        return True

    def _two_groups(self, opt_state: dict) -> dict:
        """States saved before the mapping network had its own group hold one group of all parameters."""
        if len(opt_state["param_groups"]) != 1:
            return opt_state
        (group,) = opt_state["param_groups"]
        n_mapping = len(self.opt_g.param_groups[0]["params"])
        mapping = {**group, "params": group["params"][:n_mapping], "lr": group["lr"] * self.cfg.mapping_lr_boost}
        return {**opt_state, "param_groups": [mapping, {**group, "params": group["params"][n_mapping:]}]}

    # -------------------------------------------------------------- loop

    def real_batch(self) -> torch.Tensor:
        idx = torch.randint(0, len(self.pool), (self.cfg.batch,), generator=self.gen)
        x = self.pool[idx].float() / 127.5 - 1
        flip = torch.rand(self.cfg.batch, generator=self.gen) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)

    def anchor_loss(self) -> torch.Tensor:
        from .renderer import SHAPES, render, shape_sdf

        cfg = self.cfg
        z = torch.randn(cfg.batch, self.G.z_dim, generator=self.gen)
        scenes = scene_from_latent(z, cfg.style, upright=cfg.anchor_upright)
        target = render(scenes)
        weight = 1 + (cfg.anchor_object_weight - 1) * (shape_sdf(scenes) < 2).float()
        if cfg.anchor_shape_weight > 0:
            weight = weight + cfg.anchor_shape_weight * shape_disagreement(scenes)
        ws = self.G.mapping(z)
        diff = self.G.synthesis(ws, noise_mode="random") - target
        loss = (diff.abs() * weight).mean() / weight.mean()
        if cfg.anchor_edge_weight > 0:
            edges = (diff[..., 1:, :] - diff[..., :-1, :]).abs().mean() + (diff[..., :, 1:] - diff[..., :, :-1]).abs().mean()
            loss = loss + cfg.anchor_edge_weight * edges
        if cfg.anchor_code_weight > 0:
            logits = self.code_head(ws[:, 0])
            k = len(SHAPES)  # the same argmaxes as scene_from_latent's
            code = F.cross_entropy(logits[:, :k], z[:, 0:k].argmax(1)) + F.cross_entropy(logits[:, k:], z[:, k:10].argmax(1))
            loss = loss + cfg.anchor_code_weight * code
        return loss

    def pretrain_code(self, steps: int, batch: int = 512, keep_weight: float = 1.0) -> list[float]:
        """Make shape and colour linearly readable from w before pixel training.

        Only the mapping network and the code head move: cross-entropy of the head's shape and
        colour readings, plus ``keep_weight`` times the squared change of w, so what the
        synthesis already draws from w stays put. The EMA generator takes the new mapping as is.
        Returns the shape accuracy of each step's batch.
        """
        from .renderer import SHAPES

        k = len(SHAPES)
        reference = copy.deepcopy(self.G).requires_grad_(False)
        mapping = [p for _, p in self.G.mapping_parameters()]
        opt = torch.optim.Adam([{"params": mapping, "lr": self.cfg.lr * 100},  # 0.01 equalised-lr multiplier
                                {"params": self.code_head.parameters(), "lr": self.cfg.lr * 5}], betas=(0.9, 0.99))
        gen = torch.Generator().manual_seed(self.cfg.seed + 7)
        accuracy = []
        for _ in range(steps):
            z = torch.randn(batch, self.G.z_dim, generator=gen)
            w = self.G.mapping(z)[:, 0]
            with torch.no_grad():
                w0 = reference.mapping(z)[:, 0]
            logits = self.code_head(w)
            shape, colour = z[:, 0:k].argmax(1), z[:, k:10].argmax(1)
            ce = F.cross_entropy(logits[:, :k], shape) + F.cross_entropy(logits[:, k:], colour)
            loss = ce + keep_weight * (w - w0).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            accuracy.append((logits[:, :k].argmax(1) == shape).float().mean().item())
        with torch.no_grad():
            for (_, pe), (_, p) in zip(self.G_ema.mapping_parameters(), self.G.mapping_parameters()):
                pe.copy_(p)
        self.log.append({"step": self.step, "code_pretrain": steps, "shape_accuracy": accuracy[-1] if accuracy else None})
        return accuracy

    def update_ema(self) -> None:
        beta = 0.5 ** (self.cfg.batch / (self.cfg.ema_half_life_kimg * 1000))
        with torch.no_grad():
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                pe.lerp_(p, 1 - beta)
            for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                be.copy_(b)

    def train_step(self) -> dict:
        cfg = self.cfg
        G, D = self.G, self.D
        if self.step < cfg.anchor_warmup:
            G.requires_grad_(True)
            anchor = self.anchor_loss()
            self.opt_g.zero_grad(set_to_none=True); self.opt_code.zero_grad(set_to_none=True)
            anchor.backward()
            self.opt_g.step(); self.opt_code.step()
            self.update_ema()
            return {"d": 0.0, "g": 0.0, "r1": 0.0, "anchor": anchor.item()}
        # discriminator
        G.requires_grad_(False); D.requires_grad_(True)
        real = self.real_batch()
        with torch.no_grad():
            fake = G.synthesis(mixed_ws(G, cfg.batch, cfg.mixing_prob, self.gen), noise_mode="random")
        d_loss = d_logistic_loss(D(real), D(fake))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        r1 = torch.zeros(())
        if self.step % cfg.d_reg_every == 0:
            real.requires_grad_(True)
            r1 = r1_penalty(D(real), real)
            self.opt_d.zero_grad(set_to_none=True)
            (cfg.r1_gamma / 2 * r1 * cfg.d_reg_every).backward()
            self.opt_d.step()
        # generator
        G.requires_grad_(True); D.requires_grad_(False)
        fake = G.synthesis(mixed_ws(G, cfg.batch, cfg.mixing_prob, self.gen), noise_mode="random")
        g_loss = g_nonsaturating_loss(D(fake))
        anchor = self.anchor_loss() if cfg.anchor_weight > 0 else torch.zeros(())
        self.opt_g.zero_grad(set_to_none=True); self.opt_code.zero_grad(set_to_none=True)
        (g_loss + cfg.anchor_weight * anchor).backward()
        self.opt_g.step(); self.opt_code.step()
        self.update_ema()
        return {"d": d_loss.item(), "g": g_loss.item(), "r1": r1.item(), "anchor": anchor.item()}

    def snapshot(self) -> None:
        with torch.no_grad():
            ema = self.G_ema(self.fixed_z, noise_mode="const")
            raw = self.G(self.fixed_z[:8], noise_mode="const")
        # top rows: EMA generator (what ships); last row: the raw generator, which shows collapse early
        save_grid(torch.cat([ema[:24], raw]), self.out / "samples" / f"{self.step:06d}.png", nrow=8, upscale=2)

    def export(self) -> Path:
        from ..generators.checkpoints import save_generator

        G = copy.deepcopy(self.G_ema)
        G.compute_w_avg()
        path = self.out / "generator.safetensors"
        save_generator(G, path)
        return path

    def run(self) -> Path:
        cfg = self.cfg
        t0, start = time.time(), self.step
        while self.step < cfg.steps:
            losses = self.train_step()
            self.step += 1
            if self.step % 50 == 0:
                rate = (self.step - start) / max(time.time() - t0, 1e-9)
                self.log.append({"step": self.step, **losses, "time": time.time() - t0})
                print(f"step {self.step}/{cfg.steps} d={losses['d']:.3f} g={losses['g']:.3f} r1={losses['r1']:.3f} anchor={losses['anchor']:.4f} ({rate:.2f} it/s)", flush=True)
            if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                self.snapshot()
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self.save()
        atomic_write_text(self.out / "log.json", json.dumps(self.log))
        return self.export()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nada toyworld train generator", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--code-pretrain", type=int, default=0, metavar="N",
                   help="first run N steps of GanTrainer.pretrain_code (once per run directory and step)")
    for name in ("steps", "batch", "pool_size", "save_every", "sample_every", "anchor_warmup"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(GanConfig, name))
    floats = {
        "r1_gamma": "R1 weight",
        "anchor_weight": "L1 weight pulling G(z) to the render of scene_from_latent(z); 0 = plain GAN",
        "mapping_lr_boost": "Adam lr factor for the mapping network (it already runs at 0.01x)",
        "anchor_object_weight": "anchor L1 weight of object pixels relative to background pixels",
        "anchor_edge_weight": "weight of the anchor's L1 on image gradients (outlines)",
        "anchor_shape_weight": "extra anchor L1 weight where the four shapes' silhouettes disagree",
        "anchor_code_weight": "weight of the cross-entropy reading shape and colour from w by a linear head",
    }
    for name, help_text in floats.items():
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(GanConfig, name), help=help_text)
    p.add_argument("--anchor-upright", action="store_true", help="anchor targets at rotation 0 (see GanConfig)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    options = ("steps", "batch", "pool_size", "save_every", "sample_every", "anchor_warmup", "anchor_upright", "seed", *floats)
    cfg = GanConfig(**{name: getattr(args, name) for name in options})
    args.out.mkdir(parents=True, exist_ok=True)
    trainer = GanTrainer(cfg, args.out)
    if trainer.load():
        print(f"resumed at step {trainer.step}", flush=True)
    done = any(e.get("code_pretrain") and e["step"] == trainer.step for e in trainer.log)
    if args.code_pretrain and not done:
        accuracy = trainer.pretrain_code(args.code_pretrain)
        print(f"code pre-training: {args.code_pretrain} steps, shape read from w at {accuracy[-1]:.3f}", flush=True)
        trainer.save()
    path = trainer.run()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
