"""CLIP Quality and Diversity of a generator's samples (the HyperDomainNet / StyleDomain metrics).

For images ``I_1 .. I_n``, a target text ``T`` and a CLIP with unit embeddings ``E_I``, ``E_T``:

* **Quality** ``= 1/n sum_i cos(E_T(T), E_I(I_i))``: how much the samples look like the text;
* **Diversity** ``= 2/(n(n-1)) sum_{i<j} (1 - cos(E_I(I_i), E_I(I_j)))``: how different the
  samples are from each other (0: all the same image to CLIP).

Diversity needs no n x n matrix: for unit vectors ``e_i`` with sum ``S``,
``sum_{i != j} e_i . e_j = |S|^2 - sum_i |e_i|^2``, so the mean pairwise ``1 - cos`` is
``1 - (|S|^2 - sum_i |e_i|^2) / (n(n-1))``. The images are drawn, encoded and reduced to
these running sums batch by batch (float64), so 100 000 samples of a 1024-px generator take
one batch of memory.

Several CLIPs: each gives its own pair; the reported figures are their means. The text is
used as given (no prompt templates) unless ``templates=True``: the formulas above embed the
target text itself, and the built-in world's CLIPs know no template words. docs/evaluate.md
has the details and a worked command.
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from .errors import NadaError

__all__ = ["MetricsError", "EmbeddingSums", "quality_diversity", "evaluate", "pairwise_diversity",
           "check_evaluate_options", "describe", "MAX_N"]

MAX_N = 100_000
MAX_SEED = 2**63 - 1  # as nada.sampling: torch generators take 64-bit seeds


class MetricsError(NadaError, ValueError):
    """Bad input to an evaluation (a number out of range, an empty text, a word the CLIP cannot read)."""


# ----------------------------------------------------------------------------- the reduction


class EmbeddingSums:
    """Running float64 sums of one CLIP's image embeddings: enough for Quality and Diversity.

    ``add`` takes (B, D) embeddings (normalised again here, in float64); ``quality`` and
    ``diversity`` are exact for everything added so far, whatever the batch split.
    """

    def __init__(self, text_embedding: torch.Tensor):
        self.text = F.normalize(text_embedding.detach().double().reshape(-1), dim=0).cpu()
        self.n = 0
        self.total = torch.zeros_like(self.text)  # sum_i e_i
        self.norms = 0.0  # sum_i |e_i|^2 (n, up to rounding)
        self.cosines = 0.0  # sum_i e_i . t

    def add(self, embeddings: torch.Tensor) -> None:
        e = F.normalize(embeddings.detach().double().cpu(), dim=1)
        if e.ndim != 2 or e.shape[1] != self.text.shape[0]:
            raise MetricsError(f"image embeddings of shape {tuple(e.shape)} do not match the text embedding's {self.text.shape[0]} dimensions")
        self.n += len(e)
        self.total += e.sum(0)
        self.norms += float((e * e).sum())
        self.cosines += float((e @ self.text).sum())

    @property
    def quality(self) -> float:
        if self.n < 1:
            raise MetricsError("Quality needs at least one image")
        return self.cosines / self.n

    @property
    def diversity(self) -> float:
        if self.n < 2:
            raise MetricsError(f"Diversity needs at least two images, got {self.n}")
        pair_sum = float(self.total @ self.total) - self.norms  # sum over i != j of e_i . e_j
        return 1.0 - pair_sum / (self.n * (self.n - 1))


def pairwise_diversity(embeddings: torch.Tensor) -> float:
    """Mean over pairs i != j of ``1 - cos(e_i, e_j)`` for (n, D) embeddings, without an n x n matrix."""
    sums = EmbeddingSums(torch.ones(embeddings.shape[1]))
    sums.add(embeddings)
    return sums.diversity


# ----------------------------------------------------------------------------- inputs


def _is_generator(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("mapping", "synthesis", "z_dim"))


def _clip_name(clip: Any, index: int) -> str:
    return str(getattr(clip, "name", None) or f"clip{index}")


def _load_clips(clips: Any, device: torch.device | str | None) -> list[Any]:
    """CLIP models from models, names or paths (one or a sequence); names load on ``device``."""
    if isinstance(clips, (str, bytes)) or hasattr(clips, "__fspath__") or hasattr(clips, "encode_images"):
        clips = [clips]
    clips = list(clips)
    if not clips:
        raise MetricsError("give at least one CLIP (--clip NAME)")
    out = []
    for c in clips:
        if isinstance(c, (str, bytes)) or hasattr(c, "__fspath__"):
            from .guidance.clip import load_clip

            c = load_clip(os.fsdecode(c), device=device or "cpu")
        out.append(c)
    names = [_clip_name(c, i) for i, c in enumerate(out)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise MetricsError(f"CLIP {', '.join(map(repr, twice))} given twice; each CLIP counts once")
    return out


def _prompts(clip: Any, text: str, templates: bool | Sequence[str], check_words: bool) -> list[str]:
    from .guidance.templates import IMAGENET_TEMPLATES, check_templates

    if not isinstance(text, str) or not text.strip():
        raise MetricsError(f"the target text is empty ({text!r}); give the text the samples should match")
    text = text.strip()
    if templates is False or templates is None:
        chosen: tuple[str, ...] = ()
    else:
        chosen = IMAGENET_TEMPLATES if templates is True else check_templates(templates)
    unknown_words = getattr(clip, "unknown_words", None) if check_words else None
    if unknown_words is not None:
        words = unknown_words(text)
        if words:
            raise MetricsError(f"{_clip_name(clip, 0)} does not know the word(s) {', '.join(map(repr, words))} in the target text "
                               f"{text!r}: its tokenizer reads them as one unknown token; use words it knows, or another CLIP")
        words = list(dict.fromkeys(w for t in chosen for w in unknown_words(t.replace("{}", " "))))
        if words:
            raise MetricsError(f"{_clip_name(clip, 0)} does not know the template word(s) {', '.join(map(repr, words[:6]))}"
                               f"{' ...' if len(words) > 6 else ''}; evaluate without templates")
    return [t.format(text) for t in chosen] if chosen else [text]


@torch.no_grad()
def _text_embedding(clip: Any, prompts: list[str]) -> torch.Tensor:
    """The unit mean of the prompts' unit embeddings (the text itself when there is one prompt)."""
    e = clip.encode_texts(prompts).double()
    return F.normalize(F.normalize(e, dim=1).mean(0), dim=0)


