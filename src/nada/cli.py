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
from pathlib import Path
from typing import Callable, Sequence

from .errors import NadaError

EXIT_USAGE = 2


class UsageError(NadaError):
    """A problem with the command line that argparse cannot see (e.g. an unavailable device)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line too: ``nada: error: argument --n: ...``."""

    def error(self, message: str):  # type: ignore[override]
        print(f"nada: error: {' '.join(message.split())} (see '{self.prog} --help')", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def check_device(name: str):
    """The torch device ``--device NAME`` means (``auto``: CUDA when available, else CPU)."""
    from .devices import resolve_device
    from .errors import ConfigError

    try:
        return resolve_device(name)
    except ConfigError as e:
        raise UsageError(f"--{e}") from None


MAX_SEED = 2**63 - 1  # torch generators take 64-bit seeds
MAX_SAMPLE_N = 4096  # images per `nada sample` call (split larger sets with --seed)
MAX_EVALUATE_N = 10_000
MAX_BATCH = 4096


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _bounded_int(lo: int, hi: int, what: str = "an integer"):
    def parse(text: str) -> int:
        value = _int(text)
        if not lo <= value <= hi:
            hi_text = "2**63-1" if hi == MAX_SEED else str(hi)
            raise argparse.ArgumentTypeError(f"expected {what} from {lo} to {hi_text}, got {text}")
        return value
    parse.__name__ = "integer"
    return parse


def _finite_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


_seed = _bounded_int(0, MAX_SEED, "a seed")


def _check_seed_range(seed: int, n: int) -> None:
    if seed + n - 1 > MAX_SEED:
        raise UsageError(f"--seed {seed} --n {n}: the last image's seed must be at most 2**63-1, got {seed + n - 1}")


# ----------------------------------------------------------------------------- nada sample


def add_sample_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sample", help="draw images from a generator",
                              description="Write one PNG per image (named by seed) and grid.png.")
    p.add_argument("--generator", required=True, metavar="PATH_OR_NAME",
                   help="checkpoint file (.pt, .pkl, .safetensors), built-in name (tiny) or pretrained name (ffhq-1024, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--n", type=_bounded_int(1, MAX_SAMPLE_N, "a number of images"), default=16,
                   help=f"number of images (default 16, at most {MAX_SAMPLE_N}; draw more with further --seed ranges)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the first image; image i uses seed+i (default 0)")
    p.add_argument("--truncation", type=_finite_float, default=1.0, metavar="PSI", help="truncation psi (default 1: none)")
    p.add_argument("--noise-mode", choices=("const", "random", "none"), default="const", help="noise inputs (default const)")
    p.add_argument("--batch-size", type=_bounded_int(1, MAX_BATCH, "a batch size"), default=8,
                   help="images per forward pass (default 8)")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N (default auto)")
    _add_domain_flags(p)
    _add_mapper_flag(p)
    p.set_defaults(func=run_sample)


def _add_domain_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--domain", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="apply a domain (the domain.safetensors of a `nada adapt --param` run other than finetune) at STRENGTH "
                        "(default 1; 0 = the base exactly); repeatable: domains combine linearly (docs/domains.md)")
    p.add_argument("--allow-other-base", action="store_true",
                   help="apply domains trained on another base generator (same architecture)")
    p.add_argument("--text", metavar="TEXT",
                   help="with a hypernetwork --domain (from `nada adapt --param hyper`): the domain to draw, one of its "
                        "trained texts or any other (the hypernetwork's guess, embedded by its CLIPs)")


def _with_domains(G, args: argparse.Namespace):
    """``G`` with the --domain files applied (G itself when there are none)."""
    if not args.domain:
        if args.text is not None:
            raise UsageError("--text picks the domain of a hypernetwork --domain file; give one with --domain")
        return G
    from .domains.domain import apply_domains, load_domains

    return apply_domains(G, load_domains(args.domain, args.text), allow_other_base=args.allow_other_base)


def run_sample(args: argparse.Namespace) -> int:
    from ._io import check_output_dir
    from .generators.checkpoints import load_generator
    from .sampling import sample_images, write_samples

    _check_seed_range(args.seed, args.n)
    check_output_dir(args.out, "--out")  # before the generator loads: nothing is written on bad input
    G = _with_mapper(_with_domains(load_generator(args.generator, device=check_device(args.device)), args), args)
    images = sample_images(G, args.n, seed=args.seed, truncation_psi=args.truncation,
                           noise_mode=args.noise_mode, batch_size=args.batch_size)
    files = write_samples(images, args.out, first_seed=args.seed)
    print(f"wrote {len(files.images)} images ({files.images[0].name} ... {files.images[-1].name}) "
          f"and {files.grid.name} to {files.grid.parent}")
    return 0


# ----------------------------------------------------------------------------- nada bake


