"""Measure an adapted generator against the built-in base generator, with the independent judge.

Both generators draw the same latents, so every adapted sample has a twin: the judge tells
whether the expected labels were reached (``target_rate``), whether the other labels
survived (``preserved``), and how far the object moved (``position_shift_px``).
``fid_to_target`` compares the samples with true renders of the target domain in the
judge's feature space; ``clip_quality`` / ``clip_diversity`` are the HyperDomainNet
metrics computed with the built-in CLIPs (which the judge never shares anything with).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .renderer import COLOURS, SHAPES, STYLES, render, sample_scenes
from ..errors import NadaError

LABELS = {"style": STYLES, "shape": SHAPES, "colour": COLOURS}
_ALIASES = {"color": "colour"}


class EvaluateError(NadaError, ValueError):
    pass


def parse_expectations(items: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """``["style=sketch", "shape=square"]`` -> ``{"style": "sketch", "shape": "square"}`` (validated)."""
    pairs = items.items() if isinstance(items, Mapping) else [_split(s) for s in items]
    out: dict[str, str] = {}
    for key, value in pairs:
        key = _ALIASES.get(key.strip().lower(), key.strip().lower())
        if key not in LABELS:
            raise EvaluateError(f"--expect {key}=...: unknown label; use one of {', '.join(LABELS)}")
        value = value.strip().lower().replace("_", " ").replace("-", " ")
        if value not in LABELS[key]:
            raise EvaluateError(f"--expect {key}={value}: unknown {key}; choose from {', '.join(LABELS[key])}")
        out[key] = value
    if not out:
        raise EvaluateError("give at least one --expect LABEL=VALUE (e.g. style=sketch)")
    return out


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise EvaluateError(f"--expect {item!r}: expected LABEL=VALUE, e.g. style=sketch")
    k, v = item.split("=", 1)
    return k, v


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (N, D) and ``b`` (M, D), in float64.

    ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)``; the matrix square
    roots come from symmetric eigendecompositions, so no scipy is needed.
    """
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = torch.cov(a.T), torch.cov(b.T)
    evals, evecs = torch.linalg.eigh(s_a)
    root_a = evecs @ torch.diag(evals.clamp_min(0).sqrt()) @ evecs.T
    cross = torch.linalg.eigvalsh(root_a @ s_b @ root_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * cross)


def target_caption(expect: Mapping[str, str]) -> str:
    from .captions import compose

    return compose(expect.get("style"), expect.get("shape"), expect.get("colour"))


@torch.no_grad()
def generate(G, n: int, seed: int, truncation: float = 1.0, batch: int = 64) -> torch.Tensor:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    device = next(G.parameters()).device
    out = [G(z[i:i + batch].to(device), truncation_psi=truncation, noise_mode="const").clamp(-1, 1).cpu()
           for i in range(0, n, batch)]
    return torch.cat(out)


def clip_quality_diversity(images: torch.Tensor, text: str, clips: Sequence[Any]) -> tuple[float, float]:
    """Mean cos(E_T(text), E_I(img)) and mean pairwise (1 - cos) between images, averaged over ``clips``
    (:func:`nada.metrics.quality_diversity`, the text as given)."""
    from ..metrics import quality_diversity

    report = quality_diversity(images, text, clips, batch_size=64)
    return report["quality"], report["diversity"]


def judge_verdict(pred: Mapping[str, torch.Tensor], pred_base: Mapping[str, torch.Tensor],
                  expect: Mapping[str, str]) -> tuple[torch.Tensor, dict[str, float]]:
    """(per-sample bool: the judge gives every expected label, {label: share kept from the base}) for labels not expected."""
    hit = torch.ones(len(pred["style"]), dtype=torch.bool)
    for key, value in expect.items():
        hit &= pred[key] == LABELS[key].index(value)
    preserved = {key: float((pred[key] == pred_base[key]).float().mean()) for key in LABELS if key not in expect}
    return hit, preserved


