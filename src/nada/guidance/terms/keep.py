"""Attribute keeping: CLIP's zero-shot choice among alternatives stays that of the frozen image."""
from __future__ import annotations

from ...options import option
from ._base import EMBEDDING, Term
from ._checks import groups_check


class Keep(Term):
    name, order, stage = "keep", 100, EMBEDDING
    weight_help = "weight of the attribute-keeping loss (needs --keep)"
    # each group is "a,b,c", alternatives of one attribute (e.g. shapes). A group that names a word
    # of the source or target text is skipped: that attribute is the change.
    options = {
        "keep": (list[str], option(
            [], help="a group of alternatives CLIP should keep choosing the same from, e.g. 'circle,square,triangle'; "
                     "repeatable; skipped when the source or target names one", check=groups_check("a keep group"))),
    }
    state = ("keep_alternatives",)

    def check_ready(self, cfg):
        if not cfg.keep:
            return "lambda_keep > 0 needs keep groups, e.g. keep: ['circle,square,triangle']"
        return None

    def begin(self, guidance, ctx):
        from ..guidance import split_keep_groups

        cfg = guidance.config
        keep, skipped = split_keep_groups(cfg.keep_groups(), [ctx.source or "", cfg.target_text or ""])
        ctx.scratch["keep"] = keep
        if cfg.keep:
            ctx.info["keep_groups"], ctx.info["keep_skipped"] = keep, skipped

    def vocabulary(self, guidance, ctx):
        return {"keep alternative": [w for g in guidance.config.keep_groups() for w in g]}

    def prepare(self, guidance, clip, target, ctx):
        import torch

        from ..directions import domain_text_embedding

        return {"keep_alternatives": [
            torch.stack([domain_text_embedding(clip, w, ctx.templates, ctx.use_templates) for w in group])
            for group in ctx.scratch["keep"]]}

    def value(self, guidance, clip, e_train, e_frozen, target):
        from .. import losses as L

        groups = target.keep_alternatives or []
        value = sum((L.attribute_keep_loss(e_train, e_frozen, a, clip.logit_scale) for a in groups), e_train.sum() * 0.0)
        return value / max(1, len(groups))


TERM = Keep()