def add_bake_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bake", help="fold domains into a full generator file",
                              description="Write GENERATOR with the --domain files folded into its weights, as a plain "
                                          ".safetensors generator for tools that know no domains.")
    p.add_argument("--generator", required=True, metavar="PATH_OR_NAME", help="the base generator the domains were trained on")
    p.add_argument("--out", required=True, metavar="FILE", help="output .safetensors generator")
    _add_domain_flags(p)
    p.set_defaults(func=run_bake)


def run_bake(args: argparse.Namespace) -> int:
    from .generators.checkpoints import load_generator, save_generator

    if not args.domain:
        raise UsageError("give at least one --domain FILE[:STRENGTH]")
    if not args.out.endswith(".safetensors"):
        raise UsageError(f"--out {args.out}: a baked generator is written as .safetensors")
    G = _with_domains(load_generator(args.generator), args).bake()
    save_generator(G, args.out, metadata={"domains": " ".join(args.domain)})
    print(f"wrote {args.out} ({args.generator} with {', '.join(args.domain)} folded in)")
    return 0


# ----------------------------------------------------------------------------- nada adapt

_HIDDEN_FIELDS = {"guidance"}


def _add_option_flags(group: argparse._ArgumentGroup, cls: type, dest_prefix: str) -> None:
    """One ``--flag`` per option of a config dataclass, with the option's own help text and default
    (:func:`nada.options.option`). Defaults are left to the config so that a flag only overrides what
    the user actually typed (precedence: defaults < preset < --config file < flags)."""
    import dataclasses
    import types
    import typing

    from .options import default_text, info

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        opt = info(f)
        if f.name in _HIDDEN_FIELDS or opt is None or not opt.cli:
            continue
        flag = "--" + (opt.flag or f.name.replace("_", "-"))
        hint = hints[f.name]
        # unwrap Optional[X] / X | None, but not list[X]: a list field is a repeatable flag
        is_union = typing.get_origin(hint) is typing.Union or isinstance(hint, types.UnionType)
        base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if is_union else hint
        kw: dict = {"dest": f"{dest_prefix}{f.name}", "default": argparse.SUPPRESS}
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is list or base is list:
            item = (typing.get_args(base) or (str,))[0]
            kw.update(action="append", type=item if item in (int, float) else str, metavar=f.name.split("_")[-1].upper())
        elif base in (int, float, str):
            kw.update(type=base, metavar=f.name.split("_")[-1].upper())
            if opt.repeatable:
                kw["action"] = "append"
        else:  # e.g. `layers`: a group name or row list, parsed by the library
            kw.update(type=str, metavar=f.name.upper())
        kw["help"] = f"{opt.help} (default: {default_text(f)})".replace("%", "%%")
        group.add_argument(flag, **kw)


