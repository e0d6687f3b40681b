"""Issue 20's inversion and translation figures on the built-in world.

64 held-out photo renders (the renderer's scenes from their own seed, never drawn by the generator) are
written as PNG files, then

    nada adapt --source photo --target sketch --out W/sketch_finetune                 (every default)
    nada adapt --source photo --target sketch --param P [ARGS] --out W/sketch_domain (the compact domain)
    nada translate W/renders --generator toy --adapted W/sketch_finetune/generator.safetensors \
        --domain W/sketch_domain/domain.safetensors --out W/translate                 (inversion defaults)

and the judge reads the reconstructions (shape, colour and position against the renders' own labels)
and both translations (sketch, and the renders' shape and colour kept).

    python experiments/realimages/invert_translate_study.py --work W [--threads 2] [--n 64]
        [--domain-args "--param stylespace --layers texture"] [--out benchmarks/results/realimages_invert.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from nada.files import atomic_write_text

RENDER_SEED = 20261202  # the renders' own seed: scenes the generator never drew


def nada(args: list[str], env: dict) -> str:
    proc = subprocess.run([sys.executable, "-m", "nada.cli", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"nada {' '.join(args[:2])} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def read(folder: Path, names: list[str]) -> torch.Tensor:
    from nada.imaging import load_image

    return torch.stack([load_image(folder / f"{n}.png") for n in names])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--domain-args", default="--param stylespace --layers texture")
    p.add_argument("--invert-args", default="")
    p.add_argument("--skip-adapt", action="store_true", help="reuse the adapted generator and domain in --work")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "realimages_invert.json")
    args = p.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    from nada.imaging import save_image
    from nada.toyworld.judge import load_judge
    from nada.toyworld.renderer import render_batch

    renders_dir = args.work / "renders"
    renders_dir.mkdir(parents=True, exist_ok=True)
    images, labels = render_batch(args.n, seed=RENDER_SEED, style="photo")
    names = [f"r{i:03d}" for i in range(args.n)]
    for name, im in zip(names, images):
        save_image(im, renders_dir / f"{name}.png")
    ft, dom = args.work / "sketch_finetune", args.work / "sketch_domain"
    if not args.skip_adapt:
        nada(["adapt", "--source", "photo", "--target", "sketch", "--out", str(ft), "--overwrite", "--no-progress"], env)
        nada(["adapt", "--source", "photo", "--target", "sketch", "--out", str(dom), "--overwrite", "--no-progress",
              *args.domain_args.split()], env)
    tr = args.work / "translate"
    nada(["translate", str(renders_dir), "--generator", "toy", "--adapted", str(ft / "generator.safetensors"),
          "--domain", str(dom / "domain.safetensors"), "--out", str(tr), "--no-progress", *args.invert_args.split()], env)
    report = json.loads((tr / "report.json").read_text())
    judge = load_judge()
    saved = read(renders_dir, names)  # what the files hold (8-bit), as a user's photos would

    def read_labels(images: torch.Tensor) -> dict:
        pred = judge.predict(images)
        shift = (pred["position"] - labels["position"]).norm(dim=1)
        return {"shape": float((pred["shape"] == labels["shape"]).float().mean()),
                "colour": float((pred["colour"] == labels["colour"]).float().mean()),
                "style_sketch": float((pred["style"] == 1).float().mean()),
                "style_photo": float((pred["style"] == 0).float().mean()),
                "within_3px": float((shift <= 3).float().mean()), "mean_shift_px": float(shift.mean())}

    from nada.toyworld.renderer import STYLES

    assert STYLES[0] == "photo" and STYLES[1] == "sketch"
    folders = {t["label"]: t["folder"] for t in report["targets"]}
    result = {
        "study": "invert and translate held-out renders", "n": args.n, "render_seed": RENDER_SEED,
        "threads": args.threads, "domain_args": args.domain_args, "invert_args": args.invert_args,
        "seconds_per_image": report["seconds_per_image"], "invert_config": report["config"],
        "judge_on_renders": read_labels(saved),
        "reconstruction": read_labels(read(tr / "reconstructions", names)),
        "translation_finetune": read_labels(read(tr / folders["sketch_finetune"], names)),
        "translation_domain": read_labels(read(tr / folders["sketch_domain"], names)),
        "thresholds": {"reconstruction": {"shape": 0.90, "colour": 0.95, "within_3px": 0.90},
                       "translation": {"style_sketch": 0.90, "shape": 0.85, "colour": 0.90}},
        "torch": torch.__version__, "cpu_count": os.cpu_count(),
    }
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    for k in ("judge_on_renders", "reconstruction", "translation_finetune", "translation_domain"):
        print(k, json.dumps({kk: round(v, 3) for kk, v in result[k].items()}))
    print(f"{result['seconds_per_image']:.2f} s per image; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
