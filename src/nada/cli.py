"""The ``nada`` command line: argument parsing only; the work is done by the library API.

Each subcommand is one ``add_<name>_command(subparsers)`` function that builds its parser and
sets ``func`` (called with the parsed namespace, returns an exit code). New subcommands are
added by appending their function to ``COMMANDS``; a command with subcommands of its own
(``nada toyworld evaluate``) adds a nested subparsers group inside its function.

Errors a user can cause (bad checkpoint, unknown name, no network) print one line to stderr
and exit with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .generators.errors import CheckpointError

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with the command line that argparse cannot see (e.g. an unavailable device)."""


# Exceptions that mean "bad input", not "bug": reported in one line.
USER_ERRORS: tuple[type[BaseException], ...] = (CheckpointError, UsageError)


def check_device(name: str) -> str:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise UsageError(f"--device {name}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    return name


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


# ----------------------------------------------------------------------------- nada sample


def add_sample_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sample", help="draw images from a generator",
                              description="Write one PNG per image (named by seed) and grid.png.")
    p.add_argument("--generator", required=True, metavar="PATH_OR_NAME",
                   help="checkpoint file (.pt, .pkl, .safetensors), built-in name (tiny) or pretrained name (ffhq-1024, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--n", type=_positive_int, default=16, help="number of images (default 16)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the first image; image i uses seed+i (default 0)")
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI", help="truncation psi (default 1: none)")
    p.add_argument("--noise-mode", choices=("const", "random", "none"), default="const", help="noise inputs (default const)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="images per forward pass (default 8)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=run_sample)


def run_sample(args: argparse.Namespace) -> int:
    from .generators.checkpoints import load_generator
    from .sampling import sample_images, write_samples

    G = load_generator(args.generator, device=check_device(args.device))
    images = sample_images(G, args.n, seed=args.seed, truncation_psi=args.truncation,
                           noise_mode=args.noise_mode, batch_size=args.batch_size)
    files = write_samples(images, args.out, first_seed=args.seed)
    print(f"wrote {len(files.images)} images ({files.images[0].name} ... {files.images[-1].name}) "
          f"and {files.grid.name} to {files.grid.parent}")
    return 0


# ----------------------------------------------------------------------------- registration

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_sample_command,
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="nada", description="Text-driven domain adaptation of StyleGAN2 generators.")
    parser.add_argument("--version", action="version", version=f"nada {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args) or 0)
    except USER_ERRORS as e:
        print(f"nada: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
