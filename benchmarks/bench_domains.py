"""Seconds per adaptation step and peak memory: compact domains vs fine-tuning.

For each resolution (config-f channels, random weights) and parameterisation (``finetune`` training
every synthesis weight, ``modulation``, ``stylespace``), a fresh subprocess builds the generator and
a ViT-B/32-sized random CLIP, takes one warm-up step and times ``--iters`` steps at ``--batch``.
Peak memory is the subprocess's own (CPU: peak RSS, which includes the CLIP's and the generator's
weights; CUDA: max allocated). Domains train a few thousand numbers, but the forward and backward
passes still run through the whole generator: the saving is the optimiser's work and memory.

    python benchmarks/bench_domains.py [--device cpu] [--threads 2] [--resolutions 256 1024] [--out F]
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

PARAMS = ("finetune", "modulation", "stylespace")

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

dev = torch.device(args["device"])
meter = Meter(dev)
clip = random_vit_b32(dev)
G = Generator(GeneratorConfig(args["resolution"])).to(dev)
acfg = AdaptConfig(generator="random", param=args["param"], iters=10**6, batch=args["batch"], layers="all",
                   sample_every=0, save_every=0, stop_share=0.0,
                   guidance=GuidanceConfig(clip=["random"], source_text="photo", target_text="sketch", use_templates=False))
run = Adapter(acfg, None, generator=G, guidance=Guidance(acfg.guidance, clips=[clip], device=dev), progress=False)
trainable = sum(p.numel() for p in run.param.parameters() if p.requires_grad)
run.train_step()  # warm-up (Adam's moments allocated)
meter.sync()
meter.reset()
times = []
for _ in range(args["iters"]):
    t = time.perf_counter(); run.train_step(); meter.sync(); times.append(time.perf_counter() - t)
print(json.dumps({"sec_per_step": sum(times) / len(times), "sec_per_step_min": min(times),
                  "peak_mem_mib": meter.peak_mib(), "trainable_params": trainable,
                  "peak_mem_kind": meter.kind}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=2, help="timed steps per case (after one warm-up step)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--params", nargs="+", default=list(PARAMS), choices=PARAMS)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    out = args.out or Path(__file__).parent / "results" / f"domains_{args.device.split(':')[0]}.json"
    results = []
    for res in args.resolutions:
        for param in args.params:
            case = dict(resolution=res, param=param, batch=args.batch, iters=args.iters, device=args.device,
                        threads=args.threads, bench_dir=str(Path(__file__).parent))
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-c", CASE, json.dumps(case)], capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            case.pop("bench_dir")
            results.append({**case, **r})
            print(f"{res:5d}px {param:11s}: {r['sec_per_step']:.2f} s/step, peak {r['peak_mem_mib']:.0f} MiB, "
                  f"{r['trainable_params']:,} trainable ({time.time() - t0:.0f} s)", flush=True)
    import torch

    doc = {"benchmark": "adapt step by parameterisation", "device": args.device, "threads": args.threads,
           "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "results": results}
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
