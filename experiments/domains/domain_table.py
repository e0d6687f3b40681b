"""Issue 19's table: every parameterisation on the built-in world's cases, with Quality/Diversity read
by the built-in CLIP that did not train it.

Each run trains with one built-in CLIP (``--clip toyworld-clip-p16``; the preset trains with both) and
every other default, seed 0. Then:

* the judge (``nada toyworld evaluate``, 256 samples): target rate and what was kept;
* ``nada evaluate --clip toyworld-clip-p8`` (the held-out CLIP, 256 samples): Quality and Diversity of
  the adapted generator and of the base, for the case's caption;
* the weights that changed (elements that differ from the base after baking), the domain file's size,
  steps and seconds per step (``metrics.json``: training time / steps, loading excluded).

    python experiments/domains/domain_table.py --work W [--params finetune modulation ...] [--cases ...]
        [--threads 1] [--out benchmarks/results/domain_table.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from nada.files import atomic_write_text
from nada.toyworld.targets import CASES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "toyworld"))
from toyworld_targets import _slug, run_case  # noqa: E402

PARAMS = ("finetune", "modulation", "stylespace", "stylespace+", "affine+")
TRAIN_CLIP, HELD_OUT_CLIP = "toyworld-clip-p16", "toyworld-clip-p8"


def quality_diversity(generator: str, caption: str, env: dict) -> dict:
    cmd = [sys.executable, "-m", "nada.cli", "evaluate", "--generator", generator, "--target", caption,
           "--clip", HELD_OUT_CLIP, "--n", "256", "--seed", "0", "--no-progress", "--json"]
    report = json.loads(subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout)
    return {"quality": report["quality"], "diversity": report["diversity"]}


def changed_weights(path: Path) -> int:
    from safetensors.torch import load_file

    from nada.generators.checkpoints import load_generator

    base = load_generator("toy").state_dict()
    mine = load_file(str(path)) if path.suffix == ".safetensors" else None
    return int(sum((mine[k] != v).sum() for k, v in base.items() if k in mine and mine[k].shape == v.shape))


def trained_numbers(path: Path) -> int:
    """Numbers a domain file holds (what trained)."""
    from safetensors import safe_open

    import math

    with safe_open(str(path), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())


def markdown(rows: list[dict]) -> str:
    """The docs' table: one line per parameterisation and case. "trained" is what the domain file holds;
    for finetune, the weights that differ from the base (the rows the adaptive choice trained)."""
    out = ["| `--param` | case | target | kept | Quality (base) | Diversity (base) | trained | file | steps | s/step |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        r = {**r, "changed_weights": r.get("trained_numbers", r["changed_weights"])}
        kept = " / ".join(f"{k} {r[k]:.3f}" for k in ("style", "shape", "colour") if k in r)
        size = r["file_bytes"]
        size_text = f"{size / 2**20:.1f} MB" if size > 2**20 else f"{size / 1024:.1f} KB"
        out.append(f"| `{r['param']}` | {r['case']} | {r['target_rate']:.3f} | {kept} | {r['held_out']['quality']:.3f} "
                   f"({r['base_held_out']['quality']:.3f}) | {r['held_out']['diversity']:.3f} ({r['base_held_out']['diversity']:.3f}) "
                   f"| {r['changed_weights']:,} | {size_text} | {r['steps']} | {r['sec_per_step']:.3f} |")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--params", nargs="+", default=list(PARAMS), choices=PARAMS)
    p.add_argument("--cases", nargs="+", default=["sketch", "watercolor", "pixel art", "circle->square", "red->blue"],
                   choices=list(CASES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--evaluate-only", action="store_true", help="judge the runs already in --work")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "domain_table.json")
    p.add_argument("--markdown", action="store_true", help="print the table of --out's results as markdown, run nothing")
    args = p.parse_args()
    if args.markdown:
        doc = json.loads(args.out.read_text())
        for r in doc["results"]:  # runs measured before the column existed: read it from --work
            domain = args.work / r["param"].replace("+", "_plus") / _slug(r["case"]) / "domain.safetensors"
            if r["param"] != "finetune" and "trained_numbers" not in r and domain.is_file():
                r["trained_numbers"] = trained_numbers(domain)
        print(markdown(doc["results"]))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    rows = []
    if args.out.is_file():  # keep rows of other params/cases measured before
        rows = [r for r in json.loads(args.out.read_text())["results"]
                if not (r["param"] in args.params and r["case"] in args.cases)]
    for param in args.params:
        for name in args.cases:
            work = args.work / param.replace("+", "_plus")
            r = run_case(name, work, env, ["--param", param, "--clip", TRAIN_CLIP], adapt=not args.evaluate_only)
            out = work / _slug(name)
            weights = out / ("generator.safetensors" if param == "finetune" else "baked.safetensors")
            caption = r["report"]["clip_text"]
            metrics = json.loads((out / "metrics.json").read_text())
            row = {"param": param, "case": name, "target_rate": r["report"]["target_rate"], **r["report"]["preserved"],
                   **({} if param == "finetune" else {"trained_numbers": trained_numbers(out / "domain.safetensors")}),
                   "held_out": quality_diversity(str(weights), caption, env),
                   "base_held_out": quality_diversity("toy", caption, env), "caption": caption,
                   "changed_weights": changed_weights(weights), "steps": r["steps"],
                   "sec_per_step": round(metrics["wall_time_s"] / max(1, r["steps"]), 4),
                   "file_bytes": (out / ("generator.safetensors" if param == "finetune" else "domain.safetensors")).stat().st_size,
                   "passed": r["passed"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            doc = {"study": "domain table", "train_clip": TRAIN_CLIP, "held_out_clip": HELD_OUT_CLIP, "n": 256, "seed": 0,
                   "threads": args.threads, "torch": torch.__version__, "cpu_count": os.cpu_count(), "results": rows}
            atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
