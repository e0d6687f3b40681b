"""Time and memory of refusing each hostile generator file (tests/hostile_files.py), one subprocess each.

For every attack: build the file, load it with ``nada.load_generator`` in a fresh interpreter,
and record the outcome (refused in one line / loaded / crashed with a signal / code ran /
traceback / timed out), the wall time of the load and the growth of the peak resident memory
over the interpreter's baseline after imports. ``--src DIR`` measures another checkout's
``src`` (for before/after figures: ``git worktree add /tmp/before <commit>``).

    python benchmarks/hostile_inputs.py --out benchmarks/results/hostile_inputs.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import torch, numpy, safetensors  # baseline: the libraries every load needs
from nada import load_generator
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    load_generator(sys.argv[1])
    outcome, message = "loaded", ""
except Exception as e:
    from nada.generators.errors import CheckpointError
    outcome = "refused" if isinstance(e, CheckpointError) and "\n" not in str(e) else "traceback"
    message = f"{type(e).__name__}: {e}"
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "message": message[:300], "wall_s": round(wall, 3), "rss_growth_mb": round((peak - base) / 1024, 1)}))
"""


def load_attack_module():
    spec = importlib.util.spec_from_file_location("hostile_files", ROOT / "tests" / "hostile_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def damaged_files(module, tmp: Path, trials: int):
    """Valid files of every layout with random damage (flipped bytes, zeroed runs, cuts)."""
    import pickle
    import random

    import torch

    sd = module.tiny_state_dict()
    good = {"zip": module.torch_bytes({"g_ema": sd, "latent_avg": torch.zeros(8)}),
            "legacy": module.torch_bytes({"g_ema": sd, "latent_avg": torch.zeros(8)}, zip_format=False),
            "pickle": pickle.dumps({"g_ema": sd, "latent_avg": torch.zeros(8)}, protocol=4)}
    for kind, data in good.items():
        rng = random.Random(kind)
        for trial in range(trials):
            damaged = bytearray(data)
            if trial % 3 == 0:
                for _ in range(rng.randint(1, 4)):
                    damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            elif trial % 3 == 1:
                start = rng.randrange(len(damaged))
                damaged[start:start + rng.randint(1, 64)] = bytes(min(64, len(damaged) - start))
            else:
                damaged = damaged[: rng.randrange(1, len(damaged))]
            path = tmp / f"damaged-{kind}-{trial}.pt"
            path.write_bytes(bytes(damaged))
            yield f"random damage to a {kind} file #{trial}", path


def run_one(path: Path, marker: Path, src: Path, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout", "wall_s": timeout}
    if proc.returncode < 0:
        result = {"outcome": f"crashed (signal {-proc.returncode})", "wall_s": round(time.perf_counter() - start, 3)}
    elif proc.returncode != 0 or not proc.stdout.strip():
        result = {"outcome": "traceback", "message": proc.stderr.strip().splitlines()[-1][:300] if proc.stderr.strip() else ""}
    else:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    if marker.exists():
        result["outcome"] = "code ran"
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT / "src", help="the src/ directory whose nada is measured")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--damaged", type=int, default=60, help="randomly damaged files per layout (zip, legacy, pickle)")
    args = ap.parse_args()
    rows = []
    module = load_attack_module()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, make, _expected) in enumerate(module.ATTACKS):
            marker = Path(tmp) / f"pwned{i}"
            path = Path(tmp) / f"attack{i}.pt"
            path.write_bytes(make(marker))
            row = {"attack": name, "file_bytes": path.stat().st_size, **run_one(path, marker, args.src, args.timeout)}
            rows.append(row)
            print(f"{name:55s} {row['outcome']:22s} {row.get('wall_s', 0):7.2f} s {row.get('rss_growth_mb', float('nan')):8.1f} MB",
                  flush=True)
            path.unlink()
        damaged = []
        for name, path in damaged_files(module, Path(tmp), args.damaged):
            row = {"attack": name, **run_one(path, Path(tmp) / "never", args.src, args.timeout)}
            damaged.append(row)
            path.unlink()
        worst = max(damaged, key=lambda r: r.get("wall_s", 0))
        outcomes = sorted({r["outcome"] for r in damaged})
        print(f"{len(damaged)} randomly damaged files: outcomes {outcomes}; slowest {worst['attack']} "
              f"{worst.get('wall_s', 0):.2f} s; largest memory growth {max(r.get('rss_growth_mb', 0) for r in damaged):.1f} MB")
    result = {"src": str(args.src), "python": sys.version.split()[0], "rows": rows,
              "damaged": {"files": len(damaged), "outcomes": {o: sum(r["outcome"] == o for r in damaged) for o in outcomes},
                          "slowest": worst, "max_rss_growth_mb": max(r.get("rss_growth_mb", 0) for r in damaged)}}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
