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
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import augment as aug
from .judge import Judge, JudgeConfig, JudgeNet, save_judge
from .renderer import RESOLUTION, STYLES, Scene, render, sample_scenes, scene_labels

BLEND_STYLE_LABELS = ("none", "soft")
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


def blend_styles(images: torch.Tensor, scenes: Sequence[Scene], generator: torch.Generator,
                 lowest: float = 0.2, highest: float = 0.8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each image mixed with the same scene drawn in another, random style.

    ``images`` (N, 3, H, W) in [-1, 1] are renders of ``scenes``; each keeps a share
    U(lowest, highest) of itself. Shape, colour and position stay exactly what the scene
    says, while the style is a mixture: an adapted generator half-way between two domains
    draws such images, and its shapes must still be read right. Returns the mixed images,
    the share kept (N,) and the other style's index (N,).
    """
    n = len(scenes)
    if images.shape[0] != n:
        raise ValueError(f"blend_styles needs one scene per image, got {images.shape[0]} images and {n} scenes")
    if n == 0:
        return images, torch.ones(0), torch.zeros(0, dtype=torch.long)
    if not 0 <= lowest <= highest <= 1:
        raise ValueError(f"blend_styles needs 0 <= lowest <= highest <= 1, got {lowest}, {highest}")
    shift = torch.randint(1, len(STYLES), (n,), generator=generator)
    other = torch.tensor([(STYLES.index(sc.style) + int(k)) % len(STYLES) for sc, k in zip(scenes, shift)])
    others = [Scene(**{**sc.as_dict(), "style": STYLES[int(o)]}) for sc, o in zip(scenes, other)]
    keep = lowest + (highest - lowest) * torch.rand(n, generator=generator)
    k = keep.view(n, 1, 1, 1)
    return k * images + (1 - k) * render(others), keep, other


@dataclass
class StyleMixtures:
    """Renders mixed with their scenes in other styles (:func:`blend_styles`), for evaluation."""

    images: torch.Tensor
    dominant: torch.Tensor  # the style that makes up more of each mixture
    clear: torch.Tensor  # whether one style clearly dominates (a share kept outside 0.4-0.6)


def mix_styles(images: torch.Tensor, scenes: Sequence[Scene], labels: dict[str, torch.Tensor],
               generator: torch.Generator, chunk: int = 500) -> StyleMixtures:
    parts = [blend_styles(images[lo:lo + chunk], scenes[lo:lo + chunk], generator) for lo in range(0, len(scenes), chunk)]
    mixed, keep, other = (torch.cat(x) for x in zip(*parts))
    return StyleMixtures(mixed, torch.where(keep >= 0.5, labels["style"], other), (keep - 0.5).abs() > 0.1)


@torch.no_grad()
def evaluate_mixtures(judge: Judge, mixtures: StyleMixtures, labels: dict[str, torch.Tensor]) -> dict:
    """Shape, colour and position accuracy on the mixtures, and ``style_dominant``: the share of
    clearly dominated mixtures read as their dominant style."""
    result = {k: v for k, v in evaluate(judge, mixtures.images, labels).items() if k not in ("style", "per_style")}
    read = judge.predict(mixtures.images[mixtures.clear])["style"]
    result["style_dominant"] = float((read == mixtures.dominant[mixtures.clear]).float().mean())
    return result


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
    style_blend: float = 0.0,
    blend_style_labels: str = "none",
    log=print,
) -> dict:
    """Train the judge into ``out``. ``tone_jitter`` is the share of training images given a strong
    exposure change (:func:`augment.tone`), so that style is read from what is drawn.
    ``style_blend`` is the share mixed with their scene in another style (:func:`blend_styles`);
    With ``blend_style_labels`` "none" those train the shape, colour and position heads only;
    with "soft" the style head too, towards the mixture's shares of the two styles."""
    if blend_style_labels not in BLEND_STYLE_LABELS:
        raise ValueError(f"blend_style_labels must be one of {', '.join(BLEND_STYLE_LABELS)}, got {blend_style_labels!r}")
    for name, share in (("tone_jitter", tone_jitter), ("style_blend", style_blend)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1], got {share}")
    t0 = time.time()
    torch.manual_seed(seed)
    net = JudgeNet(JudgeConfig())
    n_params = sum(p.numel() for p in net.parameters())
    log(f"judge: {n_params} parameters")
    pool, labels = render_labelled_pool(pool_size, seed)
    scenes = sample_scenes(pool_size, np.random.default_rng(seed)) if style_blend > 0 else None  # the pool's scenes
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
        images = pool[idx].float() / 127.5 - 1
        style_target: torch.Tensor = labels["style"][idx]  # class indices; shares once soft labels are in
        style_weight = None
        if style_blend > 0:
            mixed = torch.nonzero(torch.rand(batch, generator=gen) < style_blend).flatten()
            if len(mixed):
                images[mixed], keep, other = blend_styles(images[mixed], [scenes[int(idx[i])] for i in mixed], gen)
                if blend_style_labels == "soft":  # the style is the mixture: keep x own + (1 - keep) x other
                    style_target = F.one_hot(style_target, len(STYLES)).float()
                    style_target[mixed] = keep[:, None] * style_target[mixed] + (1 - keep[:, None]) * F.one_hot(other, len(STYLES)).float()
                else:  # no style label for a mixture
                    style_weight = torch.ones(batch)
                    style_weight[mixed] = 0.0
        images, position = augment_with_labels(images, labels["position"][idx], gen, tone_jitter)
        out_ = net(images)
        if style_weight is None:  # as before blends existed, so earlier judges retrain bit for bit
            style_loss = F.cross_entropy(out_["style"], style_target)
        else:
            style_ce = F.cross_entropy(out_["style"], style_target, reduction="none")
            style_loss = (style_ce * style_weight).sum() / style_weight.sum().clamp_min(1)
        loss = (
            style_loss
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
            save_judge(net, out, {"seed": seed, "step": step + 1, "of_steps": steps, "tone_jitter": tone_jitter,
                                  "style_blend": style_blend, "blend_style_labels": blend_style_labels})
    judge = Judge(net)
    wall = time.time() - t0
    test_images, test_labels = render_labelled_pool(2000, seed + 104729)
    test_images = test_images.float() / 127.5 - 1
    clean = evaluate(judge, test_images, test_labels)
    # the same held-out renders after random photometric + affine noise (robustness check)
    gen_eval = torch.Generator().manual_seed(seed + 3)
    noisy_images, noisy_pos = augment_with_labels(test_images, test_labels["position"], gen_eval)
    noisy = evaluate(judge, noisy_images, {**test_labels, "position": noisy_pos})
    # and mixed with their scenes in other styles: shape, colour and position are still defined
    test_scenes = sample_scenes(2000, np.random.default_rng(seed + 104729))
    blended = evaluate_mixtures(judge, mix_styles(test_images, test_scenes, test_labels, gen_eval), test_labels)
    summary = {
        "seed": seed,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "pool_images": pool_size,
        "tone_jitter": tone_jitter,
        "style_blend": style_blend,
        "blend_style_labels": blend_style_labels,
        "parameters": n_params,
        "wall_seconds": round(wall, 1),
        "heldout_2000": clean,
        "heldout_2000_augmented": noisy,
        "heldout_2000_style_blended": blended,
        "history": history,
    }
    save_judge(net, out, summary)
    log(json.dumps({"heldout": clean, "augmented": {k: v for k, v in noisy.items() if k != "per_style"}, "style_blended": blended}))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nada toyworld train judge", description="Train the built-in judge.")
    p.add_argument("--out", required=True, help="directory for config.json + judge.safetensors")
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pool-size", type=int, default=30000)
    p.add_argument("--tone-jitter", type=float, default=0.0,
                   help="share of training images darkened or washed out (styles are not brightness)")
    p.add_argument("--style-blend", type=float, default=0.0,
                   help="share of training images mixed with their scene in another style (shape, colour and position heads only)")
    p.add_argument("--blend-style-labels", choices=BLEND_STYLE_LABELS, default="none",
                   help="style label of a mixed image: none (shape, colour, position only) or soft (the two styles' shares)")
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
        style_blend=args.style_blend,
        blend_style_labels=args.blend_style_labels,
        log=lambda m: print(m, flush=True),
    )
    return 0
