"""Supervised training of the judge on the renderer's labels.

The judge evaluates *generated* images, which are imperfect renders, so it is trained on
augmented renders (affine jitter with the position label carried along, blur, noise,
brightness/contrast/saturation changes): it has to recognise a style from its texture and
colour statistics rather than from pixel-exact renderer output.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import augment as aug
from .judge import Judge, JudgeConfig, JudgeNet, save_judge
from .renderer import RESOLUTION, STYLES, render, sample_scenes, scene_labels

POSITION_WEIGHT = 0.2  # position loss is in pixels; this keeps it comparable to the cross-entropies


def render_labelled_pool(n: int, seed: int, chunk: int = 500) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``n`` random renders as uint8 (n, 3, 64, 64) with their labels."""
    scenes = sample_scenes(n, np.random.default_rng(seed))
    out = torch.empty(n, 3, RESOLUTION, RESOLUTION, dtype=torch.uint8)
    for lo in range(0, n, chunk):
        out[lo : lo + chunk] = ((render(scenes[lo : lo + chunk]) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return out, scene_labels(scenes)


def augment_with_labels(
    images: torch.Tensor, position: torch.Tensor, generator: torch.Generator, tone_jitter: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Affine jitter (position label follows), then photometric noise; ``tone_jitter`` > 0 first
    applies :func:`augment.tone` with that probability."""
    theta = aug.random_affine_matrices(
        images.shape[0], generator, scale=(0.92, 1.06), max_rotate_deg=6.0, max_translate=0.08, flip=True
    )
    moved = aug.apply_affine(images, theta, padding_mode="border")
    if tone_jitter > 0:
        moved = aug.tone(moved, generator, tone_jitter)
    return aug.photometric(moved, generator, noise_std=0.08, max_blur_sigma=1.0), aug.map_points(position, theta, RESOLUTION)


@torch.no_grad()
def evaluate(judge: Judge, images: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict:
    pred = judge.predict(images)
    err = (pred["position"] - labels["position"]).norm(dim=1)
    result = {k: float((pred[k] == labels[k]).float().mean()) for k in ("style", "shape", "colour")}
    result["position_within_2px"] = float((err <= 2).float().mean())
    result["position_error_median_px"] = float(err.median())
    result["per_style"] = {}
    for i, st in enumerate(STYLES):
        m = labels["style"] == i
        if m.any():
            result["per_style"][st] = {
                **{k: float((pred[k][m] == labels[k][m]).float().mean()) for k in ("style", "shape", "colour")},
                "position_within_2px": float((err[m] <= 2).float().mean()),
            }
    return result


def train_judge(
    out: str | os.PathLike,
    *,
    seed: int = 12345,
    steps: int = 3000,
    batch: int = 64,
    lr: float = 2e-3,
    pool_size: int = 30000,
    eval_every: int = 500,
    tone_jitter: float = 0.0,
    log=print,
) -> dict:
    """Train the judge into ``out``. ``tone_jitter`` is the share of training images given a strong
    exposure change (:func:`augment.tone`), so that style is read from what is drawn."""
    if not 0 <= tone_jitter <= 1:
        raise ValueError(f"tone_jitter must be a probability in [0, 1], got {tone_jitter}")
    t0 = time.time()
    torch.manual_seed(seed)
    net = JudgeNet(JudgeConfig())
    n_params = sum(p.numel() for p in net.parameters())
    log(f"judge: {n_params} parameters")
    pool, labels = render_labelled_pool(pool_size, seed)
    log(f"pool: {len(pool)} images rendered in {time.time() - t0:.0f}s")
    val_images, val_labels = render_labelled_pool(500, seed + 7919)
    val_images = val_images.float() / 127.5 - 1

    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 30)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    gen = torch.Generator().manual_seed(seed + 1)
    history = []
    t_train = time.time()
    net.train()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = torch.randint(0, len(pool), (batch,), generator=gen)
        images, position = augment_with_labels(pool[idx].float() / 127.5 - 1, labels["position"][idx], gen, tone_jitter)
        out_ = net(images)
        loss = (
            F.cross_entropy(out_["style"], labels["style"][idx])
            + F.cross_entropy(out_["shape"], labels["shape"][idx])
            + F.cross_entropy(out_["colour"], labels["colour"][idx])
            + POSITION_WEIGHT * F.smooth_l1_loss(out_["position"], position)
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 50 == 0:
            rate = (step + 1) / (time.time() - t_train)
            log(f"step {step + 1}/{steps} loss {loss.item():.4f} lr {lr_at(step):.2e} {rate:.2f} steps/s")
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            judge = Judge(net)
            res = evaluate(judge, val_images, val_labels)
            net.train()
            for p in net.parameters():
                p.requires_grad_(True)
            history.append({"step": step + 1, **{k: v for k, v in res.items() if k != "per_style"}})
            log(f"eval step {step + 1}: " + json.dumps(history[-1]))
            save_judge(net, out, {"seed": seed, "step": step + 1, "of_steps": steps, "tone_jitter": tone_jitter})
    judge = Judge(net)
    wall = time.time() - t0
    test_images, test_labels = render_labelled_pool(2000, seed + 104729)
    test_images = test_images.float() / 127.5 - 1
    clean = evaluate(judge, test_images, test_labels)
    # the same held-out renders after random photometric + affine noise (robustness check)
    gen_eval = torch.Generator().manual_seed(seed + 3)
    noisy_images, noisy_pos = augment_with_labels(test_images, test_labels["position"], gen_eval)
    noisy = evaluate(judge, noisy_images, {**test_labels, "position": noisy_pos})
    summary = {
        "seed": seed,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "pool_images": pool_size,
        "tone_jitter": tone_jitter,
        "parameters": n_params,
        "wall_seconds": round(wall, 1),
        "heldout_2000": clean,
        "heldout_2000_augmented": noisy,
        "history": history,
    }
    save_judge(net, out, summary)
    log(json.dumps({"heldout": clean, "augmented": {k: v for k, v in noisy.items() if k != "per_style"}}))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nada.toyworld.train judge", description="Train the built-in judge.")
    p.add_argument("--out", required=True, help="directory for config.json + judge.safetensors")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pool-size", type=int, default=30000)
    p.add_argument("--tone-jitter", type=float, default=0.0,
                   help="share of training images darkened or washed out (styles are not brightness)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_judge(
        args.out,
        seed=args.seed,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        pool_size=args.pool_size,
        tone_jitter=args.tone_jitter,
        log=lambda m: print(m, flush=True),
    )
    return 0
