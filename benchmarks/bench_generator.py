"""Speed and peak memory of the StyleGAN2 generator (not a test).

Cases: resolution x batch size x {forward, forward+backward}, config-f channel table
(channel_multiplier=2, style_dim 512, 8 mapping layers), random weights, ``G(z, noise_mode="const")``.

* forward: under ``torch.no_grad()``.
* forward+backward: ``G(z).square().mean().backward()`` with gradients for every parameter.
* time: median of ``--repeats`` timed runs after one warm-up run (when the warm-up run itself
  takes longer than 10 s it is counted as a timed run and one fewer run follows, which keeps
  1024 px on one CPU thread affordable; the first-call overhead is negligible at that scale).
* memory: each case runs in a fresh subprocess. CPU: growth of the process's peak RSS
  (``ru_maxrss``) from just before the first run to the end, i.e. the extra memory the passes
  need on top of the weights and inputs. CUDA: ``torch.cuda.max_memory_allocated`` minus the
  memory allocated before the first run.

Usage:
    python benchmarks/bench_generator.py                       # CPU, 1 thread -> benchmarks/results/generator_cpu.json
    python benchmarks/bench_generator.py --device cuda         # -> benchmarks/results/generator_cuda.json
    python benchmarks/bench_generator.py --sizes 64 256 --batches 1 --repeats 5
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
LONG_RUN_S = 10.0


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_case(resolution: int, batch: int, mode: str, device: str, repeats: int, threads: int) -> dict:
    """One measurement, in this process (meant to be a fresh one)."""
    import torch

    from nada.generators.stylegan2 import Generator, GeneratorConfig

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(resolution=resolution)).to(device)
    G.set_w_avg(torch.zeros(G.w_dim))  # no truncation here; skip computing it
    z = torch.randn(batch, G.z_dim, device=device)
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def step() -> None:
        if mode == "forward":
            with torch.no_grad():
                G(z, noise_mode="const")
        else:
            G.zero_grad(set_to_none=True)
            G(z, noise_mode="const").square().mean().backward()
        sync()

    params = sum(p.numel() for p in G.parameters())
    sync()
    rss_before = _maxrss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        allocated_before = torch.cuda.memory_allocated()

    times = []
    t0 = time.perf_counter()
    step()
    warmup = time.perf_counter() - t0
    if warmup > LONG_RUN_S:
        times.append(warmup)
    while len(times) < repeats:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)

    result = {
        "resolution": resolution, "batch": batch, "mode": mode, "device": device, "threads": threads,
        "parameters": params, "runs": len(times), "warmup_s": round(warmup, 4),
        "times_s": [round(t, 4) for t in times], "median_s": round(statistics.median(times), 4),
        "median_ms_per_image": round(1000 * statistics.median(times) / batch, 2),
    }
    if cuda:
        result["peak_extra_mib"] = round((torch.cuda.max_memory_allocated() - allocated_before) / 2**20, 1)
        result["gpu"] = torch.cuda.get_device_name()
    else:
        result["peak_extra_mib"] = round(_maxrss_mib() - rss_before, 1)
        result["peak_rss_mib"] = round(_maxrss_mib(), 1)
    return result


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--modes", nargs="+", default=["forward", "forward+backward"], choices=["forward", "forward+backward"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:  # one case in a fresh process: print its JSON on the last line
        case = json.loads(args.child)
        print(json.dumps(run_case(**case)))
        return 0

    import torch

    out = args.out or RESULTS / f"generator_{'cuda' if args.device.startswith('cuda') else 'cpu'}.json"
    cases = []
    for res in args.sizes:
        for batch in args.batches:
            for mode in args.modes:
                case = dict(resolution=res, batch=batch, mode=mode, device=args.device, repeats=args.repeats, threads=args.threads)
                proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(case)], capture_output=True, text=True)
                if proc.returncode == 0:
                    result = json.loads(proc.stdout.strip().splitlines()[-1])
                else:  # e.g. out of memory: record it and go on
                    tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
                    result = {**case, "error": tail[:300]}
                cases.append(result)
                shown = f"{result['median_s']:.3f} s, +{result['peak_extra_mib']:.0f} MiB" if "error" not in result else result["error"]
                print(f"{res:5d}px batch {batch} {mode:17s} {shown}", flush=True)

    report = {
        "benchmark": "nada StyleGAN2 generator",
        "command": "python " + " ".join([str(Path(__file__).relative_to(Path.cwd())) if Path(__file__).is_relative_to(Path.cwd()) else __file__] + (argv if argv is not None else sys.argv[1:])),
        "model": "config-f channel table (channel_multiplier=2), style_dim 512, n_mlp 8, random weights, noise_mode const",
        "time": "median over timed runs after one warm-up run (see module docstring)",
        "memory": "peak_extra_mib: CPU = growth of peak RSS during the runs; CUDA = max_memory_allocated minus allocated before",
        "device": args.device,
        "cpu": _cpu_name(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "cases": cases,
    }
    from nada.files import atomic_write_text

    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
