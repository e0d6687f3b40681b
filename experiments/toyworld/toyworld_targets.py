"""The built-in world's adaptation targets, measured the way a user runs them.

For each case: `nada adapt --source S --target T --out DIR` with every default (seed 0), then
`nada toyworld evaluate --generator DIR/generator.safetensors --expect ... --n 256 --seed 0
--json`. Prints one line per case against its thresholds and writes all reports to
`benchmarks/results/toyworld_targets.json`.

    python experiments/toyworld/toyworld_targets.py [--work DIR] [--cases sketch neon ...] [--threads 2]
        [--figure docs/img/toy_adaptation_targets.png]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nada.files import atomic_write_text

from nada.toyworld.targets import CASES
from nada.toyworld.targets import passed as meets


def _slug(name: str) -> str:
    return name.replace(" ", "_").replace(">", "")


def run_case(name: str, work: Path, env: dict, adapt_args: list[str] = (), judge: str | None = None,
             adapt: bool = True) -> dict:
    source, target, expect, want = CASES[name]
    out = work / _slug(name)
    wall = None
    if adapt:
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "nada.cli", "adapt", "--source", source, "--target", target, "--out", str(out),
                               "--overwrite", *adapt_args], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"nada adapt failed for {name}:\n{proc.stderr[-2000:]}")
        wall = round(time.time() - t0, 1)
    weights, domain = out / "generator.safetensors", out / "domain.safetensors"
    extra: dict = {}
    if domain.is_file() and not weights.is_file():  # a compact run (--param ...): judge the base with its domain
        weights = out / "baked.safetensors"
        subprocess.run([sys.executable, "-m", "nada.cli", "bake", "--generator", "toy", "--domain", str(domain), "--out",
                        str(weights)], check=True, env=env, capture_output=True, text=True)
        extra["domain_file_bytes"] = domain.stat().st_size
    cmd = [sys.executable, "-m", "nada.cli", "toyworld", "evaluate", "--generator", str(weights), "--n", "256", "--seed", "0", "--json"]
    for e in expect:
        cmd += ["--expect", e]
    if judge:
        cmd += ["--judge", judge]
    report = json.loads(subprocess.run(cmd, check=True, env=env, capture_output=True, text=True).stdout)
    got = {"target_rate": report["target_rate"], "position_shift_px": report["position_shift_px"], **report["preserved"]}
    passed = meets(name, got)
    metrics = json.loads((out / "metrics.json").read_text())
    return {"case": name, "source": source, "target": target, "expect": expect, "adapt_wall_s": wall, **extra,
            "steps": metrics["steps"], "stopped_early": metrics["stopped_early"],
            "thresholds": want, "passed": passed, "report": report}


def stack_rows(finals: list[tuple[str, Path]], path: Path) -> None:
    """One picture: the base row of the first run's `final.png`, then each run's adapted row.

    Every run's `final.png` is two rows (frozen above, adapted below) on the same latents,
    so the base row is shared and the figure compares all cases on the same samples.
    """
    from PIL import Image, ImageDraw, ImageFont

    label_w = 220
    rows = []
    for i, (name, final) in enumerate(finals):
        im = Image.open(final).convert("RGB")
        half = im.height // 2
        if i == 0:
            rows.append(("base", im.crop((0, 0, im.width, half))))
        rows.append((name, im.crop((0, half, im.width, im.height))))
    w, h = rows[0][1].size
    sheet = Image.new("RGB", (label_w + w, h * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(12, h // 10))
    for r, (name, im) in enumerate(rows):
        sheet.paste(im, (label_w, r * h))
        draw.text((10, r * h + h // 2), name, fill="black", font=font, anchor="lm")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    sheet.save(tmp)
    os.replace(tmp, path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--threads", type=int, default=None, help="OMP threads for the runs (default: torch's)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "toyworld_targets.json")
    p.add_argument("--figure", type=Path, default=None, help="also stack the runs' final.png into one picture")
    p.add_argument("--figure-only", action="store_true", help="with --work and --figure: only redraw the picture")
    p.add_argument("--judge", default=None, help="judge directory for the evaluation (default: the shipped judge)")
    p.add_argument("--evaluate-only", action="store_true", help="with --work: judge the runs already there, adapt nothing")
    p.add_argument("--adapt-args", default="", help="extra `nada adapt` flags for every case, e.g. '--clip DIR --clip DIR'")
    args = p.parse_args()
    if args.evaluate_only and not args.work:
        raise SystemExit("--evaluate-only needs --work")
    if args.figure_only:
        if not (args.work and args.figure):
            raise SystemExit("--figure-only needs --work and --figure")
        stack_rows([(n, args.work / _slug(n) / "final.png") for n in args.cases], args.figure)
        print(f"wrote {args.figure}")
        return 0
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name in args.cases:
            r = run_case(name, work, env, args.adapt_args.split(), args.judge, adapt=not args.evaluate_only)
            results.append(r)
            rep = r["report"]
            marks = " ".join(f"{k}{'✓' if ok else '✗'}" for k, ok in r["passed"].items())
            print(f"{name:15s} target_rate {rep['target_rate']:.3f} (base {rep['base_target_rate']:.3f}) "
                  f"preserved {json.dumps({k: round(v, 3) for k, v in rep['preserved'].items()})} "
                  f"shift {rep['position_shift_px']:.2f}px fid {rep['fid_to_target']:.1f}  "
                  f"adapt {r['adapt_wall_s'] or 0:.0f}s  {marks}", flush=True)
        if args.figure:
            stack_rows([(r["case"], work / _slug(r["case"]) / "final.png") for r in results], args.figure)
            print(f"wrote {args.figure}")
    doc = {"benchmark": "toyworld adaptation targets", "n": 256, "seed": 0, "cpu_count": os.cpu_count(),
           "threads": args.threads, "judge": args.judge or "shipped", "adapt_args": args.adapt_args, "results": results}
    atomic_write_text(args.out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
