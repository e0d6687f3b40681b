"""Translation against the W+ spread penalty (``--wplus-spread``): does keeping the inverted codes' rows
together make adapted generators answer them as they answer samples, and what does it cost the
reconstruction?

Runs ``invert_translate_study.py --skip-adapt`` once per weight, in a work folder of its own that links the
adapted generator and domain of ``--work`` (made by one full run of that study), and gathers the judge's
readings into one JSON.

    python experiments/realimages/spread_sweep.py --work W [--n 32] [--weights 0,0.01,0.03,0.1,0.3]
        [--out benchmarks/results/realimages_translate_spread.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from nada.files import atomic_write_text

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="a work folder of invert_translate_study.py")
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weights", default="0,0.01,0.03,0.1,0.3")
    p.add_argument("--out", type=Path, default=HERE.parents[1] / "benchmarks" / "results" / "realimages_translate_spread.json")
    args = p.parse_args()
    rows = []
    for weight in [float(x) for x in args.weights.split(",")]:
        work = args.work.parent / f"{args.work.name}_spread_{weight:g}"
        work.mkdir(exist_ok=True)
        for name in ("sketch_finetune", "sketch_domain"):
            link = work / name
            if not link.exists():
                link.symlink_to((args.work / name).resolve())
        out = work / "study.json"
        subprocess.run([sys.executable, str(HERE / "invert_translate_study.py"), "--work", str(work), "--n", str(args.n),
                        "--threads", str(args.threads), "--skip-adapt", "--invert-args", f"--wplus-spread {weight:g}",
                        "--out", str(out)], check=True)
        study = json.loads(out.read_text())
        rows.append({"wplus_spread": weight, "seconds_per_image": study["seconds_per_image"],
                     **{k: study[k] for k in ("reconstruction", "translation_finetune", "translation_domain")}})
        print(json.dumps({"wplus_spread": weight, **{k: {kk: round(v, 3) for kk, v in rows[-1][k].items()}
                                                     for k in ("reconstruction", "translation_finetune")}}), flush=True)
    atomic_write_text(args.out, json.dumps({"study": "translation against --wplus-spread", "n": args.n,
                                            "domain_args": study["domain_args"], "rows": rows,
                                            "cpu_count": os.cpu_count(), "threads": args.threads}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
