"""Seconds per adaptation iteration and peak memory.

Cases: layer selection every step (the paper's algorithm) vs every 10 steps (our scalable
variant); batch 2 and 4; a 256-px and a 1024-px StyleGAN2 (config-f channels, random
weights); one ViT-B/32-sized random CLIP. Each case runs in a fresh subprocess so its
peak memory is its own (CPU: peak RSS; CUDA: max allocated).

    python benchmarks/bench_adapt.py [--device cpu] [--iters 4] [--threads 2] [--out benchmarks/results/adapt_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASE = r"""
import json, resource, sys, time, torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
from transformers import CLIPConfig, CLIPModel
from nada.guidance.clip import ClipModel, ImagePreprocessing
from nada.guidance.guidance import Guidance
from nada.guidance.config import GuidanceConfig
from nada.guidance.tokenizer import build_word_tokenizer
from nada.generators.stylegan2 import Generator, GeneratorConfig
from nada.adapt.config import AdaptConfig
from nada.adapt.engine import Adapter

dev = torch.device(args["device"])
tok = build_word_tokenizer("a photo sketch of the".split() , model_max_length=77)
cfg = CLIPConfig(
    text_config=dict(vocab_size=len(tok), hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                     num_attention_heads=8, max_position_embeddings=77, pad_token_id=0, bos_token_id=2, eos_token_id=3),
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=224, patch_size=32),
    projection_dim=512)
model = CLIPModel(cfg).eval()
clip = ClipModel(model, tok, ImagePreprocessing.default(224), name="random-ViT-B/32").to(dev)
G = Generator(GeneratorConfig(args["resolution"])).to(dev)
acfg = AdaptConfig(generator="random", iters=args["iters"] + 1, batch=args["batch"], auto_layer_k=6,
                   auto_layer_interval=args["interval"], sample_every=0, save_every=0,
                   guidance=GuidanceConfig(clip=["random"], source_text="photo", target_text="sketch", use_templates=False))
guidance = Guidance(acfg.guidance, clips=[clip], device=dev)
run = Adapter(acfg, None, generator=G, guidance=guidance, progress=False)
if dev.type == "cuda":
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
run.train_step()  # warm-up (first step also selects layers)
times = []
for _ in range(args["iters"]):
    if dev.type == "cuda": torch.cuda.synchronize()
    t = time.perf_counter()
    run.train_step()
    if dev.type == "cuda": torch.cuda.synchronize()
    times.append(time.perf_counter() - t)
peak = (torch.cuda.max_memory_allocated() / 2**20) if dev.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"sec_per_iter_mean": sum(times) / len(times), "sec_per_iter_each": times, "peak_mem_mib": peak,
                  "peak_mem_kind": "cuda max allocated" if dev.type == "cuda" else "process peak RSS"}))
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=3, help="timed iterations per case (at least one selection period)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[2, 4])
    p.add_argument("--intervals", type=int, nargs="+", default=[1, 10])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    out = args.out or Path(__file__).parent / "results" / f"adapt_{args.device.split(':')[0]}.json"
    results = []
    for res in args.resolutions:
        for batch in args.batches:
            for interval in args.intervals:
                # time a whole selection period so the mean carries its share of one selection pass
                iters = max(args.iters, interval)
                case = dict(resolution=res, batch=batch, interval=interval, iters=iters, device=args.device, threads=args.threads)
                t0 = time.time()
                proc = subprocess.run([sys.executable, "-c", CASE, json.dumps(case)], capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-2000:], file=sys.stderr)
                    return 1
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                results.append({**case, **r})
                print(f"{res:5d}px batch {batch} select every {interval:2d}: {r['sec_per_iter_mean']:.2f} s/it, "
                      f"peak {r['peak_mem_mib']:.0f} MiB ({time.time() - t0:.0f} s)", flush=True)
    import torch

    doc = {"benchmark": "adapt iteration", "device": args.device, "threads": args.threads, "torch": torch.__version__,
           "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "note": "timed steps 1..iters after a warm-up step 0; with interval N they include one selection pass per N steps",
           "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, delete=False, suffix=".tmp") as f:
        json.dump(doc, f, indent=1)
    os.replace(f.name, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
