"""Images per second of the built-in world's renderer, per style and mixed, on one CPU thread.

    python benchmarks/bench_toyworld_renderer.py [--n 500] [--threads 1] [--repeats 3]

Writes benchmarks/results/toyworld_renderer_cpu.json. The machine may be shared, so the
best of ``--repeats`` runs is reported next to the median.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from nada.files import atomic_write_text
from nada.toyworld.renderer import STYLES, render, sample_scenes


def images_per_second(scenes, repeats: int) -> tuple[float, float]:
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        render(scenes)
        rates.append(len(scenes) / (time.perf_counter() - t))
    return max(rates), statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "toyworld_renderer_cpu.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    cases = {"mixed": sample_scenes(args.n, rng)}
    for st in STYLES:
        cases[st] = sample_scenes(args.n, rng, style=st)
    results = {}
    for name, scenes in cases.items():
        best, median = images_per_second(scenes, args.repeats)
        results[name] = {"images_per_second_best": round(best, 1), "images_per_second_median": round(median, 1)}
        print(f"{name:>10}: {best:7.1f} img/s (median {median:.1f})", flush=True)
    report = {
        "benchmark": "toyworld renderer, 64x64",
        "n_per_case": args.n,
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "results": results,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
