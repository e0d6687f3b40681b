"""Contrastive training of the built-in world's small CLIPs (``transformers.CLIPModel``).

Images come from a pool rendered once: every pool scene is drawn in all five styles, so
content is distributed alike in every style and the only thing separating a scene's five
images is style. Each step draws a batch from the pool, augments it (crop, flip, rotation,
shift, blur, noise...), draws a fresh random caption for every image, and minimises a
symmetric InfoNCE loss with a learnable temperature. Because captions name only some
attributes, one caption often fits several images of a batch ("a red star" fits every red
star); those pairs are all counted as positives (the target of each row/column is spread
evenly over its matching entries) instead of being pushed apart as false negatives.

The result is saved as an ordinary model directory (config.json, model.safetensors,
tokenizer files, preprocessor_config.json) that ``CLIPModel.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load like any hub checkpoint.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nada._io import atomic_path, atomic_write_text

from . import augment as aug
from .captions import build_tokenizer, caption_scenes, zero_shot_prompts, STYLE_NOUNS, MAX_TOKENS
from .renderer import RESOLUTION, SHAPES, STYLES, Scene, render, sample_scenes, scene_labels

# OpenAI CLIP's image normalisation; kept so the built-in CLIPs take input like real ones.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Architectures of the two shipped models: the paper pairs a ViT-B/32 with a ViT-B/16, we
# pair a coarse patch-16 model (4x4 tokens) with a fine patch-8 one (8x8 tokens).
PRESETS = {
    "p16": dict(patch_size=16, vision_hidden=128, vision_layers=4, text_hidden=64, text_layers=2),
    "p8": dict(patch_size=8, vision_hidden=64, vision_layers=4, text_hidden=64, text_layers=2),
    # the p8 patch grid with p16's vision width: the 64-wide p8 plateaued below 95 % on shape
    "p8w": dict(patch_size=8, vision_hidden=128, vision_layers=4, text_hidden=64, text_layers=2),
}


def clip_config(
    vocab_size: int,
    *,
    patch_size: int,
    vision_hidden: int,
    vision_layers: int,
    text_hidden: int,
    text_layers: int,
    projection_dim: int = 64,
):
    from transformers import CLIPConfig, CLIPTextConfig, CLIPVisionConfig

    vision = CLIPVisionConfig(
        image_size=RESOLUTION,
        patch_size=patch_size,
        hidden_size=vision_hidden,
        intermediate_size=vision_hidden * 4,
        num_hidden_layers=vision_layers,
        num_attention_heads=4,
        projection_dim=projection_dim,
    )
    text = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=text_hidden,
        intermediate_size=text_hidden * 4,
        num_hidden_layers=text_layers,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        projection_dim=projection_dim,
        # ids of nada.guidance.tokenizer: the text tower pools at the first <eos> (id 3)
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    return CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=projection_dim)


def preprocessor_config() -> dict:
    """``preprocessor_config.json`` of a 64x64 CLIP with OpenAI's mean/std (resize + centre crop to 64)."""
    from ..guidance.clip import clip_processor_config

    return clip_processor_config(RESOLUTION, CLIP_MEAN, CLIP_STD)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> CLIP pixel_values."""
    mean = torch.tensor(CLIP_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return ((images + 1) / 2 - mean) / std


# ----------------------------------------------------------------------------- data


def render_pool(
    n_scenes: int, seed: int, chunk: int = 500, cache_dir: str | os.PathLike | None = None, all_shapes: bool = False
) -> tuple[torch.Tensor, list[Scene]]:
    """Every one of ``n_scenes`` random scenes in all styles -> uint8 (n_scenes*5, 3, 64, 64) and scenes.

    With ``all_shapes`` every scene is also drawn as each shape (n_scenes*5*4 images, in the
    order scene, style, shape), so the four shapes of one scene and style are consecutive.
    With ``cache_dir`` the pixels are kept in a .npy file named by (n_scenes, seed), so a
    restarted run skips the rendering; the scenes are always re-drawn from the seed.
    """
    rng = np.random.default_rng(seed)
    base = sample_scenes(n_scenes, rng)
    shapes = SHAPES if all_shapes else (None,)
    scenes = [
        Scene(**{**s.as_dict(), "style": st, **({"shape": sh} if sh else {})}) for s in base for st in STYLES for sh in shapes
    ]
    tag = "-shapes" if all_shapes else ""
    cache = Path(cache_dir) / f"clip-pool-{n_scenes}-{seed}{tag}.npy" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        arr = np.load(cache, allow_pickle=False)
        if arr.shape == (len(scenes), 3, RESOLUTION, RESOLUTION) and arr.dtype == np.uint8:
            return torch.from_numpy(arr), scenes
    out = torch.empty(len(scenes), 3, RESOLUTION, RESOLUTION, dtype=torch.uint8)
    for lo in range(0, len(scenes), chunk):
        imgs = render(scenes[lo : lo + chunk])
        out[lo : lo + chunk] = ((imgs + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    if cache is not None:
        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, out.numpy(), allow_pickle=False)
    return out, scenes


def style_probabilities(weights: dict[str, float] | None) -> torch.Tensor:
    """Relative style weights (by name; unnamed styles weigh 1) -> probabilities over STYLES."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(STYLES))
    if unknown:
        raise ValueError(f"unknown style(s) {unknown}; expected some of {list(STYLES)}")
    w = torch.tensor([float(weights.get(st, 1.0)) for st in STYLES], dtype=torch.float64)
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"style weights must be finite, >= 0 and not all 0, got {weights}")
    return w / w.sum()