def check_evaluate_options(n: int, seed: int = 0, truncation: float = 1.0, batch_size: int = 32) -> None:
    """The numbers of :func:`evaluate` in range, or a one-line :class:`MetricsError`."""
    for name, value in (("n", n), ("seed", seed), ("batch size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise MetricsError(f"the {name} must be an integer, got {value!r}")
    if not 2 <= n <= MAX_N:
        raise MetricsError(f"n must be from 2 to {MAX_N} samples, got {n}")
    if batch_size < 1:
        raise MetricsError(f"the batch size must be at least 1, got {batch_size}")
    if not 0 <= seed or seed + n - 1 > MAX_SEED:
        raise MetricsError(f"seeds must lie in 0..2**63-1: seed {seed} with n {n} runs to {seed + n - 1}")
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not math.isfinite(truncation):
        raise MetricsError(f"truncation must be a finite number, got {truncation!r}")


def _image_batches(source: Any, n: int | None, seed: int, truncation: float, batch_size: int) -> Iterator[torch.Tensor]:
    if _is_generator(source):
        from .sampling import sample_images

        assert n is not None
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            yield sample_images(source, m, seed=seed + start, truncation_psi=truncation, batch_size=m)
    else:
        for start in range(0, len(source), batch_size):
            yield source[start:start + batch_size]


# ----------------------------------------------------------------------------- the API


@torch.no_grad()
def quality_diversity(images_or_generator: Any, text: str, clips: Any, *, n: int | None = None, seed: int = 0,
                      truncation: float = 1.0, batch_size: int = 32, templates: bool | Sequence[str] = False,
                      progress: bool = False, check_words: bool = True, device: str | torch.device | None = None,
                      ) -> dict[str, Any]:
    """Quality and Diversity of images (an (N, 3, H, W) tensor in [-1, 1]) or of ``n`` samples of a generator.

    A generator (anything with ``mapping``, ``synthesis`` and ``z_dim``, e.g. :class:`nada.Generator`
    or a view of one) draws image ``i`` from seed ``seed + i``, as ``nada sample`` does.
    ``clips``: one CLIP or several (models, names or paths; names load on ``device``). Returns
    ``{"quality", "diversity", "n", "clips", "per_clip": {name: {"quality", "diversity"}}}``,
    the top-level figures being the means over the CLIPs.
    """
    models = _load_clips(clips, device)
    is_gen = _is_generator(images_or_generator)
    if is_gen:
        if n is None:
            raise MetricsError("give n, the number of samples to draw from the generator")
        check_evaluate_options(n, seed, truncation, batch_size)
    else:
        images = images_or_generator
        if not isinstance(images, torch.Tensor) or images.ndim != 4:
            raise MetricsError(f"expected images (N, 3, H, W) or a generator, got {type(images).__name__}")
        if n is not None and n != len(images):
            raise MetricsError(f"n={n} but {len(images)} images were given")
        n = len(images)
        if n < 2:
            raise MetricsError(f"Quality and Diversity need at least two images, got {n}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise MetricsError(f"the batch size must be a positive integer, got {batch_size!r}")
    sums = [EmbeddingSums(_text_embedding(c, _prompts(c, text, templates, check_words))) for c in models]

    from tqdm.auto import tqdm

    with tqdm(total=n, desc="evaluate", unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for batch in _image_batches(images_or_generator, n, seed, truncation, batch_size):
            if not torch.isfinite(batch).all():
                what = "the generator draws" if is_gen else "the images hold"
                raise MetricsError(f"{what} non-finite values (NaN or inf); {'its weights are damaged' if is_gen else 'fix them first'}")
            for clip, s in zip(models, sums):
                s.add(clip.encode_images(batch, batch_size=batch_size))
            bar.update(len(batch))

    names = [_clip_name(c, i) for i, c in enumerate(models)]
    per_clip = {name: {"quality": s.quality, "diversity": s.diversity} for name, s in zip(names, sums)}
    return {
        "quality": sum(s.quality for s in sums) / len(sums),
        "diversity": sum(s.diversity for s in sums) / len(sums),
        "n": n,
        "clips": names,
        "per_clip": per_clip,
    }


def _device_of(G: Any) -> torch.device:
    try:
        return next(iter(G.parameters())).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def evaluate(generator: Any, target_text: str, *, clip: Any, n: int = 1000, seed: int = 0, truncation: float = 1.0,
             batch_size: int = 32, progress: bool = True, templates: bool | Sequence[str] = False,
             device: str | torch.device | None = None) -> dict[str, Any]:
    """Quality and Diversity of ``n`` samples of ``generator`` for ``target_text``, as a JSON-able report.

    ``generator``: a path or name (loaded with :func:`nada.load_generator` on ``device``) or a
    generator object / view (``mapping``, ``synthesis``, ``z_dim``). ``clip``: the judging
    CLIP(s), models or names; pick one that did not train the generator (a held-out judge).
    CLIPs given by name load on ``device`` (default: the generator's). The report holds
    ``target_text``, ``quality``, ``diversity``, ``n``, ``seed``, ``truncation``, ``templates``,
    ``clips`` and, with several CLIPs, ``per_clip``; ``generator`` when it was given by name.
    """
    check_evaluate_options(n, seed, truncation, batch_size)
    if not isinstance(target_text, str) or not target_text.strip():
        raise MetricsError(f"the target text is empty ({target_text!r}); give the text the samples should match")
    name = None
    if isinstance(generator, (str, bytes)) or hasattr(generator, "__fspath__"):
        from .generators.checkpoints import load_generator

        name = os.fsdecode(generator)
        generator = load_generator(name, device=device or "cpu")
    elif not _is_generator(generator):
        raise MetricsError(f"expected a generator (with mapping, synthesis and z_dim) or its path, got {type(generator).__name__}")
    if hasattr(generator, "eval"):
        generator.eval()
    result = quality_diversity(generator, target_text, clip, n=n, seed=seed, truncation=truncation,
                               batch_size=batch_size, templates=templates, progress=progress,
                               device=device if device is not None else _device_of(generator))
    report: dict[str, Any] = {}
    if name is not None:
        report["generator"] = name
    report.update({
        "target_text": target_text.strip(),
        "quality": result["quality"],
        "diversity": result["diversity"],
        "n": n,
        "seed": seed,
        "truncation": float(truncation),
        "templates": templates if isinstance(templates, bool) else list(templates),
        "clips": result["clips"],
    })
    if len(result["clips"]) > 1:
        report["per_clip"] = result["per_clip"]
    return report


def describe(report: dict[str, Any]) -> str:
    """The report in one line: ``quality 0.2431, diversity 0.6120 (n 1000, seed 0, ...)``."""
    line = (f"quality {report['quality']:.4f}, diversity {report['diversity']:.4f} "
            f"(n {report['n']}, seed {report['seed']}, truncation {report['truncation']:g}, "
            f"CLIP {', '.join(report['clips'])})")
    if "per_clip" in report:
        line += "; " + ", ".join(f"{k}: {v['quality']:.4f} / {v['diversity']:.4f}" for k, v in report["per_clip"].items())
    return line

