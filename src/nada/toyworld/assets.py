"""Where the built-in world's shipped models live inside the package (no downloads, ever)."""
from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent / "assets"

# Two small CLIPs of different patch sizes, used together as an ensemble; each directory is
# an ordinary transformers model directory (config, safetensors, tokenizer, preprocessor).
BUILTIN_CLIPS: dict[str, Path] = {
    "toyworld-clip-p16": ASSETS_DIR / "clip-p16",
    "toyworld-clip-p8": ASSETS_DIR / "clip-p8",
}

# The base generator: the project's StyleGAN2 at 64 px, trained as a GAN on photo renders only.
GENERATOR_PATH = ASSETS_DIR / "generator.safetensors"

# The judge is for evaluation only; adaptation code must never load it.
JUDGE_DIR = ASSETS_DIR / "judge"


def builtin_clip_paths() -> list[Path]:
    """Directories of the built-in CLIPs, in ensemble order; a missing one is a packaging error."""
    missing = [str(p) for p in BUILTIN_CLIPS.values() if not (p / "config.json").is_file()]
    if missing:
        raise FileNotFoundError(f"built-in CLIP weights are missing from the package: {', '.join(missing)}")
    return list(BUILTIN_CLIPS.values())