def parse_style_weights(specs: Sequence[str]) -> dict[str, float]:
    """["pixel art=3", "neon=0.5"] -> {"pixel art": 3.0, "neon": 0.5}."""
    out: dict[str, float] = {}
    for spec in specs:
        name, sep, value = spec.rpartition("=")
        if not sep or not name.strip():
            raise ValueError(f"style weight {spec!r} is not STYLE=WEIGHT")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"style weight {spec!r}: {value!r} is not a number") from None
    return out


def draw_batch(
    pool_size: int, batch: int, group: int, style_p: torch.Tensor | None, gen: torch.Generator
) -> torch.Tensor:
    """Pool indices of one batch: ``batch // group`` groups of ``group`` consecutive images.

    The pool is ordered scene, style, shape (see ``render_pool``). Without ``style_p`` a
    group is drawn uniformly (the shipped phases' draw, kept so their commands reproduce
    them); with it, a scene uniformly and then its style with these probabilities.
    """
    n = batch // group
    if style_p is None:
        first = torch.randint(0, pool_size // group, (n,), generator=gen) * group
    else:
        scene_i = torch.randint(0, pool_size // (group * len(STYLES)), (n,), generator=gen)
        style_i = torch.multinomial(style_p, n, replacement=True, generator=gen)
        first = (scene_i * len(STYLES) + style_i) * group
    return (first[:, None] + torch.arange(group)).reshape(-1)


def to_float(images_u8: torch.Tensor) -> torch.Tensor:
    return images_u8.float() / 127.5 - 1


# ----------------------------------------------------------------------------- encoding


def tokenize(tokenizer, texts: Sequence[str]) -> dict[str, torch.Tensor]:
    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _embeds(out) -> torch.Tensor:
    # transformers 5 returns a model output with pooler_output = projected embedding
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@torch.no_grad()
def encode_texts(model, tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """Unit-norm text embeddings (N, D)."""
    return F.normalize(_embeds(model.get_text_features(**tokenize(tokenizer, texts))), dim=-1)


@torch.no_grad()
def encode_images(model, images: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """Unit-norm image embeddings (N, D) of images in [-1, 1]."""
    outs = [_embeds(model.get_image_features(pixel_values=normalise(images[i : i + batch]))) for i in range(0, len(images), batch)]
    return F.normalize(torch.cat(outs), dim=-1)


@torch.no_grad()
def class_text_embeddings(model, tokenizer, attribute: str) -> torch.Tensor:
    """One unit vector per class: the renormalised mean over the zero-shot templates."""
    prompts = zero_shot_prompts(attribute)
    k = len(prompts[0])
    emb = encode_texts(model, tokenizer, [p for cls in prompts for p in cls]).view(len(prompts), k, -1).mean(1)
    return F.normalize(emb, dim=-1)


@torch.no_grad()
def zero_shot_accuracy(model, tokenizer, images: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict[str, float]:
    """Share of images whose nearest class prompt is the true class, per attribute."""
    img = encode_images(model, images)
    acc = {}
    for attr in ("style", "shape", "colour"):
        pred = (img @ class_text_embeddings(model, tokenizer, attr).T).argmax(1)
        acc[attr] = float((pred == labels[attr]).float().mean())
    return acc


@torch.no_grad()
def direction_agreement(model, tokenizer, n_scenes: int, seed: int) -> dict:
    """Mean cos(E_I(b) - E_I(a), E_T(b) - E_T(a)) over held-out scenes rendered as a and as b.

    Style pairs use the bare words ("photo" -> "sketch"); content pairs change one attribute
    of the same scene with everything else (style included) fixed.
    """
    rng = np.random.default_rng(seed)
    base = sample_scenes(n_scenes, rng)

    def img_emb(**change) -> torch.Tensor:
        return encode_images(model, render([Scene(**{**s.as_dict(), **change}) for s in base]))

    def cos(a_img, b_img, a_txt, b_txt) -> tuple[float, float]:
        t = encode_texts(model, tokenizer, [a_txt, b_txt])
        c = F.cosine_similarity(b_img - a_img, (t[1] - t[0]).unsqueeze(0), dim=-1)
        return float(c.mean()), float((c > 0).float().mean())

    result: dict = {"styles": {}, "content": {}}
    by_style = {st: img_emb(style=st) for st in STYLES}
    # cos is symmetric in swapping a and b, so each unordered pair once
    for i, a in enumerate(STYLES):
        for b in STYLES[i + 1 :]:
            m, pos = cos(by_style[a], by_style[b], STYLE_NOUNS[a], STYLE_NOUNS[b])
            result["styles"][f"{a}->{b}"] = {"mean_cos": m, "positive_share": pos}
    content = [
        ("shape", "circle", "square", "a photo of a circle", "a photo of a square"),
        ("shape", "square", "star", "a square", "a star"),
        ("colour", "red", "blue", "a photo of a red shape", "a photo of a blue shape"),
        ("colour", "green", "yellow", "a green shape", "a yellow shape"),
    ]
    for attr, a, b, ta, tb in content:
        # content edits are measured in photos (the base generator's domain) and across all styles
        for style_name, style in (("photo", "photo"), ("all styles", None)):
            ch_a = {attr: a} if style is None else {attr: a, "style": style}
            ch_b = {attr: b} if style is None else {attr: b, "style": style}
            m, pos = cos(img_emb(**ch_a), img_emb(**ch_b), ta, tb)
            result["content"][f"{a}->{b} ({style_name})"] = {"mean_cos": m, "positive_share": pos, "texts": [ta, tb]}
    return result


# ----------------------------------------------------------------------------- training


def multi_positive_infonce(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where ``positives[i, j]`` marks every text j that fits image i.

    Each row (image -> texts) and column (text -> images) has a target spread evenly over
    its positives; every row and column has at least its own diagonal entry.
    """
    pos = positives.float()
    row_t = pos / pos.sum(1, keepdim=True)
    col_t = pos / pos.sum(0, keepdim=True)
    loss_i2t = -(row_t * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t2i = -(col_t * F.log_softmax(logits, dim=0)).sum(0).mean()
    return (loss_i2t + loss_t2i) / 2


def save_clip_dir(model, tokenizer, out_dir: Path, extra: dict | None = None) -> None:
    """Write the model directory next to ``out_dir`` and swap it in, so a crash never leaves half a model."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    atomic_write_text(tmp / "preprocessor_config.json", json.dumps(preprocessor_config(), indent=2) + "\n")
    if extra is not None:
        atomic_write_text(tmp / "training.json", json.dumps(extra, indent=2) + "\n")
    for f in tmp.iterdir():
        f.chmod(0o644)  # temp-file writers create 0600; these are package data
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old.exists():
        shutil.rmtree(old)


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_clip(
    out: str | os.PathLike,
    *,
    preset: str = "p16",
    seed: int = 0,
    steps: int = 3000,
    batch: int = 128,
    lr: float = 1e-3,
    pool_scenes: int = 6000,
    eval_every: int = 250,
    pool_cache: str | os.PathLike | None = None,
    stop_at: int | None = None,
    init: str | os.PathLike | None = None,
    shape_groups: bool = False,
    pixel_block: int | None = None,
    style_weights: dict[str, float] | None = None,
    tone_jitter: float = 0.0,
    device: str = "cpu",
    log=print,
) -> dict:
    """Train one CLIP into ``out``; ``stop_at`` ends the run early on the schedule of ``steps``.

    ``init`` continues from a saved model directory instead of a fresh ``preset`` model.
    ``shape_groups`` builds every batch from groups of the same scene and style drawn as
    all four shapes: images that differ in shape alone, the hardest negatives for shape.
    ``pixel_block`` renders pixel art with another block size for this run (only to
    reproduce the shipped models' first phases, which used 3). ``style_weights`` draws
    batches with these relative style frequencies (unnamed styles weigh 1), to spend more
    of a phase on the style a model reads worst. ``tone_jitter`` darkens or washes out that
    share of the training images (:func:`augment.tone`), so that no style is read from how
    bright the sheet is. ``device`` runs the training
    steps there (augmentation and evaluation stay on the CPU).
    """
    from . import renderer

    if not 0 <= tone_jitter <= 1:
        raise ValueError(f"tone_jitter must be a probability in [0, 1], got {tone_jitter}")
    if pixel_block is not None:
        if pixel_block < 1:
            raise ValueError(f"pixel_block must be >= 1, got {pixel_block}")
        renderer.PIXEL_BLOCK = pixel_block
    from transformers import CLIPModel

    if preset not in PRESETS:
        raise ValueError(f"unknown CLIP preset {preset!r}; expected one of {', '.join(PRESETS)}")
    t0 = time.time()
    out = Path(out)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    if init is not None:
        model = CLIPModel.from_pretrained(init)
        if model.config.text_config.vocab_size != len(tokenizer):
            raise ValueError(f"{init}: vocabulary size {model.config.text_config.vocab_size} != tokenizer's {len(tokenizer)}")
        log(f"continuing from {init}")
    else:
        model = CLIPModel(clip_config(len(tokenizer), **PRESETS[preset]))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"preset {preset}: {n_params} parameters")
    device = torch.device(device)
    model.to(device)

    pool, pool_scenes_list = render_pool(pool_scenes, seed, cache_dir=pool_cache, all_shapes=shape_groups)
    group = len(SHAPES) if shape_groups else 1
    log(f"pool: {len(pool)} images rendered in {time.time() - t0:.0f}s")
    # held-out evaluation set: a different seed stream from the pool's
    eval_images, eval_labels = _eval_set(400, seed + 7919)

    style_weights = style_weights or None
    style_p = style_probabilities(style_weights)
    if style_weights:
        log("style frequencies: " + ", ".join(f"{st} {p:.2f}" for st, p in zip(STYLES, style_p.tolist())))

    opt = torch.optim.AdamW(_param_groups(model, 0.05), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    gen = torch.Generator().manual_seed(seed + 1)
    cap_rng = np.random.default_rng(seed + 2)
    history = []
    model.train()
    t_train = time.time()
    last = steps if stop_at is None else max(1, min(steps, stop_at))
    for step in range(last):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        idx = draw_batch(len(pool), batch, group, style_p if style_weights else None, gen)
        scenes = [pool_scenes_list[i] for i in idx.tolist()]
        captions = caption_scenes(scenes, cap_rng)
        positives = torch.tensor([[c.fits(s) for c in captions] for s in scenes])
        images = to_float(pool[idx])
        if tone_jitter > 0:
            images = aug.tone(images, gen, tone_jitter)
        images = aug.augment(images, gen).to(device)
        tokens = {k: v.to(device) for k, v in tokenize(tokenizer, [c.text for c in captions]).items()}
        img = F.normalize(_embeds(model.get_image_features(pixel_values=normalise(images))), dim=-1)
        txt = F.normalize(_embeds(model.get_text_features(**tokens)), dim=-1)
        scale = model.logit_scale.exp().clamp(max=100)
        loss = multi_positive_infonce(scale * img @ txt.T, positives.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if (step + 1) % 50 == 0:
            rate = (step + 1) / (time.time() - t_train)
            log(f"step {step + 1}/{steps} loss {loss.item():.4f} scale {scale.item():.1f} lr {lr_at(step):.2e} {rate:.2f} steps/s")
        if (step + 1) % eval_every == 0 or step + 1 == last:
            model.eval().cpu()  # .to() moves parameters in place: the optimiser keeps its references
            acc = zero_shot_accuracy(model, tokenizer, eval_images, eval_labels)
            model.train().to(device)
            history.append({"step": step + 1, **acc})
            log(f"eval step {step + 1}: " + " ".join(f"{k} {v:.3f}" for k, v in acc.items()))
            meta = {"preset": preset, "seed": seed, "steps": steps, "stop_at": stop_at, "step": step + 1,
                    "init": str(init) if init is not None else None, "shape_groups": shape_groups,
                    "pixel_block": renderer.PIXEL_BLOCK, "style_weights": style_weights, "tone_jitter": tone_jitter}
            model.cpu()
            save_clip_dir(model, tokenizer, out, {**meta, "history": history})
            model.to(device)
    model.eval().cpu()
    summary = {
        **meta,
        "config": PRESETS[preset],
        "parameters": n_params,
        "batch": batch,
        "lr": lr,
        "pool_images": len(pool),
        "wall_seconds": round(time.time() - t0, 1),
        **evaluate_clip(model, tokenizer),
        "history": history,
    }
    save_clip_dir(model, tokenizer, out, summary)
    log(json.dumps({"zero_shot": summary["zero_shot_accuracy_heldout_2000"], "wall_seconds": summary["wall_seconds"]}))
    return summary


# Seeds of the final held-out evaluation; no training run draws its scenes from these.
EVAL_SEED = 20_240_601


def evaluate_clip(model, tokenizer, seed: int = EVAL_SEED) -> dict:
    """Zero-shot accuracy on 2000 fresh renders and the text/image direction agreement."""
    images, labels = _eval_set(2000, seed)
    return {
        "eval_seed": seed,
        "zero_shot_accuracy_heldout_2000": zero_shot_accuracy(model, tokenizer, images, labels),
        "directions": direction_agreement(model, tokenizer, 200, seed + 1),
    }


def evaluate_clip_dir(path: str | os.PathLike, seed: int = EVAL_SEED) -> dict:
    """Evaluate a saved model directory and record the figures in its training.json."""
    from transformers import AutoTokenizer, CLIPModel

    path = Path(path)
    model = CLIPModel.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    result = evaluate_clip(model, tokenizer, seed)
    info_path = path / "training.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info.update(result)
    atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    info_path.chmod(0o644)
    return result


def _eval_set(n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    scenes = sample_scenes(n, np.random.default_rng(seed))
    return render(scenes), scene_labels(scenes)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nada toyworld train clip", description="Train one built-in CLIP.")
    p.add_argument("--out", help="model directory to write")
    p.add_argument("--evaluate", metavar="DIR", help="only evaluate a saved model directory (figures go to its training.json)")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this many steps of the --steps schedule")
    p.add_argument("--preset", choices=sorted(PRESETS), default="p16")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--pool-scenes", type=int, default=6000, help="scenes in the pre-rendered pool (x5 styles)")
    p.add_argument("--pool-cache", default=None, help="directory to keep the rendered pool in (skips re-rendering on a rerun)")
    p.add_argument("--init", default=None, help="continue from this saved model directory")
    p.add_argument("--shape-groups", action="store_true", help="batches of one scene drawn as all four shapes")
    p.add_argument("--pixel-block", type=int, default=None, help="pixel-art block size for this run (default: the renderer's)")
    p.add_argument("--style-weight", action="append", default=[], metavar="STYLE=W",
                   help="relative frequency of a style in batches (repeatable; default 1 each), e.g. 'pixel art=3'")
    p.add_argument("--tone-jitter", type=float, default=0.0,
                   help="share of training images darkened or washed out (styles are not brightness)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="where the training steps run (cpu, cuda)")
    args = p.parse_args(argv)
    try:
        style_weights = parse_style_weights(args.style_weight) or None
        style_probabilities(style_weights)
    except ValueError as e:
        p.error(str(e))
    torch.set_num_threads(args.threads)
    if args.evaluate:
        result = evaluate_clip_dir(args.evaluate)
        print(json.dumps(result["zero_shot_accuracy_heldout_2000"]))
        return 0
    if not args.out:
        p.error("--out is required unless --evaluate is given")
    train_clip(
        args.out,
        preset=args.preset,
        seed=args.seed,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        pool_scenes=args.pool_scenes,
        pool_cache=args.pool_cache,
        stop_at=args.stop_at,
        init=args.init,
        shape_groups=args.shape_groups,
        pixel_block=args.pixel_block,
        style_weights=style_weights,
        tone_jitter=args.tone_jitter,
        device=args.device,
        log=lambda m: print(m, flush=True),
    )
    return 0