def evaluate(generator, expect: Mapping[str, str] | Sequence[str], n: int = 256, seed: int = 0, base=None,
             truncation: float = 1.0, clips: Sequence[Any] | None = None, judge=None, text: str | None = None) -> dict[str, Any]:
    """Judge ``generator`` against ``base`` (default: the built-in toy generator) on the same latents."""
    from ..generators.checkpoints import load_generator
    from .judge import load_judge

    expect = parse_expectations(expect)
    if n < 2:
        raise EvaluateError(f"--n must be at least 2, got {n}")
    if not isinstance(truncation, (int, float)) or not math.isfinite(truncation):
        raise EvaluateError(f"--truncation must be a finite number, got {truncation}")
    if not 0 <= seed < 2**63 - 1:
        raise EvaluateError(f"--seed must be an integer from 0 to 2**63-2, got {seed}")
    G = load_generator(generator) if isinstance(generator, (str, bytes)) or hasattr(generator, "__fspath__") else generator
    base = load_generator("toy") if base is None else base
    if isinstance(base, str):
        base = load_generator(base)
    if G.resolution != base.resolution:
        raise EvaluateError(f"generator is {G.resolution} px but the base generator is {base.resolution} px")
    judge = load_judge() if judge is None else judge

    imgs, imgs_base = generate(G, n, seed, truncation), generate(base, n, seed, truncation)
    for name, x in (("generator", imgs), ("base generator", imgs_base)):
        if not torch.isfinite(x).all():
            raise EvaluateError(f"the {name} draws non-finite images (NaN or inf); its weights are damaged")
    pred, pred_base = judge.predict(imgs), judge.predict(imgs_base)
    hit, preserved = judge_verdict(pred, pred_base, expect)
    hit_base = judge_verdict(pred_base, pred_base, expect)[0]
    shift = (pred["position"] - pred_base["position"]).norm(dim=1)

    # true renders of the target domain: expected labels fixed, everything else random
    rng = np.random.default_rng(seed + 1)
    target_images = render(sample_scenes(n, rng, style=expect.get("style", "photo"), shape=expect.get("shape"),
                                         colour=expect.get("colour")))
    fid = frechet_distance(judge.features(imgs), judge.features(target_images))

    if clips is None:
        from ..guidance.clip import load_clip
        from .assets import builtin_clip_paths

        clips = [load_clip(str(p)) for p in builtin_clip_paths()]
    text = text or target_caption(expect)
    quality, diversity = clip_quality_diversity(imgs, text, clips)
    base_quality, base_diversity = clip_quality_diversity(imgs_base, text, clips)

    return {
        "expect": expect,
        "n": n,
        "seed": seed,
        "target_rate": float(hit.float().mean()),
        "base_target_rate": float(hit_base.float().mean()),
        "preserved": preserved,
        "position_shift_px": float(shift.mean()),
        "fid_to_target": fid,
        "clip_text": text,
        "clip_quality": quality,
        "clip_diversity": diversity,
        "base_clip_quality": base_quality,
        "base_clip_diversity": base_diversity,
        "label_shares": {key: {name: float((pred[key] == i).float().mean()) for i, name in enumerate(names)}
                         for key, names in LABELS.items()},
    }


def coverage(generator, n: int = 1000, seed: int = 0, judge=None, truncation: float = 1.0) -> dict[str, Any]:
    """How well a generator covers the world: counts of every shape x colour pair and style shares.

    The base generator must show all 24 pairs, none below a third of its uniform share
    (``min_pair_ratio`` >= 1/3), and look like photos (``style_shares["photo"]``).
    """
    from .judge import load_judge

    judge = load_judge() if judge is None else judge
    pred = judge.predict(generate(generator, n, seed, truncation))
    counts = torch.zeros(len(SHAPES), len(COLOURS), dtype=torch.long)
    for s, c in zip(pred["shape"].tolist(), pred["colour"].tolist()):
        counts[s, c] += 1
    uniform = n / counts.numel()
    return {
        "n": n,
        "pairs": {f"{SHAPES[s]}/{COLOURS[c]}": int(counts[s, c]) for s in range(len(SHAPES)) for c in range(len(COLOURS))},
        "pairs_seen": int((counts > 0).sum()),
        "min_pair_ratio": float(counts.min() / uniform),
        "style_shares": {name: float((pred["style"] == i).float().mean()) for i, name in enumerate(STYLES)},
    }
