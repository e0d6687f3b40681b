"""Compact StyleGAN2 training loop that makes the built-in base generator.

Non-saturating logistic loss, lazy R1 on reals, EMA of G, style mixing, residual
discriminator; trained on photo-style renders only. Resumable: ``--out`` holds a full
training state written atomically every ``--save-every`` steps.

    python -m nada.toyworld.train generator --out DIR --seed 0
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


def mixed_ws(G: Generator, batch: int, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Map two z per sample and switch between them at a random W+ row with probability ``prob``."""
    z = torch.randn(2, batch, G.z_dim, generator=gen)
    ws = G.mapping(z[0])
    if prob > 0 and torch.rand((), generator=gen).item() < prob:
        cut = int(torch.randint(1, G.num_ws, (), generator=gen))
        ws2 = G.mapping(z[1])
        ws = torch.cat([ws[:, :cut], ws2[:, cut:]], dim=1)
    return ws


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
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(0.0, 0.99))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr * c, betas=(0.0, 0.99**c))
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
        self.opt_g.load_state_dict(s["opt_g"]); self.opt_d.load_state_dict(s["opt_d"])
        self.gen.set_state(s["gen"]); torch.set_rng_state(s["torch_rng"])
        self.step, self.log = s["step"], s["log"]
        return True

    # -------------------------------------------------------------- loop

    def real_batch(self) -> torch.Tensor:
        idx = torch.randint(0, len(self.pool), (self.cfg.batch,), generator=self.gen)
        x = self.pool[idx].float() / 127.5 - 1
        flip = torch.rand(self.cfg.batch, generator=self.gen) < 0.5
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)

    def train_step(self) -> dict:
        cfg = self.cfg
        G, D = self.G, self.D
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
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        # EMA of generator weights
        beta = 0.5 ** (cfg.batch / (cfg.ema_half_life_kimg * 1000))
        with torch.no_grad():
            for pe, p in zip(self.G_ema.parameters(), G.parameters()):
                pe.lerp_(p, 1 - beta)
            for be, b in zip(self.G_ema.buffers(), G.buffers()):
                be.copy_(b)
        return {"d": d_loss.item(), "g": g_loss.item(), "r1": r1.item()}

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
        t0 = time.time()
        while self.step < cfg.steps:
            losses = self.train_step()
            self.step += 1
            if self.step % 50 == 0:
                rate = self.step / max(time.time() - t0, 1e-9)
                self.log.append({"step": self.step, **losses, "time": time.time() - t0})
                print(f"step {self.step}/{cfg.steps} d={losses['d']:.3f} g={losses['g']:.3f} r1={losses['r1']:.3f} ({rate:.2f} it/s)", flush=True)
            if self.step % cfg.sample_every == 0 or self.step == cfg.steps:
                self.snapshot()
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self.save()
        atomic_write_text(self.out / "log.json", json.dumps(self.log))
        return self.export()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nada.toyworld.train generator", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    for name in ("steps", "batch", "pool_size", "save_every", "sample_every"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(GanConfig, name))
    p.add_argument("--r1-gamma", type=float, default=GanConfig.r1_gamma)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = GanConfig(steps=args.steps, batch=args.batch, pool_size=args.pool_size, save_every=args.save_every,
                    sample_every=args.sample_every, r1_gamma=args.r1_gamma, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    trainer = GanTrainer(cfg, args.out)
    if trainer.load():
        print(f"resumed at step {trainer.step}", flush=True)
    path = trainer.run()
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
