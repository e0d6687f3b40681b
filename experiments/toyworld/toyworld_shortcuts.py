"""Does a model read style from what is drawn, or from how bright the sheet is?

Renders held-out scenes of every style (seed 31337, never a training seed), changes only their
exposure, darkened (intensity x f) or washed out towards white (a share a of it kept), which
changes no label, and reports what the judge and the CLIP ensemble read: the style shares of
the photos (a model that shortcuts calls a dim photo neon or pixel art and a pale one
watercolor or sketch), each model's style accuracy over all styles, and the judge's shape and
colour accuracy. Last, what both read on pixel art rendered with 1-px blocks, i.e. without blocks.

    python experiments/toyworld/toyworld_shortcuts.py --out benchmarks/results/toyworld_shortcuts.json
    python experiments/toyworld/toyworld_shortcuts.py --judge runs/judge-tone --clip runs/clip-p16-7 runs/clip-p8-7
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

TONES = [("clean", None, 1.0), ("dark 0.6", "dark", 0.6), ("dark 0.35", "dark", 0.35), ("dark 0.2", "dark", 0.2),
         ("pale 0.7", "pale", 0.7), ("pale 0.5", "pale", 0.5), ("pale 0.35", "pale", 0.35)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--judge", default=None, help="judge directory (default: the shipped judge)")
    p.add_argument("--clip", nargs="+", default=["toyworld-clip-p16", "toyworld-clip-p8"])
    p.add_argument("--n", type=int, default=500, help="renders per style")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from nada.files import atomic_write_text
    from nada.guidance.clip import load_clip
    from nada.guidance.directions import domain_text_embedding
    from nada.toyworld import augment as aug
    from nada.toyworld.judge import load_judge
    from nada.toyworld.renderer import STYLES, render_batch

    judge = load_judge(directory=args.judge)
    clips = [load_clip(c) for c in args.clip]
    texts = [torch.stack([domain_text_embedding(c, s, [], False) for s in STYLES]) for c in clips]
    batches = [render_batch(args.n, seed=31337 + i, style=s) for i, s in enumerate(STYLES)]

    @torch.no_grad()
    def read(images):
        pred = judge.predict(images)
        sims = sum((c.encode_images(images) @ t.T) for c, t in zip(clips, texts)) / len(clips)
        return pred, sims.argmax(1)

    def shares(idx):
        counts = torch.bincount(idx, minlength=len(STYLES)).float() / len(idx)
        return {s: round(float(v), 4) for s, v in zip(STYLES, counts)}

    rows = []
    for name, kind, f in TONES:
        row = {"tone": name, "judge_style_acc": 0.0, "clip_style_acc": 0.0, "judge_shape_acc": 0.0, "judge_colour_acc": 0.0}
        for i, (x, lab) in enumerate(batches):
            factor = torch.full((len(x),), f)
            x = x if kind is None else aug.darken(x, factor) if kind == "dark" else aug.wash_out(x, factor)
            pred, clip_style = read(x)
            row["judge_style_acc"] += float((pred["style"] == i).float().mean()) / len(STYLES)
            row["clip_style_acc"] += float((clip_style == i).float().mean()) / len(STYLES)
            row["judge_shape_acc"] += float((pred["shape"] == lab["shape"]).float().mean()) / len(STYLES)
            row["judge_colour_acc"] += float((pred["colour"] == lab["colour"]).float().mean()) / len(STYLES)
            if STYLES[i] == "photo":
                row["photo_read_by_judge"], row["photo_read_by_clip"] = shares(pred["style"]), shares(clip_style)
        row = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    # pixel art with 1-px blocks: everything of the style but the blocks (palette, outline, cel shading)
    from nada.toyworld import renderer

    block = renderer.PIXEL_BLOCK
    try:
        renderer.PIXEL_BLOCK = 1
        x, _ = render_batch(args.n, seed=31337 + STYLES.index("pixel art"), style="pixel art")
    finally:
        renderer.PIXEL_BLOCK = block
    pred, clip_style = read(x)
    no_blocks = {"judge": shares(pred["style"]), "clip": shares(clip_style)}
    print(json.dumps({"pixel art without blocks": no_blocks}), flush=True)
    if args.out is not None:
        result = {"judge": args.judge or "shipped", "clip": args.clip, "n_per_style": args.n, "rows": rows,
                  "pixel_art_without_blocks": no_blocks}
        atomic_write_text(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
