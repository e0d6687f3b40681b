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


def load_attacks():
    spec = importlib.util.spec_from_file_location("hostile_files", ROOT / "tests" / "hostile_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ATTACKS


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
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, make, _expected) in enumerate(load_attacks()):
            marker = Path(tmp) / f"pwned{i}"
            path = Path(tmp) / f"attack{i}.pt"
            path.write_bytes(make(marker))
            row = {"attack": name, "file_bytes": path.stat().st_size, **run_one(path, marker, args.src, args.timeout)}
            rows.append(row)
            print(f"{name:55s} {row['outcome']:22s} {row.get('wall_s', 0):7.2f} s {row.get('rss_growth_mb', float('nan')):8.1f} MB",
                  flush=True)
            path.unlink()
    result = {"src": str(args.src), "python": sys.version.split()[0], "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
