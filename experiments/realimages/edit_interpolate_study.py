"""Issue 20's editing and interpolation figures on the built-in world.

Needs a fine-tuned sketch generator (e.g. `W/sketch_finetune/generator.safetensors` from
`invert_translate_study.py`) and, for the grid video, the hypernetwork of `experiments/domains/hyper_study.py`.

* **Editing**: a "blue" direction fitted as a linear boundary in W (`nada.fit_boundary`) from the judge's
  colour labels of 2000 base samples; applied to 256 other samples that are not blue, in the base and in
  the sketch generator, at several strengths. Reported: the share the judge reads as blue after the
  edit, and (sketch generator) the share still read as sketches. The SeFa and GANSpace components are
  scanned too: for each, the share of samples whose colour the judge reads as changed.
* **Interpolation**: base -> sketch weights in 8 steps on 256 samples; per sample the judge's sketch
  probability at each step; the share of samples whose probability never falls by more than 0.05 from
  one step to the next. A 2 x 2 grid video (base, sketch, watercolor, pixel art) as mp4 and GIF.

    python experiments/realimages/edit_interpolate_study.py --sketch W/sketch_finetune/generator.safetensors \
        --hyper HYPER/domain.safetensors --video-dir docs/img [--out benchmarks/results/realimages_edit.json]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from nada.files import atomic_write_text


def codes(G, n: int, seed: int) -> torch.Tensor:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.mapping(z)


def draw(G, ws: torch.Tensor) -> torch.Tensor:
    from nada.translation import draw as draw_codes

    return draw_codes(G, ws, batch=64)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sketch", type=Path, required=True)
    p.add_argument("--hyper", type=Path, default=None)
    p.add_argument("--video-dir", type=Path, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--strengths", type=float, nargs="+", default=[1.0, 2.0, 3.0, 4.0, 6.0])
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "realimages_edit.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from nada.editing import apply_direction, fit_boundary, ganspace_directions, sefa_directions
    from nada.generators.checkpoints import load_generator
    from nada.toyworld.judge import load_judge
    from nada.toyworld.renderer import COLOURS, STYLES
    from nada.video import Panel, lerp_generators, render_video, write_video

    G = load_generator("toy").eval().requires_grad_(False)
    S = load_generator(str(args.sketch)).eval().requires_grad_(False)
    judge = load_judge()
    blue, sketch = COLOURS.index("blue"), STYLES.index("sketch")
    result: dict = {"study": "edit and interpolate on the built-in world", "sketch_generator": str(args.sketch)}

    # --- editing: a boundary fitted from the judge's labels of base samples
    train = codes(G, 2000, seed=1)
    labels = (judge.predict(draw(G, train))["colour"] == blue).long()
    normal = fit_boundary(train[:, 0], labels)
    test = codes(G, 600, seed=2)
    before_base = judge.predict(draw(G, test))
    keep = before_base["colour"] != blue
    test = test[keep][:256]
    rows = []
    for s in args.strengths:
        edited = apply_direction(test, normal.expand(G.num_ws, -1), s)
        pb, ps = judge.predict(draw(G, edited)), judge.predict(draw(S, edited))
        rows.append({"strength": s, "base_blue": float((pb["colour"] == blue).float().mean()),
                     "sketch_blue": float((ps["colour"] == blue).float().mean()),
                     "sketch_still_sketch": float((ps["style"] == sketch).float().mean()),
                     "base_still_photo": float((pb["style"] == 0).float().mean())})
        print("boundary", json.dumps(rows[-1]), flush=True)
    result["boundary"] = {"train_samples": 2000, "blue_share_in_training": float(labels.float().mean()),
                          "test_samples": len(test), "by_strength": rows}
    # --- label-free directions: which component changes colour most
    scans = []
    sefa, _ = sefa_directions(G, k=6)
    gan, std = ganspace_directions(G, k=6)
    before = judge.predict(draw(G, test))["colour"]
    for name, dirs, scale in (("sefa", sefa, torch.ones(6)), ("ganspace", gan, std)):
        for i in range(len(dirs)):
            for s in (-3.0, 3.0):
                edited = apply_direction(test, (dirs[i] * scale[i]).expand(G.num_ws, -1), s)
                after = judge.predict(draw(G, edited))["colour"]
                scans.append({"direction": f"{name}:{i}", "strength": s,
                              "colour_changed": float((after != before).float().mean()),
                              "to_blue": float((after == blue).float().mean())})
    result["label_free_scan"] = scans
    best = max(scans, key=lambda r: r["to_blue"])
    print("best label-free direction towards blue:", best, flush=True)

    # --- interpolation base -> sketch in 8 steps
    ws = codes(G, 256, seed=3)
    work = lerp_generators(G, S, 0.0)
    probs = []
    for k in range(8):
        lerp_generators(G, S, k / 7, out=work)
        logits = judge.logits(draw(work, ws))["style"]
        probs.append(torch.softmax(logits, dim=1)[:, sketch])
    probs = torch.stack(probs, dim=1)  # (256, 8)
    worst_drop = (probs[:, :-1] - probs[:, 1:]).max(dim=1).values  # largest fall from one step to the next
    result["interpolation"] = {
        "steps": 8, "samples": 256,
        "share_never_falling_more_than_0.05": float((worst_drop <= 0.05).float().mean()),
        "mean_sketch_probability_by_step": [round(float(x), 4) for x in probs.mean(0)],
    }
    print("interpolation", json.dumps(result["interpolation"]), flush=True)

    # --- the 2 x 2 grid video
    if args.video_dir is not None and args.hyper is not None:
        from nada.domains.domain import load_domain

        h = load_domain(args.hyper)
        panels = [Panel.fixed("base", G), Panel.fixed("sketch", S),
                  Panel.fixed("watercolor", h.domain("watercolor").apply(G)),
                  Panel.fixed("pixel art", h.domain("pixel art").apply(G))]
        frames = render_video(panels, 48, seeds=[0, 1, 2, 3], walk=True, size=128, progress=False)
        args.video_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (".mp4", ".gif"):
            path = write_video(frames, args.video_dir / f"toy_domains_walk{suffix}", fps=12)
            result.setdefault("videos", []).append({"file": str(path), "bytes": path.stat().st_size,
                                                    "frames": int(frames.shape[0]), "size": list(frames.shape[1:3])})
    result["torch"] = torch.__version__
    result["cpu_count"] = os.cpu_count()
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
