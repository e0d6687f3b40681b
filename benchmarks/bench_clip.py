"""Time ``ClipModel.encode_images`` on a randomly initialised CLIP of ViT-B/32 size.

Vision tower as in ViT-B/32 (hidden 768, 12 layers, 12 heads, MLP 3072, patch 32, 224 px;
text tower at CLIP's default size, unused here). Random weights cost the same time as
trained ones and need no download. For each batch size it reports the median over
``--repeats`` runs of a forward pass (no grad, as for the frozen images) and of forward
plus backward to the input images (as for the trained images).

    python benchmarks/bench_clip.py                  # CPU, 1 thread -> benchmarks/results/clip_encode_cpu.json
    python benchmarks/bench_clip.py --device cuda    # -> benchmarks/results/clip_encode_cuda.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch


def build_vit_b32(device: torch.device, dtype: torch.dtype):
    from transformers import CLIPConfig, CLIPModel

    from nada.guidance.clip import ClipModel

    config = CLIPConfig(
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           patch_size=32, image_size=224),
        projection_dim=512,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CLIPModel(config)
    model.to(device=device, dtype=dtype)
    return ClipModel(model, tokenizer=None, name="random-ViT-B/32")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, device: torch.device, repeats: int, warmup: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds per call.

    On a shared machine the wall time includes waiting for a core; with one thread the CPU
    time is close to what the call costs on an idle core.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (the shared machine has 2 cores)")
    ap.add_argument("--batches", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--image-size", type=int, default=224, help="side of the input images")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    clip = build_vit_b32(device, dtype)
    gen = torch.Generator().manual_seed(0)

    results = []
    for batch in args.batches:
        images = (torch.rand(batch, 3, args.image_size, args.image_size, generator=gen) * 2 - 1).to(device)

        def forward():
            with torch.no_grad():
                clip.encode_images(images)

        def forward_backward():
            x = images.detach().requires_grad_(True)
            clip.encode_images(x).sum().backward()
            assert x.grad is not None

        for mode, fn in (("forward", forward), ("forward+backward", forward_backward)):
            times, cpu = time_call(fn, device, args.repeats, args.warmup)
            med, med_cpu = statistics.median(times), statistics.median(cpu)
            results.append({
                "batch": batch,
                "mode": mode,
                "median_s": round(med, 5),
                "per_image_ms": round(1000 * med / batch, 2),
                "median_cpu_s": round(med_cpu, 5),
                "times_s": [round(t, 5) for t in times],
            })
            print(f"batch {batch:3d}  {mode:17s}  median {med * 1000:9.1f} ms wall, {med_cpu * 1000:9.1f} ms CPU "
                  f"({1000 * med / batch:7.1f} ms/image wall)", flush=True)

    report = {
        "benchmark": "ClipModel.encode_images, random CLIP with a ViT-B/32 vision tower",
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "dtype": args.dtype,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "image_size": args.image_size,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "statistic": "median wall time per call (median_cpu_s: process CPU time, less sensitive to other jobs)",
        "results": results,
        "environment": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
            "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            # the machine is shared: a load above the core count means these times are inflated
            "load_average_at_start": load_start,
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "command": "python benchmarks/bench_clip.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    out = args.out or Path(__file__).resolve().parent / "results" / f"clip_encode_{device.type}.json"
    from nada.files import atomic_write_text

    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
