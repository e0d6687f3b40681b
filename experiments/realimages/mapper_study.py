"""Issue 20's mapper figure on the built-in world: circle -> square stopped early reaches its target only
partly; a latent mapper trained on that generator towards "square" should raise the judge's square rate.

    nada adapt --source circle --target square --iters ITERS --out W/partial        (the preset otherwise)
    nada mapper --generator W/partial/generator.safetensors --source circle --target square --out W/mapper

(the adapted file names its base, toy, whose preset gives the CLIPs, source groups and mapper options)

then the judge on 256 samples (seed 0) of the partial generator with and without the mapper, against
the base's samples on the same latents (shape = square; colour kept).

    python experiments/realimages/mapper_study.py --work W [--partial-iters 40] [--mapper-args "--iters 300"]
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

def nada(args: list[str], env: dict) -> None:
    proc = subprocess.run([sys.executable, "-m", "nada.cli", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"nada {args[0]} failed:\n{proc.stderr[-2000:]}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--partial-iters", type=int, default=40)
    p.add_argument("--mapper-args", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-adapt", action="store_true")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "realimages_mapper.json")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    partial, mapper_dir = args.work / "partial", args.work / "mapper"
    if not args.skip_adapt:
        nada(["adapt", "--source", "circle", "--target", "square", "--iters", str(args.partial_iters), "--out",
              str(partial), "--overwrite", "--no-progress"], env)
    nada(["mapper", "--generator", str(partial / "generator.safetensors"), "--source", "circle", "--target", "square",
          "--out", str(mapper_dir), "--no-progress", *args.mapper_args.split()], env)
    torch.set_num_threads(args.threads)
    from nada.generators.checkpoints import load_generator
    from nada.mapper import MappedGenerator, load_mapper
    from nada.toyworld.evaluate import evaluate

    G = load_generator(str(partial / "generator.safetensors")).eval().requires_grad_(False)
    mapper, multiplier, _ = load_mapper(mapper_dir / "mapper.safetensors", G)
    rows = {}
    for name, gen in (("partial", G), ("partial + mapper", MappedGenerator(G, mapper, multiplier))):
        r = evaluate(gen, ["shape=square"], n=256, seed=0)
        rows[name] = {"target_rate": r["target_rate"], **r["preserved"], "position_shift_px": r["position_shift_px"]}
        print(name, json.dumps(rows[name]), flush=True)
    history = json.loads((mapper_dir / "metrics.json").read_text())["history"]
    result = {"study": "latent mapper on a partly adapted generator", "case": "circle -> square",
              "partial_iters": args.partial_iters, "mapper_args": args.mapper_args, "results": rows,
              "gain": rows["partial + mapper"]["target_rate"] - rows["partial"]["target_rate"],
              "mapper_steps": len(history), "mapper_seconds": history[-1]["time_s"],
              "torch": torch.__version__, "cpu_count": os.cpu_count(), "threads": args.threads}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"gain {result['gain']:+.3f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
