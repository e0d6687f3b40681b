"""Sweep adaptation options over the built-in world's target cases, judged as the targets are.

Each (case, option set) runs `nada.adapt` in memory (seed 0, the built-in generator and
CLIPs, the preset filled in for options left out) and `nada.toyworld.evaluate` on n=256
latents, seed 0: the figures `experiments/toyworld/toyworld_targets.py` reports through the CLI. Used
to choose the built-in preset; one JSON line per run is appended to --out as it finishes, so
a sweep that is stopped keeps what it measured.

    python experiments/toyworld/toyworld_sweep.py --cases sketch neon --grid '[{}, {"lr": 0.005}]' --out sweep.jsonl
    python experiments/toyworld/toyworld_sweep.py --cases sketch --grid grid.json --device cuda
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from nada.toyworld.targets import CASES


def passed(got: dict, want: dict) -> dict:
    return {k: (got[k] <= v if k == "position_shift_px" else got[k] >= v) for k, v in want.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--grid", required=True, help="JSON list of option dicts, inline or a file")
    p.add_argument("--device", default="cpu")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, required=True, help="JSON-lines file to append to")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import nada
    from nada.toyworld.evaluate import evaluate
    from nada.toyworld.judge import load_judge
    from nada.toyworld.assets import builtin_clip_paths

    inline = args.grid.lstrip().startswith("[")  # a long inline grid is no file name
    text = args.grid if inline else Path(args.grid).read_text()
    grid = json.loads(text)
    if not isinstance(grid, list) or not all(isinstance(g, dict) for g in grid):
        raise SystemExit("--grid must be a JSON list of objects")
    judge = load_judge()
    base = nada.load_generator("toy")
    clips = [nada.load_clip(str(c)) for c in builtin_clip_paths()]
    for name in args.cases:
        source, target, expect, want = CASES[name]
        for options in grid:
            t0 = time.time()
            try:
                result = nada.adapt(source, target, generator="toy", device=args.device, progress=False, **options)
            except Exception as exc:  # a bad option set is a finding, not the end of the sweep
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"case": name, "options": options, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
                print(f"{name:15s} {json.dumps(options)} failed: {exc}", flush=True)
                continue
            wall = time.time() - t0
            G = result.generator.cpu().eval()
            rep = evaluate(G, expect, n=args.n, seed=0, base=base, judge=judge, clips=clips)
            got = {"target_rate": rep["target_rate"], "position_shift_px": rep["position_shift_px"], **rep["preserved"]}
            row = {"case": name, "options": options, "adapt_wall_s": round(wall, 1), "device": args.device,
                   "steps": result.metrics["steps"],
                   "passed": passed(got, want), "all_passed": all(passed(got, want).values()),
                   **{k: round(v, 4) for k, v in got.items()}, "fid_to_target": round(rep["fid_to_target"], 1),
                   "clip_quality": round(rep["clip_quality"], 4), "style_shares": rep["label_shares"]["style"]}
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{name:15s} {json.dumps(options):60s} target {got['target_rate']:.3f} "
                  + " ".join(f"{k} {got[k]:.3f}" for k in want if k != "target_rate") + f" {result.metrics['steps']} steps {wall:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
