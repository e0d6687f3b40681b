"""Issue 19's checks of domains on the built-in world: strength, mixing and transfer, read by the judge.

Needs the domains of `experiments/toyworld/toyworld_targets.py --adapt-args "--param P" --work W_P` (sketch and
red->blue) and a fine-tuned red->blue generator (the same script without --param):

    python experiments/domains/domain_checks.py --work-modulation W_mod --work-stylespace W_ss \
        --finetuned-red-blue W_ft/red-blue/generator.safetensors --out benchmarks/results/domain_checks.json

Each check bakes the domain(s) onto a generator (`nada bake`) and runs `nada toyworld evaluate` on 256 samples.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from nada.files import atomic_write_text


def judge(generator: str, domains: list[str], expect: list[str], tmp: Path, allow_other_base: bool = False) -> dict:
    baked = tmp / f"g{len(list(tmp.iterdir()))}.safetensors"
    cmd = [sys.executable, "-m", "nada.cli", "bake", "--generator", generator, "--out", str(baked)]
    for d in domains:
        cmd += ["--domain", d]
    if allow_other_base:
        cmd.append("--allow-other-base")
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    cmd = [sys.executable, "-m", "nada.cli", "toyworld", "evaluate", "--generator", str(baked), "--n", "256", "--seed", "0", "--json"]
    for e in expect:
        cmd += ["--expect", e]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {"target_rate": report["target_rate"], **report["preserved"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work-modulation", type=Path, required=True)
    p.add_argument("--work-stylespace", type=Path, required=True)
    p.add_argument("--finetuned-red-blue", required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    result: dict = {"n": 256, "seed": 0}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name, work in (("modulation", args.work_modulation), ("stylespace", args.work_stylespace)):
            sketch, red_blue = str(work / "sketch" / "domain.safetensors"), str(work / "red-blue" / "domain.safetensors")
            strengths = {}
            for s in (0.0, 0.25, 0.5, 0.75, 1.0):
                strengths[str(s)] = judge("toy", [f"{sketch}:{s}"], ["style=sketch"], tmp)
                print(name, "strength", s, strengths[str(s)], flush=True)
            rates = [v["target_rate"] for v in strengths.values()]
            mixed = judge("toy", [sketch, red_blue], ["style=sketch", "colour=blue"], tmp)
            sketch_only = judge("toy", [sketch, red_blue], ["style=sketch"], tmp)
            blue_only = judge("toy", [sketch, red_blue], ["colour=blue"], tmp)
            print(name, "mixed", mixed, sketch_only, blue_only, flush=True)
            result[name] = {"strength": strengths, "strength_never_falls": all(b >= a for a, b in zip(rates, rates[1:])),
                            "mixed_sketch_and_blue": mixed, "mixed_sketch": sketch_only, "mixed_blue": blue_only}
            if name == "stylespace":
                transfer = judge(args.finetuned_red_blue, [sketch], ["style=sketch", "colour=blue"], tmp, allow_other_base=True)
                result[name]["transfer_onto_finetuned_red_blue"] = transfer
                result[name]["transfer_sketch"] = judge(args.finetuned_red_blue, [sketch], ["style=sketch"], tmp, True)
                result[name]["transfer_blue"] = judge(args.finetuned_red_blue, [sketch], ["colour=blue"], tmp, True)
                print(name, "transfer", transfer, flush=True)
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
