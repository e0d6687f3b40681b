"""``Guidance``: the object the training engine calls once per step.

Built from a :class:`GuidanceConfig` and one or more CLIP models, it works out the
targets once (:meth:`Guidance.prepare`: text or image-folder directions, automatic
source text, part directions, style Gram matrices) and then scores pairs of images from
the trained and the frozen generator (:meth:`Guidance.loss`).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from . import losses as L
from .augment import DifferentiableAugment, average_views
from .config import LOSS_TERMS, TERMS, GuidanceConfig
from .directions import (
    check_direction,
    domain_text_embedding,
    load_image_folder,
    mean_image_embedding,
    select_source_text,
)
from .ensemble import ClipEnsemble
from .errors import GuidanceError
from .templates import IMAGENET_TEMPLATES
from .terms import PrepareContext
from .terms._base import EMBEDDING, IMAGE

__all__ = ["ClipTarget", "Guidance"]

FrozenSampler = Callable[[int], torch.Tensor]


@dataclass
class ClipTarget:
    """What one CLIP model steers towards, computed once by :meth:`Guidance.prepare`.

    The loss terms' own prepared values (``part_directions``, ``style_grams``...) are in
    ``terms`` and read as attributes; a term that is off leaves its values None.
    """

    direction: torch.Tensor  # (D,) non-zero: target minus source embedding
    target: torch.Tensor  # (D,) unit target embedding (global loss)
    source: torch.Tensor  # (D,) unit source embedding
    source_target_cos: float  # cos(source, target), the angle the angle loss reproduces
    source_variants: torch.Tensor | None = None  # (K, D) unit embeddings of the per-sample source texts
    terms: dict[str, Any] = field(default_factory=dict)  # the terms' prepared values by name

    def __getattr__(self, name: str) -> Any:
        if name != "terms" and not name.startswith("__"):
            values = self.__dict__.get("terms", {})
            if name in values:
                return values[name]
            if any(name in t.state for t in TERMS.values()):
                return None
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


class Guidance:
    """CLIP guidance for one adaptation run.

    ``clips``: a :class:`ClipEnsemble`, one ``ClipModel``, a list of them (equal weights),
    or None to load ``config.clip``. ``perceptual``: a network mapping images in [-1, 1] to
    a feature map or a list of them, required when ``lambda_perceptual > 0``.
    """

    def __init__(
        self,
        config: GuidanceConfig,
        clips: ClipEnsemble | Any | Sequence[Any] | None = None,
        device: str | torch.device | None = None,
        perceptual: Callable[[torch.Tensor], torch.Tensor | Sequence[torch.Tensor]] | None = None,
    ):
        config.check_ready()
        self.config = config
        if clips is None:
            clips = ClipEnsemble.from_specs(config.clip, device=device or "cpu", dtype=config.clip_dtype)
        elif not isinstance(clips, ClipEnsemble):
            clips = ClipEnsemble(list(clips) if isinstance(clips, (list, tuple)) else [clips])
        self.clips: ClipEnsemble = clips
        self.device = torch.device(device) if device is not None else clips.models[0].device
        self.terms = config.active_terms()
        for name in self.terms:
            TERMS[name].setup(self, perceptual=perceptual)
        if isinstance(perceptual, nn.Module):
            perceptual.eval().requires_grad_(False)
        self.perceptual = perceptual
        self.augment = DifferentiableAugment(config.clip_augment) if config.clip_augment > 0 else None
        self._aug_gen = torch.Generator(device=self.device).manual_seed(config.seed)
        self._patch_gen = torch.Generator().manual_seed(config.seed + 1)
        self.weighting: L.LearnedLossWeights | None = None
        if config.learned_weights:
            init = {t: getattr(config, LOSS_TERMS[t]) for t in self.terms}
            self.weighting = L.LearnedLossWeights(self.terms, init).to(self.device)
        self.source_text: str | None = config.source_text
        self.targets: list[ClipTarget] | None = None
        self.info: dict[str, Any] = {}

    # -- setup --------------------------------------------------------------------------------
    @property
    def prepared(self) -> bool:
        return self.targets is not None

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of the guidance itself (the learned loss weights), for the optimiser."""
        return list(self.weighting.parameters()) if self.weighting is not None else []

    def _templates(self):
        cfg = self.config
        return cfg.templates, cfg.use_templates

    def prepare(self, frozen_sampler: FrozenSampler | None = None) -> dict[str, Any]:
        """Compute every target once; call before training.

        ``frozen_sampler(n)`` must return ``n`` images (N, 3, H, W) in [-1, 1] from the
        frozen generator; it is needed for ``auto_source`` and ``target_image_dir``.
        Raises :class:`ZeroDirectionError` when source and target coincide for a model.
        Returns a summary (chosen source text, candidate scores, direction norms).
        """
        cfg = self.config
        templates, use_templates = self._templates()
        samples = None
        if cfg.auto_source or cfg.target_image_dir is not None:
            if frozen_sampler is None:
                why = "auto_source" if cfg.auto_source else "target_image_dir"
                raise GuidanceError(f"{why} needs frozen generator samples: call prepare(frozen_sampler=fn), fn(n) -> images")
            with torch.no_grad():
                samples = frozen_sampler(cfg.source_samples)
            if not isinstance(samples, torch.Tensor) or samples.ndim != 4 or samples.shape[1] != 3:
                raise GuidanceError("frozen_sampler(n) must return an (n, 3, H, W) image tensor")
            samples = samples.detach()

        info: dict[str, Any] = {}
        source = cfg.source_text
        if cfg.auto_source:
            candidates = list(cfg.source_candidates)
            if source is not None and source not in candidates:
                candidates.append(source)
            source, scores = select_source_text(self.clips, samples, candidates, templates, use_templates)
            info["source_scores"] = scores
        self.source_text = source
        info["source_text"] = source
        info["target"] = cfg.target_text if cfg.target_text is not None else cfg.target_image_dir

        target_images = load_image_folder(cfg.target_image_dir) if cfg.target_image_dir is not None else None

        variants = None
        if cfg.source_group and cfg.target_text is not None and source is not None:
            variants, used = source_variants(source, [g.split(",") for g in cfg.source_group], cfg.target_text)
            info["source_variants"], info["source_groups_used"] = variants, used
            if not used:
                variants = None  # no group names what changes: one source text for every sample

        ctx = PrepareContext(source=source, templates=templates, use_templates=use_templates, samples=samples,
                             target_images=target_images, info=info)
        for term in TERMS.values():
            term.begin(self, ctx)
        self._check_vocabulary(source, variants, (templates if templates is not None else IMAGENET_TEMPLATES) if use_templates else None, ctx)
        active = [TERMS[name] for name in self.terms]

        targets = []
        for clip in self.clips.models:
            if target_images is None:
                tgt = domain_text_embedding(clip, cfg.target_text, templates, use_templates)
                src = domain_text_embedding(clip, source, templates, use_templates)
                what = f"{clip.name}: source {source!r} -> target {cfg.target_text!r}"
            else:
                tgt = mean_image_embedding(clip, target_images)
                src = mean_image_embedding(clip, samples)
                what = f"{clip.name}: target images vs frozen generator samples"
            direction = check_direction(tgt - src, what)
            t = ClipTarget(direction=direction, target=tgt, source=src, source_target_cos=float(tgt @ src))
            if variants is not None:
                t.source_variants = torch.stack([domain_text_embedding(clip, v, templates, use_templates) for v in variants])
                for v, e in zip(variants, t.source_variants):
                    check_direction(tgt - e, f"{clip.name}: source {v!r} -> target {cfg.target_text!r}")
            for term in active:  # each term's values for this model, in the terms' order
                t.terms.update(term.prepare(self, clip, t, ctx))
            targets.append(t)
        self.targets = targets
        info["direction_norm"] = {c.name: float(t.direction.norm()) for c, t in zip(self.clips.models, targets)}
        self.info = info
        return info

    def _check_vocabulary(self, source: str | None, variants: list[str] | None, templates, ctx: PrepareContext) -> None:
        """Refuse texts with words a CLIP cannot read; warn about such words in templates.

        A word-level tokenizer (the built-in CLIPs') reads an unknown word as one shared
        unknown token: "a sketch of a dog" would steer like "a sketch of a cat".
        """
        cfg = self.config
        texts = {"source text": [source], "target text": [cfg.target_text], "source group alternative": variants or []}
        extra = list(templates or [])
        for name in self.terms:
            texts.update(TERMS[name].vocabulary(self, ctx))
            extra += TERMS[name].template_words(self)
        for clip in self.clips.models:
            for what, items in texts.items():
                for text in items:
                    words = clip.unknown_words(text) if text else []
                    if words:
                        raise GuidanceError(
                            f"{clip.name} does not know the word(s) {', '.join(map(repr, words))} in the {what} {text!r}: "
                            f"its tokenizer reads them as one unknown token. Use words from its vocabulary"
                            f"{_vocabulary_hint(clip)}, or another CLIP.")
            unknown = list(dict.fromkeys(w for tpl in extra for w in clip.unknown_words(tpl.replace("{}", " "))))
            if unknown:
                warnings.warn(f"{clip.name} does not know the template word(s) {', '.join(map(repr, unknown))}; "
                              f"they read as one unknown token (set templates or part_templates to ones it knows)", stacklevel=3)

    # -- per step -------------------------------------------------------------------------------
    def _require_prepared(self) -> list[ClipTarget]:
        if self.targets is None:
            cfg = self.config
            if cfg.auto_source or cfg.target_image_dir is not None:
                raise GuidanceError("call Guidance.prepare(frozen_sampler=...) before computing losses")
            self.prepare()
        assert self.targets is not None
        return self.targets

    def sample_augmentation(self, images: torch.Tensor):
        """Augmentation parameters for a batch shaped like ``images`` (None when augmentation is off)."""
        if self.augment is None:
            return None
        n, _, h, w = images.shape
        return self.augment.sample(n, h, w, generator=self._aug_gen, device=images.device)

    def embed(self, clip, images: torch.Tensor, params=None) -> torch.Tensor:
        """Unit image embeddings, averaged over augmented views when ``params`` is given."""
        if params is None:
            return clip.encode_images(images)
        return average_views(clip.encode_images(self.augment.apply(images, params)), params.n_views)

    def encode_pair(self, img_train: torch.Tensor, img_frozen: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per model, embeddings of both images under one shared augmentation draw."""
        params = self.sample_augmentation(img_train)
        out = []
        for clip in self.clips.models:
            e_train = self.embed(clip, img_train, params)
            with torch.no_grad():
                e_frozen = self.embed(clip, img_frozen, params)
            out.append((e_train, e_frozen))
        return out

    def targets_for(self, target_text: str, frozen_sampler: FrozenSampler | None = None) -> list[ClipTarget]:
        """What each CLIP would steer towards with ``target_text`` instead of the configured target (same
        source, templates, terms and models), for :meth:`loss`'s ``targets``: one run, several domains."""
        import dataclasses

        sibling = Guidance(dataclasses.replace(self.config, target_text=target_text, target_image_dir=None),
                           clips=self.clips, device=self.device, perceptual=self.perceptual)
        sibling.prepare(frozen_sampler)
        assert sibling.targets is not None
        return sibling.targets

    def loss(self, img_train: torch.Tensor, img_frozen: torch.Tensor,
             targets: list[ClipTarget] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss for a batch of (trained, frozen) image pairs made from the same latents.

        Images are (N, 3, H, W) in [-1, 1]. Gradients flow into ``img_train`` only. The
        dict holds each active term's unweighted value (ensemble-weighted over CLIPs),
        ``total``, and with learned weighting ``weight_<term>``. ``targets`` (from
        :meth:`targets_for`) steers towards another target than the configured one.
        """
        targets = self._require_prepared() if targets is None else targets
        if img_train.ndim != 4 or img_train.shape != img_frozen.shape:
            raise ValueError(
                f"loss needs two image batches of the same (N, 3, H, W) shape, got {tuple(img_train.shape)} and {tuple(img_frozen.shape)}"
            )
        terms: dict[str, torch.Tensor] = {}

        def add(name: str, value: torch.Tensor, weight: float = 1.0) -> None:
            terms[name] = terms[name] + weight * value if name in terms else weight * value

        # Every embedding term reads the same embeddings, under one augmentation draw per step:
        # per CLIP model, the terms in their order. Then the image terms, each over the models.
        embedding = [TERMS[n] for n in self.terms if TERMS[n].stage == EMBEDDING]
        if embedding:
            pairs = self.encode_pair(img_train, img_frozen)
            for clip, (e_tr, e_fr), t, w in zip(self.clips.models, pairs, targets, self.clips.weights):
                for term in embedding:
                    add(term.name, term.value(self, clip, e_tr, e_fr, t), w)
        for name in self.terms:
            if TERMS[name].stage == IMAGE:
                for value, w in TERMS[name].values(self, img_train, img_frozen, targets):
                    add(name, value, w)

        cfg = self.config
        if self.weighting is not None:
            total = self.weighting(terms)
        else:
            total = sum(getattr(cfg, LOSS_TERMS[name]) * value for name, value in terms.items())
        info = {name: float(value.detach()) for name, value in terms.items()}
        info["total"] = float(total.detach())
        if self.weighting is not None:
            info.update({f"weight_{k}": v for k, v in self.weighting.weights().items()})
        return total, info

    def global_loss(self, images: torch.Tensor) -> torch.Tensor:
        """``sum_k w_k mean_n [1 - cos(E_I^k(image_n), target_k)]``, differentiable in ``images``.

        Used by adaptive layer selection, which optimises latents towards the target.
        """
        targets = self._require_prepared()
        params = self.sample_augmentation(images)
        values = [L.global_loss(self.embed(clip, images, params), t.target) for clip, t in zip(self.clips.models, targets)]
        return self.clips.weighted(values)  # type: ignore[return-value]

    @torch.no_grad()
    def target_margin(self, images: torch.Tensor) -> torch.Tensor:
        """Per image, how much closer CLIP finds it to the target than to the source (N,).

        ``sum_k w_k [cos(E_I^k(x), T_k) - max_j cos(E_I^k(x), S_kj)]`` over the ensemble, on
        clean images (no augmentation, so it draws no random numbers): positive means the
        models, on balance, read the image as the target. ``S_kj`` are the per-sample source
        texts when source groups apply, else the one source; with a target image folder,
        ``T_k``/``S_k`` are the mean embeddings of the target images and of frozen samples.
        """
        targets = self._require_prepared()
        margins = []
        for clip, t in zip(self.clips.models, targets):
            e = torch.cat([clip.encode_images(images[i:i + 64]) for i in range(0, len(images), 64)])
            sources = t.source_variants if t.source_variants is not None else t.source.unsqueeze(0)
            margins.append(e @ t.target - (e @ sources.T).max(dim=1).values)  # all unit vectors already
        return self.clips.weighted(margins)  # type: ignore[return-value]

    # -- checkpointing -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Learned weights and random-number state, so a resumed run continues identically."""
        return {
            "weighting": self.weighting.state_dict() if self.weighting is not None else None,
            "aug_rng": self._aug_gen.get_state(),
            "patch_rng": self._patch_gen.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if (state.get("weighting") is None) != (self.weighting is None):
            raise GuidanceError("guidance state and config disagree about learned_weights")
        if self.weighting is not None:
            self.weighting.load_state_dict(state["weighting"])
        self._aug_gen.set_state(state["aug_rng"])
        self._patch_gen.set_state(state["patch_rng"])


def _vocabulary_hint(clip, limit: int = 200) -> str:
    """" (...)" listing a small word-level vocabulary; "" for large or unknown ones."""
    get_vocab = getattr(clip.tokenizer, "get_vocab", None)
    if get_vocab is None:
        return ""
    special = set(getattr(clip.tokenizer, "all_special_tokens", []))
    words = sorted(w for w in get_vocab() if w not in special)
    return f" ({', '.join(words)})" if 0 < len(words) <= limit else ""


def hidden_layers(clip, layers: list[int] | None, what: str, middle_only: bool = False) -> list[int]:
    """Checked hidden-state indices; None: the middle layer (and the last, unless ``middle_only``)."""
    n = clip.num_vision_layers
    if layers is None:
        layers = [max(1, n // 2)] if middle_only else sorted({max(1, n // 2), n})
    for i in layers:
        if not -(n + 1) <= i <= n:
            raise GuidanceError(f"{clip.name}: {what} layer {i} out of range (hidden states 0..{n})")
    return list(layers)


def split_keep_groups(groups: list[list[str]], texts: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """(kept, skipped): a group is skipped when the source or target text names one of its alternatives."""
    kept = [g for g in groups if not any(_names(w, t) for w in g for t in texts)]
    return kept, [g for g in groups if g not in kept]


def _names(word: str, text: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(word.lower()) + r"(?!\w)", text.lower()) is not None


def source_variants(source: str, groups: Sequence[Sequence[str]], target: str) -> tuple[list[str], list[list[str]]]:
    """The per-sample source texts and the groups that made them.

    A group applies when ``source`` names exactly one of its words and ``target`` does not
    name that word; the word is then swapped for each alternative ``target`` does not name
    (the original first). Several applying groups give every combination.

    >>> source_variants("a photo of a circle", [["circle", "square", "star"]], "a photo of a square")
    (['a photo of a circle', 'a photo of a star'], [['circle', 'square', 'star']])
    """
    variants, used = [source], []
    for group in groups:
        words = [w.strip() for w in group]
        named = [w for w in words if _names(w, source)]
        if len(named) != 1 or _names(named[0], target):
            continue
        alternatives = [named[0]] + [w for w in words if w != named[0] and not _names(w, target)]
        pattern = re.compile(r"(?<!\w)" + re.escape(named[0]) + r"(?!\w)", re.IGNORECASE)
        variants = [pattern.sub(w, v) for v in variants for w in alternatives]
        used.append(words)
    return variants, used
