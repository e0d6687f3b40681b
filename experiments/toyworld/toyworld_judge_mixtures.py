"""How judges read renders half-way between two styles, where adapted samples live.

For each judge directory: accuracy on the 2000 held-out renders `train_judge` tests on,
and on the same renders mixed with their scene in another style (`judge_train.blend_styles`,
share kept U(0.2, 0.8)): shape, colour and position (still exact), and `style_dominant`, the
share read as the style that dominates the mixture where one does (share outside 0.4-0.6).

    python experiments/toyworld/toyworld_judge_mixtures.py --judges shipped DIR1 DIR2 --out mixtures.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--judges", nargs="+", default=["shipped"], help="judge directories; 'shipped' is the built-in judge")
    p.add_argument("--seed", type=int, default=12345, help="the judges' training seed: picks the same held-out renders")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from nada.files import atomic_write_text
    from nada.toyworld.judge import load_judge
    from nada.toyworld.judge_train import evaluate, evaluate_mixtures, mix_styles, render_labelled_pool
    from nada.toyworld.renderer import sample_scenes

    images, labels = render_labelled_pool(2000, args.seed + 104729)
    images = images.float() / 127.5 - 1
    scenes = sample_scenes(2000, np.random.default_rng(args.seed + 104729))
    gen = torch.Generator().manual_seed(args.seed + 3)
    mixtures = mix_styles(images, scenes, labels, gen)

    rows = []
    for name in args.judges:
        judge = load_judge(directory=None if name == "shipped" else name)
        clean = {k: v for k, v in evaluate(judge, images, labels).items() if k != "per_style"}
        blended = evaluate_mixtures(judge, mixtures, labels)
        rows.append({"judge": name, "heldout_2000": clean, "style_mixtures_2000": blended,
                     "mixtures_with_a_dominant_style": int(mixtures.clear.sum())})
        print(f"{name}: held-out style {clean['style']:.4f} shape {clean['shape']:.4f} | mixtures: shape "
              f"{blended['shape']:.4f} colour {blended['colour']:.4f} dominant style {blended['style_dominant']:.4f}", flush=True)
    atomic_write_text(args.out, json.dumps({"benchmark": "toyworld judge on style mixtures", "seed": args.seed, "results": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
