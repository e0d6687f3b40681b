"""Speed of the e4e / pSp encoder at the papers' size (IR-SE50, 512 wide, 18 rows for a 1024-px generator,
random weights: the cost of the real checkpoint), and of one refinement step with a 1024-px config-f
generator, against the optimisation inversion's step.

    python benchmarks/bench_encoder.py [--device cpu|cuda] [--threads 2] [--out benchmarks/results/encoder_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from bench_common import Meter


def timed(fn, meter: Meter, repeats: int) -> float:
    fn()  # warm-up
    meter.sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    meter.sync()
    return (time.perf_counter() - t0) / repeats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    meter = Meter(device)
    from nada.encoder import StyleEncoder
    from nada.generators.stylegan2 import Generator, GeneratorConfig
    from nada.inversion import ImageDistance

    torch.manual_seed(0)
    results = {"device": str(device), "threads": args.threads, "torch": torch.__version__, "cpu_count": os.cpu_count(),
               "memory": meter.kind, "cases": []}
    E = StyleEncoder("e4e").to(device).eval().requires_grad_(False)
    results["encoder_parameters"] = sum(t.numel() for t in E.parameters())
    G = Generator(GeneratorConfig(1024, channel_multiplier=2)).to(device).eval().requires_grad_(False)
    for batch in (1, 4):
        x = torch.rand(batch, 3, 1024, 1024, device=device) * 2 - 1
        meter.reset()
        with torch.no_grad():
            s = timed(lambda: E(x), meter, args.repeats)
        results["cases"].append({"what": "e4e encode (1024 px input, resized to 256)", "batch": batch,
                                 "seconds_per_image": round(s / batch, 4), "peak_mib": round(meter.peak_mib(), 1)})
        print(results["cases"][-1], flush=True)
    x = torch.rand(1, 3, 1024, 1024, device=device) * 2 - 1
    distance = ImageDistance(x, 3)
    ws = E(x).detach().requires_grad_(True)
    opt = torch.optim.Adam([ws], lr=0.01)

    def step():
        loss = distance(G.synthesis(ws, noise_mode="const")).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    meter.reset()
    s = timed(step, meter, args.repeats)
    results["cases"].append({"what": "one refinement (or optimisation) step, 1024-px config-f, pixel distance",
                             "batch": 1, "seconds_per_step": round(s, 4), "peak_mib": round(meter.peak_mib(), 1),
                             "optimisation_default_400_steps_s": round(400 * s, 1)})
    print(results["cases"][-1], flush=True)
    out = args.out or Path(__file__).parent / "results" / f"encoder_{device.type}.json"
    from nada.files import atomic_write_text

    atomic_write_text(out, json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