def add_adapt_command(subparsers: argparse._SubParsersAction) -> None:
    from .adapt.config import AdaptConfig
    from .guidance.config import GuidanceConfig

    p = subparsers.add_parser(
        "adapt", help="adapt a generator to a domain described by text",
        description="Train a copy of a generator so that it moves from --source to --target in CLIP space. "
                    "With no --generator the built-in world is used. Options left out come from the generator's "
                    "preset (a plug-in's data; the built-in world's sets its CLIPs, fewer iterations and an early "
                    "stop: see docs/toyworld.md), then from the reference implementation's defaults shown below. "
                    "A --config file overrides the preset; flags override the file.")
    p.add_argument("--out", metavar="DIR", help="output directory (samples, checkpoints, final generator)")
    p.add_argument("--config", metavar="FILE", help="YAML config (e.g. a previous run's config.yaml); flags override it")
    p.add_argument("--resume", metavar="DIR", help="continue the unfinished run in DIR (uses DIR/config.yaml; "
                                                    "flags may change only what a resume allows, e.g. --save-every)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_option_flags(p.add_argument_group("training"), AdaptConfig, "a.")
    _add_option_flags(p.add_argument_group("guidance"), GuidanceConfig, "g.")
    p.set_defaults(func=run_adapt)


def _flag_options(args: argparse.Namespace, prefixes: tuple[str, ...] = ("a.", "g.")) -> dict:
    """The config options the user typed, from the flags of :func:`_add_option_flags` with these dest prefixes."""
    return {key[2:]: value for key, value in vars(args).items() if key.startswith(prefixes)}


def adapt_config_from_args(args: argparse.Namespace):
    """Build the run's AdaptConfig: defaults, the generator's preset, the --config/--resume file, then flags."""
    from .adapt.api import make_config

    out = args.resume or args.out
    return make_config(config=args.config, out=out, resume=bool(args.resume), **_flag_options(args))[0]


def run_adapt(args: argparse.Namespace) -> int:
    from .adapt.api import run

    if args.resume and args.out and args.out != args.resume:
        raise UsageError("--resume DIR continues in DIR; leave out --out or give the same directory")
    out = args.resume or args.out
    if not out:
        raise UsageError("give --out DIR (or --resume DIR)")
    cfg = adapt_config_from_args(args)
    result = run(cfg, out, overwrite=args.overwrite, resume=bool(args.resume), progress=not args.no_progress)
    weights = "generator.safetensors" if cfg.param == "finetune" else "domain.safetensors"
    print(f"wrote {result.out_dir}/{weights}, final.png, loss.png, metrics.json "
          f"({result.metrics['steps']} steps, {result.metrics['wall_time_s']:.0f} s)")
    return 0


# ----------------------------------------------------------------------------- nada toyworld evaluate


def add_toyworld_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("toyworld", help="the built-in world: judge adapted generators, retrain its models")
    sub = p.add_subparsers(dest="toyworld_command", metavar="COMMAND")
    e = sub.add_parser("evaluate", help="judge an adapted generator against the built-in base generator",
                       description="Compare GENERATOR with the built-in base generator on the same latents, "
                                   "using the independent judge and the built-in CLIPs.")
    e.add_argument("--generator", required=True, metavar="PATH_OR_NAME")
    e.add_argument("--expect", action="append", required=True, metavar="LABEL=VALUE",
                   help="a label every sample should have now, e.g. style=sketch, shape=square, colour=blue; repeatable")
    e.add_argument("--n", type=_bounded_int(2, MAX_EVALUATE_N, "a number of samples"), default=256,
                   help=f"samples (default 256, at most {MAX_EVALUATE_N})")
    e.add_argument("--seed", type=_bounded_int(0, MAX_SEED - 1, "a seed"), default=0)
    e.add_argument("--truncation", type=_finite_float, default=1.0, metavar="PSI")
    e.add_argument("--text", help="text for clip_quality (default: a caption made from --expect)")
    e.add_argument("--judge", metavar="DIR", help="a judge saved by `nada toyworld train judge` (default: the shipped one)")
    e.add_argument("--json", action="store_true", help="print the full JSON report")
    e.set_defaults(func=run_toyworld_evaluate)
    # each trainer parses its own options: `nada toyworld train judge --help`
    # (no option prefix of its own, so `--help` and every trainer option pass through untouched)
    t = sub.add_parser("train", add_help=False, prefix_chars="\0", help="retrain the built-in world's models: clip, judge, generator, sheet",
                       description="nada toyworld train {clip,judge,generator,sheet} [OPTIONS]; see each one's --help")
    t.add_argument("train_args", nargs=argparse.REMAINDER, metavar="{clip,judge,generator,sheet} ...")
    t.set_defaults(func=run_toyworld_train)
    p.set_defaults(func=lambda args: (p.print_help(sys.stderr), EXIT_USAGE)[1])


def run_toyworld_train(args: argparse.Namespace) -> int:
    from .toyworld.train import main as train_main

    return train_main(args.train_args)


def run_toyworld_evaluate(args: argparse.Namespace) -> int:
    import json

    from .toyworld.evaluate import evaluate
    from .toyworld.judge import load_judge

    try:
        judge = load_judge(directory=args.judge) if args.judge else None
    except (OSError, ValueError) as e:
        raise UsageError(f"--judge: {e}") from None
    report = evaluate(args.generator, args.expect, n=args.n, seed=args.seed, truncation=args.truncation, text=args.text,
                      judge=judge)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        pres = ", ".join(f"{k} {v:.3f}" for k, v in report["preserved"].items())
        print(f"target_rate {report['target_rate']:.3f} (base {report['base_target_rate']:.3f}); preserved: {pres}; "
              f"position shift {report['position_shift_px']:.2f} px; FID to target {report['fid_to_target']:.2f}; "
              f"CLIP quality {report['clip_quality']:.3f}, diversity {report['clip_diversity']:.3f}")
    return 0


# ----------------------------------------------------------------------------- nada evaluate


def add_evaluate_command(subparsers: argparse._SubParsersAction) -> None:
    from .metrics import MAX_N

    p = subparsers.add_parser(
        "evaluate", help="CLIP Quality and Diversity of a generator's samples",
        description="Draw --n samples (image i from seed --seed + i, as `nada sample`) and measure them with one or more "
                    "CLIPs: Quality = mean cos(text, image), Diversity = mean pairwise (1 - cos) between images "
                    "(HyperDomainNet; docs/evaluate.md). Judge with a CLIP that did not train the generator. "
                    "The target text is embedded as given unless --templates.")
    p.add_argument("--generator", required=True, metavar="PATH_OR_NAME",
                   help="checkpoint file (.pt, .pkl, .safetensors), built-in name (toy, tiny) or pretrained name (ffhq-1024, ...)")
    _add_domain_flags(p)
    p.add_argument("--target", required=True, metavar="TEXT", help="the text the samples should match, e.g. 'a sketch'")
    p.add_argument("--clip", action="append", required=True, metavar="NAME",
                   help="judging CLIP: alias (ViT-B/32), hub id, directory, OpenAI file or built-in name; "
                        "repeat for several (the figures are their means, each one's are reported too)")
    p.add_argument("--n", type=_bounded_int(2, MAX_N, "a number of samples"), default=1000,
                   help=f"samples (default 1000, at most {MAX_N})")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the first sample; sample i uses seed+i (default 0)")
    p.add_argument("--truncation", type=_finite_float, default=1.0, metavar="PSI", help="truncation psi (default 1: none)")
    p.add_argument("--batch-size", type=_bounded_int(1, MAX_BATCH, "a batch size"), default=32,
                   help="images per forward pass, for the generator and the CLIPs (default 32)")
    p.add_argument("--templates", action="store_true",
                   help="embed the text through CLIP's ImageNet prompt templates (default: the text as given; "
                        "the built-in world's CLIPs know no template words)")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the JSON report (default: one line of figures)")
    _add_mapper_flag(p)
    p.set_defaults(func=run_evaluate)


def _evaluate_generator(args: argparse.Namespace, device):
    """The generator `nada evaluate` measures: --generator loaded on ``device``, with the --domain files applied
    (a view: anything with ``mapping``, ``synthesis`` and ``z_dim`` is measured alike)."""
    from .generators.checkpoints import load_generator

    return _with_mapper(_with_domains(load_generator(args.generator, device=device), args), args)


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from .metrics import check_evaluate_options, describe, evaluate

    _check_seed_range(args.seed, args.n)
    check_evaluate_options(args.n, args.seed, args.truncation, args.batch_size)
    if not args.target.strip():
        raise UsageError("--target: the text is empty; give the text the samples should match")
    if len(set(args.clip)) < len(args.clip):
        raise UsageError(f"--clip {next(c for c in args.clip if args.clip.count(c) > 1)} is given twice; each CLIP counts once")
    device = check_device(args.device)
    G = _evaluate_generator(args, device)
    report = evaluate(G, args.target, clip=args.clip, n=args.n, seed=args.seed, truncation=args.truncation,
                      batch_size=args.batch_size, templates=args.templates, device=device, progress=not args.no_progress)
    report = {"generator": args.generator, **report}
    print(json.dumps(report, indent=1) if args.json else describe(report))
    return 0


# ----------------------------------------------------------------------------- nada invert / translate


def _add_invert_flags(p: argparse.ArgumentParser) -> None:
    from .encoder import ENCODER_KINDS
    from .inversion import InvertConfig

    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files, or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--clip", metavar="NAME", help="a CLIP whose image features join the distance (with --lambda-clip)")
    p.add_argument("--lpips-vgg", metavar="FILE", help="ImageNet VGG16 weights (the model zoo's vgg16-*.pth) for LPIPS")
    p.add_argument("--lpips-lin", metavar="FILE", help="the LPIPS linear layers (the lpips package's vgg.pth); with "
                                                       "--lpips-vgg, LPIPS-VGG joins the distance (--lambda-lpips)")
    p.add_argument("--encoder", metavar="FILE", help="an e4e or pSp checkpoint (e4e_ffhq_encode.pt): codes from the "
                                                    "encoder, refined by --refine-steps, instead of the W/W+ optimisation")
    p.add_argument("--encoder-type", choices=sorted(ENCODER_KINDS), help="e4e or psp, when the checkpoint's opts do not say")
    p.add_argument("--device", default="auto", help="torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_option_flags(p.add_argument_group("inversion"), InvertConfig, "i.")


def _invert_config(args: argparse.Namespace):
    from .inversion import InvertConfig

    return InvertConfig(**_flag_options(args, ("i.",)))


def _distance_lpips(args: argparse.Namespace, device):
    if args.lpips_vgg is None and args.lpips_lin is None:
        return None
    if args.lpips_vgg is None or args.lpips_lin is None:
        raise UsageError("LPIPS needs both --lpips-vgg (VGG16 weights) and --lpips-lin (its linear layers)")
    from .lpips import load_lpips

    return load_lpips(args.lpips_vgg, args.lpips_lin, device=device)


def _inversion_encoder(args: argparse.Namespace, device):
    if args.encoder is None:
        if args.encoder_type is not None:
            raise UsageError("--encoder-type needs --encoder")
        return None
    from .encoder import load_encoder

    return load_encoder(args.encoder, kind=args.encoder_type, device=device)


def _distance_clip(args: argparse.Namespace, device):
    if args.clip is None:
        return None
    from .guidance.clip import load_clip

    return load_clip(args.clip, device=device)


def add_invert_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "invert", help="find the W+ codes of real images",
        description="Optimise one W+ code per image so that the generator redraws it (W first, then W+, as NVIDIA's "
                    "projector), or take them from an e4e/pSp encoder (--encoder) and refine them (--refine-steps). Writes latents.safetensors, reconstructions/, grid.png (inputs over reconstructions) "
                    "and report.json. Images are resized (shorter side) and centre-cropped to the generator's "
                    "resolution; face models expect aligned faces (docs/real-images.md).")
    p.add_argument("--generator", metavar="PATH_OR_NAME",
                   help="checkpoint file or generator name (default with --encoder: the generator in its checkpoint)")
    _add_domain_flags(p)
    _add_invert_flags(p)
    p.set_defaults(func=run_invert)


def run_invert(args: argparse.Namespace) -> int:
    from ._io import check_output_dir
    from .generators.checkpoints import load_generator
    from .translation import invert_to_dir

    if args.generator is None and args.encoder is None:
        raise UsageError("give --generator (or --encoder with an e4e/pSp checkpoint, whose generator is then used)")
    cfg = _invert_config(args)
    check_output_dir(args.out, "--out")
    device = check_device(args.device)
    encoder = _inversion_encoder(args, device)
    generator = args.generator or args.encoder
    G = _with_domains(load_generator(generator, device=device).eval().requires_grad_(False), args)
    report = invert_to_dir(G, args.images, args.out, cfg, clip=_distance_clip(args, device),
                           lpips=_distance_lpips(args, device), encoder=encoder, generator=generator,
                           progress=not args.no_progress)
    worst = max(report["images"], key=lambda r: r["distance"])
    print(f"wrote {args.out}/latents.safetensors, reconstructions/, grid.png, report.json ({report['n']} images, "
          f"{report['seconds_per_image']:.2f} s each; largest distance {worst['distance']:.4f} for {worst['name']})")
    return 0


def add_translate_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "translate", help="redraw real images in adapted generators or domains",
        description="Invert the images with --generator (the base), then draw the same codes with each --domain and "
                    "each --adapted generator. Writes one row per image (input, reconstruction, each target) as "
                    "<name>.png, each target's images in a folder of its own, and what `nada invert` writes.")
    p.add_argument("--generator", metavar="PATH_OR_NAME",
                   help="the base generator (default with --encoder: the generator in its checkpoint)")
    p.add_argument("--domain", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="a domain of the base, drawn as a target of its own; repeatable")
    p.add_argument("--text", metavar="TEXT", help="with a hypernetwork --domain: the domain to draw")
    p.add_argument("--adapted", action="append", default=[], metavar="PATH",
                   help="an adapted generator of the same latent space (e.g. a `nada adapt` generator.safetensors); repeatable")
    p.add_argument("--allow-other-base", action="store_true", help="apply domains trained on another base generator")
    _add_mapper_flag(p)
    _add_invert_flags(p)
    p.set_defaults(func=run_translate)


