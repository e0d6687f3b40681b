"""Follow one built-in adaptation step by step: the judge's verdict against CLIP's reading.

Runs `nada.adapt`'s engine in memory for one target case (the preset filled in for options
left out) through every iteration, without the early stop, and every --every steps judges
--n fixed latents of the trained generator against the base: the target rate, each kept
label, and the share CLIP reads as the target (`Guidance.target_margin` > 0, the reading
`--stop-share` uses, so the trace shows where the stop would come), with the margin's mean and
10th percentile, CLIP's own zero-shot reading of style, shape and colour against the base
(`clip_kept_*`) and how far the embeddings moved since the last check (`clip_drift`, 1 - cos).
One JSON line per check goes to stdout and, at the end, to --out.

    python experiments/toyworld/toyworld_trace.py --case sketch --out trace.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nada.toyworld.targets import CASES


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", required=True, choices=list(CASES))
    p.add_argument("--options", default="{}", help="JSON object of adapt options (AdaptConfig or GuidanceConfig fields)")
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from nada.files import atomic_write_text
    from nada.adapt import Adapter, make_config
    from nada.toyworld.evaluate import judge_verdict, parse_expectations
    from nada.toyworld.judge import load_judge

    source, target, expect, _ = CASES[args.case]
    expect = parse_expectations(expect)
    options = json.loads(args.options)
    run = Adapter(make_config(source, target, **options)[0], None, progress=False)
    judge = load_judge()
    z = torch.randn(args.n, run.G_frozen.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ws = run.G_frozen.mapping(z)
        base = judge.predict(run.G_frozen.synthesis(ws, noise_mode="const").clamp(-1, 1))
    from nada.guidance.directions import domain_text_embedding
    from nada.toyworld.renderer import COLOURS, SHAPES, STYLES

    clips = run.guidance.clips
    groups = {"style": STYLES, "shape": SHAPES, "colour": COLOURS}
    words = {g: [torch.stack([domain_text_embedding(c, w, [], False) for w in ws_]) for c in clips.models]
             for g, ws_ in groups.items()}

    def clip_reads(images):
        """CLIP's zero-shot label per group, ensemble-weighted."""
        emb = [c.encode_images(images) for c in clips.models]  # unit vectors
        return emb, {g: clips.weighted([e @ t.T for e, t in zip(emb, words[g])]).argmax(1) for g in groups}

    with torch.no_grad():
        _, clip_base = clip_reads(run.G_frozen.synthesis(ws, noise_mode="const").clamp(-1, 1))
    rows, t0, prev = [], time.time(), None
    while run.step < run.cfg.iters:
        run.train_step()
        if run.step % args.every:
            continue
        with torch.no_grad():
            images = run.G_train.synthesis(ws, noise_mode="const").clamp(-1, 1)
            pred = judge.predict(images)
            margin = run.guidance.target_margin(images)
            # how far CLIP's reading of each image moved since the last check (1 - cos, ensemble-weighted)
            emb, clip_now = clip_reads(images)
            drift = None if prev is None else float(clips.weighted([1 - (a * b).sum(-1) for a, b in zip(emb, prev)]).mean())
            prev = emb
        hit, kept = judge_verdict(pred, base, expect)
        row = {"step": run.step, "judge_target": round(float(hit.float().mean()), 4),
               **{f"kept_{k}": round(v, 4) for k, v in kept.items()},
               "clip_target": round(float((margin > 0).float().mean()), 4),
               "clip_margin_mean": round(float(margin.mean()), 4), "clip_margin_q10": round(float(margin.quantile(0.1)), 4),
               **{f"clip_kept_{g}": round(float((clip_now[g] == clip_base[g]).float().mean()), 4) for g in groups},
               "clip_drift": None if drift is None else round(drift, 5), "rows": run.rows, "wall_s": round(time.time() - t0, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out is not None:
        atomic_write_text(args.out, json.dumps({"case": args.case, "options": options, "n": args.n, "trace": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
