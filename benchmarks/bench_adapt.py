"""Seconds per adaptation iteration and peak memory.

Cases: layer selection every step (the paper's algorithm) vs every 10 steps (our scalable
variant); batch 2 and 4; a 256-px and a 1024-px StyleGAN2 (config-f channels, random
weights); one ViT-B/32-sized random CLIP. Each (resolution, batch) runs in a fresh
subprocess so its peak memory is its own (CPU: peak RSS; CUDA: max allocated); the
plain step and the selection pass are timed apart and combined per interval.

    python benchmarks/bench_adapt.py [--device cpu] [--threads 2] [--resolutions 256 1024] [--batches 2 4]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from nada.files import atomic_write_text

CASE = r"""
import json, sys, time, torch
args = json.loads(sys.argv[1])
sys.path.insert(0, args["bench_dir"])
from bench_common import Meter, random_vit_b32
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
from nada.guidance.guidance import Guidance
from nada.guidance.config import GuidanceConfig
from nada.generators.stylegan2 import Generator, GeneratorConfig
from nada.adapt.config import AdaptConfig
from nada.adapt.engine import Adapter
from nada.adapt.layers import select_rows_adaptive

dev = torch.device(args["device"])
meter = Meter(dev)
clip = random_vit_b32(dev)
G = Generator(GeneratorConfig(args["resolution"])).to(dev)
k = args["k"]
acfg = AdaptConfig(generator="random", iters=10**6, batch=args["batch"], layers=",".join(map(str, range(k))),
                   sample_every=0, save_every=0,
                   guidance=GuidanceConfig(clip=["random"], source_text="photo", target_text="sketch", use_templates=False))
run = Adapter(acfg, None, generator=G, guidance=Guidance(acfg.guidance, clips=[clip], device=dev), progress=False)
run.train_step()  # warm-up
meter.sync()
meter.reset()
times = []
for _ in range(args["iters"]):
    t = time.perf_counter(); run.train_step(); meter.sync(); times.append(time.perf_counter() - t)
peak_step = meter.peak_mib()
ws = run.latents(args["select_batch"], 0.0)
t = time.perf_counter()
select_rows_adaptive(run.G_train, ws, run.guidance.global_loss, k, 1, chunk=args["select_chunk"] or None)
meter.sync()
t_select = time.perf_counter() - t
print(json.dumps({"sec_per_step": sum(times) / len(times), "sec_select": t_select,
                  "peak_mem_mib_step": peak_step, "peak_mem_mib_with_select": meter.peak_mib(),
                  "peak_mem_kind": meter.kind}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=2, help="timed plain steps per case")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[2, 4])
    p.add_argument("--intervals", type=int, nargs="+", default=[1, 10])
    p.add_argument("--k", type=int, default=6, help="rows trained per step")
    p.add_argument("--select-batch", type=int, default=8, help="latents per selection pass (the paper: 8)")
    p.add_argument("--select-chunk", type=int, default=0, help="selection in pieces of N latents (0 = all at once)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    out = args.out or Path(__file__).parent / "results" / f"adapt_{args.device.split(':')[0]}.json"
    results = []
    for res in args.resolutions:
        for batch in args.batches:
            case = dict(resolution=res, batch=batch, k=args.k, select_batch=args.select_batch, select_chunk=args.select_chunk, iters=args.iters,
                        device=args.device, threads=args.threads, bench_dir=str(Path(__file__).parent))
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-c", CASE, json.dumps(case)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            for interval in args.intervals:
                # one selection pass every `interval` steps, amortised over them
                per_iter = r["sec_per_step"] + r["sec_select"] / interval
                results.append({**case, "interval": interval, "sec_per_iter": per_iter, **r})
                print(f"{res:5d}px batch {batch} select every {interval:2d}: {per_iter:.2f} s/it "
                      f"(step {r['sec_per_step']:.2f} s + selection {r['sec_select']:.2f} s / {interval}), "
                      f"peak {r['peak_mem_mib_with_select']:.0f} MiB", flush=True)
            print(f"  ({time.time() - t0:.0f} s)", flush=True)
    import torch

    doc = {"benchmark": "adapt iteration", "device": args.device, "threads": args.threads, "torch": torch.__version__,
           "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "note": "sec_per_iter = plain training step + one selection pass / interval (selection: 1 W+ step on "
                   "select_batch latents through the generator and CLIP)",
           "results": results}
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