def run_translate(args: argparse.Namespace) -> int:
    from ._io import check_output_dir
    from .domains.domain import apply_domains, load_domains
    from .generators.checkpoints import load_generator
    from .generators.latents import latent_space_mismatch
    from .translation import translate_to_dir

    if not args.domain and not args.adapted:
        raise UsageError("give at least one target: --domain FILE or --adapted GENERATOR")
    if args.generator is None and args.encoder is None:
        raise UsageError("give --generator (or --encoder with an e4e/pSp checkpoint, whose generator is then used)")
    cfg = _invert_config(args)
    check_output_dir(args.out, "--out")
    device = check_device(args.device)
    encoder = _inversion_encoder(args, device)
    generator = args.generator or args.encoder
    G = load_generator(generator, device=device).eval().requires_grad_(False)
    targets = []
    for spec in args.domain:
        (domain, strength), = load_domains([spec], args.text)
        label = Path(spec).parent.name or Path(spec).stem
        if args.text is not None and getattr(domain, "meta", {}).get("hyper"):
            label = args.text
        targets.append((label if strength == 1.0 else f"{label}@{strength:g}",
                        apply_domains(G, [(domain, strength)], allow_other_base=args.allow_other_base)))
    for path in args.adapted:
        A = load_generator(path, device=device).eval().requires_grad_(False)
        mismatch = latent_space_mismatch(A, G)
        if mismatch:
            raise UsageError(f"--adapted {path}: {mismatch}")
        targets.append((Path(path).parent.name or Path(path).stem, A))
    targets = [(label, _with_mapper(T, args)) for label, T in targets]
    report = translate_to_dir(G, targets, args.images, args.out, cfg, clip=_distance_clip(args, device),
                              lpips=_distance_lpips(args, device), encoder=encoder, generator=generator,
                              progress=not args.no_progress)
    print(f"wrote {args.out}: one row per image ({report['n']}), folders {', '.join(t['folder'] for t in report['targets'])}, "
          f"latents.safetensors, report.json ({report['seconds_per_image']:.2f} s per image to invert)")
    return 0


