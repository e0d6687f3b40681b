"""Issue 19's hypernetwork check on the built-in world: one `--param hyper` run on sketch, watercolor and
pixel art, then every trained text and "neon" (never trained) judged on 256 samples of the baked domain.

    python experiments/domains/hyper_study.py --work W [--threads 1] [--adapt-args "--lr 0.001"]
        [--out benchmarks/results/domain_hyper.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from nada.files import atomic_write_text

TRAINED = ["sketch", "watercolor", "pixel art"]
UNSEEN = ["neon"]


def judge(generator: Path, style: str, env: dict) -> dict:
    cmd = [sys.executable, "-m", "nada.cli", "toyworld", "evaluate", "--generator", str(generator), "--n", "256",
           "--seed", "0", "--json", "--expect", f"style={style}"]
    report = json.loads(subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout)
    return {"target_rate": report["target_rate"], **report["preserved"], "style_shares": report["label_shares"]["style"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--adapt-args", default="")
    p.add_argument("--evaluate-only", action="store_true")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "domain_hyper.json")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    run = args.work / "hyper"
    wall = None
    if not args.evaluate_only:
        cmd = [sys.executable, "-m", "nada.cli", "adapt", "--param", "hyper", "--source", "photo", "--out", str(run),
               "--overwrite", "--no-progress"]
        for t in TRAINED:
            cmd += ["--target", t]
        t0 = time.time()
        proc = subprocess.run(cmd + args.adapt_args.split(), env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        wall = round(time.time() - t0, 1)
    metrics = json.loads((run / "metrics.json").read_text())
    rows = []
    for text in TRAINED + UNSEEN:
        baked = args.work / f"hyper_{text.replace(' ', '_')}.safetensors"
        subprocess.run([sys.executable, "-m", "nada.cli", "bake", "--generator", "toy", "--domain",
                        str(run / "domain.safetensors"), "--text", text, "--out", str(baked)],
                       check=True, env=env, capture_output=True, text=True)
        row = {"text": text, "trained": text in TRAINED, **judge(baked, text, env)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"study": "hypernetwork on the built-in world", "targets": TRAINED, "unseen": UNSEEN, "seed": 0, "n": 256,
           "threads": args.threads, "adapt_args": args.adapt_args, "adapt_wall_s": wall, "steps": metrics["steps"],
           "train_seconds": metrics["wall_time_s"], "file_bytes": (run / "domain.safetensors").stat().st_size,
           "torch": torch.__version__, "cpu_count": os.cpu_count(), "results": rows}
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
