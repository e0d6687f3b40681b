"""Translation against inversion options that keep codes near W (issue 20's translation bar), on the
built-in world.

Each variant is a set of `nada translate` inversion flags; for each, ``invert_translate_study.py
--skip-adapt`` runs in a work folder of its own that links the fine-tuned sketch generator of ``--work``
(made by one full run of that study) and the compact sketch domain ``--domain`` (a `nada adapt ... --param P`
output folder), and the judge's readings are gathered into one JSON.

    nada adapt --source photo --target sketch --param affine+ --out D
    python experiments/realimages/translate_variants.py --work W --domain D --domain-args "--param affine+" \
        [--n 64] [--out benchmarks/results/realimages_translate_variants.json] [VARIANT ...]

A VARIANT is one string of flags, e.g. "--wplus-rows no-fine" ("" is the defaults).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from nada.files import atomic_write_text

HERE = Path(__file__).resolve().parent
DEFAULT_VARIANTS = [
    "", "--wplus-spread 0.03", "--wplus-spread 0.1", "--wplus-spread 0.3",
    "--wplus-rows shape", "--wplus-rows no-fine", "--wplus-rows 0,1,2,3", "--wplus-rows 0,1,2,3,4,5,6",
    "--optimize-noise", "--wplus-rows no-fine --wplus-spread 0.01", "--wplus-rows no-fine --w-steps 400",
    "--w-steps 400 --wplus-steps 0",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="a work folder of invert_translate_study.py")
    p.add_argument("--domain", type=Path, required=True, help="the compact sketch domain's `nada adapt` folder")
    p.add_argument("--domain-args", default="--param affine+", help="how --domain was trained (recorded)")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=HERE.parents[1] / "benchmarks" / "results" / "realimages_translate_variants.json")
    p.add_argument("variants", nargs="*", default=DEFAULT_VARIANTS)
    args = p.parse_args()
    rows = []
    for variant in args.variants:
        tag = re.sub(r"[^A-Za-z0-9.]+", "_", variant).strip("_") or "defaults"
        work = args.work.parent / f"{args.work.name}_variant_{tag}"
        work.mkdir(exist_ok=True)
        for name, source in (("sketch_finetune", args.work / "sketch_finetune"), ("sketch_domain", args.domain)):
            link = work / name
            if not link.exists():
                link.symlink_to(source.resolve())
        out = work / "study.json"
        subprocess.run([sys.executable, str(HERE / "invert_translate_study.py"), "--work", str(work), "--n", str(args.n),
                        "--threads", str(args.threads), "--skip-adapt", "--domain-args", args.domain_args,
                        f"--invert-args={variant}", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
        study = json.loads(out.read_text())
        rows.append({"invert_args": variant, "seconds_per_image": study["seconds_per_image"],
                     **{k: study[k] for k in ("reconstruction", "translation_finetune", "translation_domain")}})
        brief = {k: "/".join(f"{rows[-1][k][m]:.3f}" for m in ("style_sketch", "shape", "colour"))
                 for k in ("translation_finetune", "translation_domain")}
        print(json.dumps({"invert_args": variant, "reconstruction_shape": rows[-1]["reconstruction"]["shape"], **brief}),
              flush=True)
        atomic_write_text(args.out, json.dumps({
            "study": "translation against inversion options", "n": args.n, "domain_args": args.domain_args,
            "columns": "style_sketch / shape kept / colour kept", "rows": rows,
            "bar": {"style_sketch": 0.90, "shape": 0.85, "colour": 0.90, "reconstruction_shape": 0.90},
            "cpu_count": os.cpu_count(), "threads": args.threads}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