# ----------------------------------------------------------------------------- nada edit


def _int_list(text: str, what: str) -> list[int]:
    """``0-7`` or ``0,3,5`` (or both: ``0-3,8``) -> integers."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            out += list(range(int(lo), int(hi) + 1)) if dash and lo else [int(part)]
        except ValueError:
            raise UsageError(f"{what} {text}: expected integers like 0-7 or 0,3,5") from None
    if not out or len(out) > MAX_SAMPLE_N:
        raise UsageError(f"{what} {text}: give 1 to {MAX_SAMPLE_N} values")
    return out


def _seed_list(text: str) -> list[int]:
    """``--seeds`` (``0-7``, ``0,3,5``) -> seeds, each in the range a seed may take."""
    seeds = _int_list(text, "--seeds")
    _check_seed_range(min(seeds), 1)
    _check_seed_range(max(seeds), 1)
    return seeds


def _float_list(text: str, what: str) -> list[float]:
    """``-3,0,3`` -> finite numbers (one line on anything else)."""
    import math

    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"{what} {text}: expected numbers like -3,0,3") from None
    if not values or not all(math.isfinite(x) for x in values):
        raise UsageError(f"{what} {text}: give finite numbers")
    return values


def add_edit_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "edit", help="move latents along a direction and draw the results",
        description="Edit W+ codes along a direction found without data (sefa:I, ganspace:I) or a boundary .npy file, "
                    "at each --strengths value, and draw them with --generator (and its --domain files): grid.png has "
                    "one row per code, one column per strength. The same codes and direction give the same edit in a "
                    "base generator and its adaptations (they share W).")
    p.add_argument("--generator", required=True, metavar="PATH_OR_NAME", help="checkpoint file or generator name")
    _add_domain_flags(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--latents", metavar="FILE", help="W+ codes: a `nada invert` latents.safetensors or a .npy array")
    src.add_argument("--seeds", metavar="LIST", help="draw the codes from these seeds, e.g. 0-7 or 0,3,5")
    p.add_argument("--truncation", type=_finite_float, default=1.0, metavar="PSI", help="truncation psi for --seeds (default 1)")
    p.add_argument("--direction", required=True, metavar="SPEC",
                   help="sefa:INDEX (closed-form factorisation of the style weights), ganspace:INDEX (principal "
                        "component of W; strengths in standard deviations) or a boundary .npy of shape (1, w_dim) or (num_ws, w_dim)")
    p.add_argument("--strengths", default="-3,0,3", metavar="LIST", help="comma-separated strengths (default -3,0,3; write --strengths=-2,0,2 when the first is negative)")
    p.add_argument("--layers", metavar="ROWS", help="edit only these W+ rows, e.g. 0-3 (default all); also restricts SeFa")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (grid.png, report.json)")
    _add_mapper_flag(p)
    p.set_defaults(func=run_edit)


def run_edit(args: argparse.Namespace) -> int:
    from ._io import check_output_dir
    from .editing import edit_to_dir
    from .generators.checkpoints import load_generator

    strengths = _float_list(args.strengths, "--strengths")
    layers = _int_list(args.layers, "--layers") if args.layers else None
    check_output_dir(args.out, "--out")
    device = check_device(args.device)
    G = _with_mapper(_with_domains(load_generator(args.generator, device=device).eval().requires_grad_(False), args), args)
    if args.latents:
        from .inversion import load_latents

        ws, names = load_latents(args.latents, G)
    else:
        from .generators.latents import seed_codes

        seeds = _seed_list(args.seeds)
        ws, names = seed_codes(G, seeds, args.truncation), [str(s) for s in seeds]
    report = edit_to_dir(G, ws, names, args.direction, strengths, args.out, layers=layers,
                         report={"generator": args.generator, "domains": args.domain})
    print(f"wrote {args.out}/grid.png: {len(names)} codes x {len(strengths)} strengths along {report['description']}")
    return 0


def add_boundary_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "boundary", help="fit an edit direction from your own labels",
        description="Fit an InterFaceGAN-style boundary (logistic regression in W) to codes you labelled 0 or 1, and "
                    "write its unit normal as a .npy for `nada edit --direction FILE.npy`. The codes are a `nada "
                    "invert` latents file (labels name its images) or --seeds drawn by --generator (labels name the "
                    "seeds). The labels file has one 'name,label' per line, or is a JSON object {name: 0 or 1}.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--latents", metavar="FILE", help="W+ codes: a `nada invert` latents.safetensors or a .npy array")
    src.add_argument("--seeds", metavar="LIST", help="draw the codes from these seeds (with --generator), e.g. 0-499")
    p.add_argument("--generator", metavar="PATH_OR_NAME", help="with --seeds: the generator whose mapping draws them")
    p.add_argument("--truncation", type=_finite_float, default=1.0, metavar="PSI", help="truncation psi for --seeds (default 1)")
    p.add_argument("--labels", required=True, metavar="FILE", help="name,label lines (label 0 or 1) or a JSON object")
    p.add_argument("--per-row", action="store_true", help="fit one normal per W+ row, (num_ws, w_dim), instead of one "
                                                         "from each code's mean row, (1, w_dim)")
    p.add_argument("--out", required=True, metavar="FILE.npy", help="the boundary file to write")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.set_defaults(func=run_boundary)


def run_boundary(args: argparse.Namespace) -> int:
    from ._io import check_output_dir
    from .editing import boundary_from_labels, read_labels, save_boundary

    out = Path(args.out)
    if out.suffix.lower() != ".npy" or out.is_dir():
        raise UsageError(f"--out {args.out}: give a .npy file to write the boundary to")
    check_output_dir(out.parent if str(out.parent) else ".", "--out")
    labels = read_labels(args.labels)
    if args.latents:
        if args.generator:
            raise UsageError("--generator goes with --seeds; a latents file carries its codes")
        from .inversion import load_latents

        ws, names = load_latents(args.latents)
    else:
        if not args.generator:
            raise UsageError("--seeds needs --generator (whose mapping draws the codes)")
        from .generators.checkpoints import load_generator
        from .generators.latents import seed_codes

        seeds = _seed_list(args.seeds)
        G = load_generator(args.generator, device=check_device(args.device)).eval().requires_grad_(False)
        ws, names = seed_codes(G, seeds, args.truncation), [str(x) for x in seeds]
    normal, summary = boundary_from_labels(ws, names, labels, per_row=args.per_row)
    save_boundary(args.out, normal)
    print(f"wrote {args.out}: shape {tuple(normal.shape)} from {summary['codes']} codes ({summary['label_1']} labelled 1); "
          f"one threshold along it separates {summary['separable_accuracy']:.1%} of them")
    return 0


# ----------------------------------------------------------------------------- nada video


def add_video_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "video", help="render interpolations, latent walks and edits as mp4 or GIF",
        description="Render frames of one or more panels (tiled in a grid) and write --out as .mp4 or .gif. Panels: "
                    "'base' (--generator), an adapted generator, a domain file, or HYPERFILE@TEXT. With --interpolate every "
                    "panel moves from the base (first frame) to itself (last frame): a domain's strength goes 0 -> 1, "
                    "a generator's weights go linearly from the base's. With --walk the codes travel through --seeds "
                    "and back; with --direction they are edited, the strength moving through --strengths. Any "
                    "combination works.")
    p.add_argument("--generator", required=True, metavar="PATH_OR_NAME", help="the base generator")
    p.add_argument("--panel", action="append", default=[], metavar="SPEC",
                   help="base, a generator, a domain file or HYPERFILE@TEXT; repeatable (default: base)")
    p.add_argument("--out", required=True, metavar="FILE", help="output .mp4 or .gif")
    p.add_argument("--interpolate", action="store_true", help="move every panel from the base to itself over the video")
    p.add_argument("--walk", action="store_true", help="walk through --seeds (and back to the first)")
    p.add_argument("--seeds", default="0", metavar="LIST", help="codes: each one side by side, or the walk's stops (default 0)")
    p.add_argument("--latents", metavar="FILE", help="codes from a file instead of --seeds (e.g. `nada invert`'s "
                                                     "latents.safetensors); --walk then moves linearly through them in W+")
    p.add_argument("--space", choices=("z", "w"), default="z", help="walk by slerp in Z or lerp in W (default z)")
    p.add_argument("--truncation", type=_finite_float, default=1.0, metavar="PSI", help="truncation psi (default 1)")
    p.add_argument("--direction", metavar="SPEC", help="edit over time: sefa:I, ganspace:I or a boundary .npy")
    p.add_argument("--strengths", default="-3,3", metavar="LIST",
                   help="the edit's strengths, passed through in turn (default -3,3; write --strengths=-3,3)")
    p.add_argument("--frames", type=_bounded_int(1, 10_000, "a number of frames"), default=48, help="frames (default 48)")
    p.add_argument("--fps", type=_finite_float, default=24.0, help="frames per second (default 24)")
    p.add_argument("--size", type=_bounded_int(8, 4096, "a size in pixels"), default=None,
                   help="draw each image at this size (default: the generator's)")
    p.add_argument("--columns", type=_bounded_int(1, 64, "a number of columns"), default=None,
                   help="panels per row (default: a square-ish grid)")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_mapper_flag(p)
    p.set_defaults(func=run_video)


def run_video(args: argparse.Namespace) -> int:
    from .generators.checkpoints import load_generator
    from .video import VIDEO_SUFFIXES, Panel, parse_panel, render_video, write_video

    if Path(args.out).suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--out {args.out}: write a .mp4 or .gif file")
    if not (0 < args.fps <= 240):
        raise UsageError(f"--fps {args.fps}: give a rate in (0, 240]")
    seeds = _seed_list(args.seeds)
    strengths = _float_list(args.strengths, "--strengths")
    from ._io import check_output_dir

    check_output_dir(Path(args.out).parent if str(Path(args.out).parent) else ".", "--out")
    device = check_device(args.device)
    G = load_generator(args.generator, device=device).eval().requires_grad_(False)
    panels = []
    for spec in args.panel or ["base"]:
        label, obj, kind = parse_panel(spec, G, device)
        if kind == "domain":
            panels.append(Panel.domain(label, G, obj) if args.interpolate else
                          Panel.fixed(label, obj.apply(G, allow_other_base=True)))
        elif kind == "generator" and args.interpolate:
            panels.append(Panel.towards(label, G, obj))
        else:
            panels.append(Panel.fixed(label, obj))
    direction = None
    if args.direction:
        from .editing import parse_direction

        direction, _ = parse_direction(args.direction, G)
    latents = None
    if args.latents:
        from .inversion import load_latents

        latents, _ = load_latents(args.latents, G)
    transform = None
    if args.mapper:
        mapped = _with_mapper(G, args)
        transform = mapped.map
    frames = render_video(panels, args.frames, seeds=seeds, space=args.space, truncation=args.truncation,
                          walk=args.walk, direction=direction, strengths=strengths if direction is not None else (),
                          columns=args.columns, size=args.size, latents=latents, transform=transform,
                          progress=not args.no_progress)
    write_video(frames, args.out, fps=args.fps)
    print(f"wrote {args.out}: {len(frames)} frames of {frames.shape[2]} x {frames.shape[1]} px at {args.fps:g} fps "
          f"({', '.join(p.label for p in panels)})")
    return 0


# ----------------------------------------------------------------------------- nada mapper


def _add_mapper_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mapper", metavar="FILE", help="move the codes through a latent mapper first (`nada mapper`'s mapper.safetensors)")


def _with_mapper(G, args: argparse.Namespace):
    """``G`` seen through the --mapper file (G itself without one)."""
    if not getattr(args, "mapper", None):
        return G
    from .mapper import MappedGenerator, load_mapper

    mapper, multiplier, _ = load_mapper(args.mapper, G)
    return MappedGenerator(G, mapper.to(G.w_avg.device), multiplier)


def add_mapper_command(subparsers: argparse._SubParsersAction) -> None:
    from .guidance.config import GuidanceConfig
    from .mapper import MapperConfig

    p = subparsers.add_parser(
        "mapper", help="train a latent mapper towards a text",
        description="Train StyleCLIP's levels mapper for --generator (and its --domain files): a small network that "
                    "moves each W+ code towards --target, guided by CLIP (the directional loss from --source, plus "
                    "any guidance option), with an L2 and a norm penalty on the offset. Writes mapper.safetensors, "
                    "final.png (codes before, over after), metrics.json and config.yaml. Use it with --mapper in "
                    "sample, translate, edit, video and evaluate.")
    p.add_argument("--generator", required=True, metavar="PATH_OR_NAME", help="the (adapted) generator")
    _add_domain_flags(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_option_flags(p.add_argument_group("mapper"), MapperConfig, "m.")
    _add_option_flags(p.add_argument_group("guidance (as nada adapt; the preset of the generator, or of the base an adapted "
                                           "generator names, applies)"), GuidanceConfig, "g.")
    p.set_defaults(func=run_mapper)


def run_mapper(args: argparse.Namespace) -> int:
    from ._io import check_output_dir
    from .adapt.api import make_config
    from .generators.checkpoints import load_generator
    from .guidance.guidance import Guidance
    from .mapper import mapper_config, mapper_to_dir
    from .generators.checkpoints import preset_name_for

    cfg = mapper_config(args.generator, **_flag_options(args, ("m.",)))
    gflags = _flag_options(args, ("g.",))
    gcfg = make_config(generator=preset_name_for(args.generator), **gflags)[0].guidance
    if gcfg.target_text is None:
        raise UsageError("give --target TEXT (the region the mapper moves codes towards)")
    check_output_dir(args.out, "--out")
    device = check_device(args.device)
    G = _with_domains(load_generator(args.generator, device=device).eval().requires_grad_(False), args)
    history = mapper_to_dir(G, Guidance(gcfg, device=device), args.out, cfg, generator=args.generator,
                            domains=args.domain, progress=not args.no_progress)
    print(f"wrote {args.out}/mapper.safetensors, final.png, metrics.json ({len(history)} steps, "
          f"{history[-1]['time_s']:.0f} s)")
    return 0


# ----------------------------------------------------------------------------- registration

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_sample_command,
    add_adapt_command,
    add_bake_command,
    add_evaluate_command,
    add_invert_command,
    add_translate_command,
    add_edit_command,
    add_boundary_command,
    add_video_command,
    add_mapper_command,
    add_toyworld_command,
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(prog="nada", description="Text-driven domain adaptation of StyleGAN2 generators.")
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
    except BrokenPipeError:  # output piped into `head` and the like: not an error worth a line
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 0
    except Exception as e:
        if isinstance(e, NadaError):  # bad input, not a bug: one line
            message = str(e)
        elif isinstance(e, OSError):  # the machine's, not the program's, fault: say which, in one line
            from ._io import describe_os_error

            message = describe_os_error(e)
        elif _is_out_of_memory(e):
            message = f"out of memory ({' '.join(str(e).split())[:160] or type(e).__name__})"
        else:
            raise
        print(f"nada: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _is_out_of_memory(e: BaseException) -> bool:
    from .adapt.engine import _is_out_of_memory as oom

    return oom(e)


if __name__ == "__main__":
    sys.exit(main())
