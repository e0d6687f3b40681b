"""Patch directional loss: the directional loss on random crops, held to part-template directions."""
from __future__ import annotations

import math

from ...options import option
from ._base import IMAGE, Term
from ._checks import count_check, templates_check


def _patch_size(name, v):
    if not (math.isfinite(v) and 0.0 < v <= 1.0):
        return f"{name} must be in (0, 1], got {v}"
    return None


class Patch(Term):
    name, order, stage = "patch", 30, IMAGE
    weight_help = "weight of the patch directional loss"
    options = {
        "patch_count": (int, option(4, help="patches per image for the patch loss", check=count_check)),
        "patch_size": (float, option(0.5, help="patch side as a fraction of the image side", check=_patch_size)),
        "part_templates": (list[str] | None, option(
            None, help="a custom part template for the patch loss; repeatable", check=templates_check,
            default_text="the built-in part templates")),
    }
    state = ("part_directions",)

    def _parts(self, cfg):
        from ..templates import PART_TEMPLATES

        return cfg.part_templates if cfg.part_templates is not None else PART_TEMPLATES

    def template_words(self, guidance):
        return list(self._parts(guidance.config))

    def prepare(self, guidance, clip, target, ctx):
        from .. import losses as L
        from ..directions import check_direction, domain_text_embedding

        cfg = guidance.config
        if cfg.target_text is None:
            return {"part_directions": L.unit(target.direction).unsqueeze(0)}  # image target: one direction for every patch
        dirs = []
        for tpl in self._parts(cfg):
            d = domain_text_embedding(clip, cfg.target_text, [tpl]) - domain_text_embedding(clip, ctx.source, [tpl])
            dirs.append(L.unit(check_direction(d, f"{clip.name}: part template {tpl!r}")))
        import torch

        return {"part_directions": torch.stack(dirs)}

    def values(self, guidance, img_train, img_frozen, targets):
        import torch

        from .. import losses as L
        from ..augment import crop_patches, sample_patch_boxes

        cfg = guidance.config
        n, _, h, wd = img_train.shape
        boxes, side = sample_patch_boxes(n, cfg.patch_count, h, wd, cfg.patch_size, guidance._patch_gen)
        p_train, p_frozen = crop_patches(img_train, boxes, side), crop_patches(img_frozen, boxes, side)
        for clip, t, w in zip(guidance.clips.models, targets, guidance.clips.weights):
            e_tr = clip.encode_images(p_train)
            with torch.no_grad():
                e_fr = clip.encode_images(p_frozen)
            yield L.patch_directional_loss(e_tr, e_fr, t.part_directions), w


TERM = Patch()
