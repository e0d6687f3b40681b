"""Recreate the built-in world's shipped models: ``nada toyworld train {clip,judge,generator,sheet} ...``
(also ``python -m nada.toyworld.train ...``).

Each subcommand's own ``--help`` lists its options; the exact commands used for the shipped
weights are in docs/toyworld.md. Trainers are imported lazily so one subcommand never pays
for another's imports.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# subcommand -> module whose main(argv) runs it
_SUBCOMMANDS = {
    "clip": "nada.toyworld.clip_train",
    "judge": "nada.toyworld.judge_train",
    "generator": "nada.toyworld.gan_train",
}


def contact_sheet_main(argv: Sequence[str] | None = None) -> int:
    """Write the style contact sheet (rows = styles, columns = the same scenes)."""
    import numpy as np

    from nada.imaging import save_grid

    from .renderer import COLOURS, SHAPES, STYLES, Scene, render, sample_scenes

    p = argparse.ArgumentParser(prog="nada toyworld train sheet", description=contact_sheet_main.__doc__)
    p.add_argument("--out", required=True, help="PNG path")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--columns", type=int, default=12)
    p.add_argument("--upscale", type=int, default=2)
    args = p.parse_args(argv)
    base = sample_scenes(args.columns, np.random.default_rng(args.seed))
    # cycle shapes and colours so every one appears
    base = [Scene(**{**s.as_dict(), "shape": SHAPES[i % len(SHAPES)], "colour": COLOURS[i % len(COLOURS)]}) for i, s in enumerate(base)]
    scenes = [Scene(**{**s.as_dict(), "style": st}) for st in STYLES for s in base]
    save_grid(render(scenes), args.out, nrow=args.columns, upscale=args.upscale)
    print(args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        print(f"\nsubcommands: {', '.join(_SUBCOMMANDS)}, sheet")
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "sheet":
        return contact_sheet_main(rest)
    if cmd not in _SUBCOMMANDS:
        print(f"error: unknown subcommand {cmd!r}; expected one of {', '.join(_SUBCOMMANDS)}, sheet", file=sys.stderr)
        return 2
    module = importlib.import_module(_SUBCOMMANDS[cmd])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
