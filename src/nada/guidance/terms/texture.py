"""Texture loss: Gram matrices of CLIP vision tokens matched to those of style images."""
from __future__ import annotations

from pathlib import Path

from ...options import option
from ._base import IMAGE, Term
from ._checks import hidden_layers_check, text_check
from ..errors import GuidanceError


class Texture(Term):
    name, order, stage = "texture", 60, IMAGE
    weight_help = "weight of the CLIP-feature texture loss (needs --style-images or --target-images)"
    options = {
        "style_images": (str | None, option(None, help="style image file or folder for the texture loss",
                                            check=text_check, default_text="target_image_dir")),
        "texture_layers": (list[int] | None, option(
            None, help="CLIP vision hidden-state index for the texture loss; repeatable", check=hidden_layers_check,
            default_text="the middle and last layer")),
    }
    state = ("texture_layers", "style_grams")

    def check_ready(self, cfg):
        if cfg.style_images is None and cfg.target_image_dir is None:
            return "lambda_texture > 0 needs style_images (or target_image_dir)"
        return None

    def begin(self, guidance, ctx):
        if self.active(guidance.config):
            cfg = guidance.config
            ctx.scratch["style_images"] = (_load_style_images(cfg.style_images) if cfg.style_images is not None
                                           else ctx.target_images)

    def prepare(self, guidance, clip, target, ctx):
        from ..guidance import hidden_layers

        layers = hidden_layers(clip, guidance.config.texture_layers, "texture")
        return {"texture_layers": layers, "style_grams": _style_grams(clip, ctx.scratch["style_images"], layers)}

    def values(self, guidance, img_train, img_frozen, targets):
        from .. import losses as L

        for clip, t, w in zip(guidance.clips.models, targets, guidance.clips.weights):
            _, hidden = clip.encode_images_with_hidden(img_train, t.texture_layers)
            yield L.texture_loss([h[:, 1:] for h in hidden], t.style_grams), w


def _load_style_images(path: str):
    from ...imaging import load_image
    from ..directions import IMAGE_SUFFIXES, load_image_folder

    p = Path(path)
    if p.is_dir():
        return load_image_folder(p)
    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
        try:
            return [load_image(p)]
        except OSError as exc:
            raise GuidanceError(f"cannot read style image '{p}': {exc}") from exc
    raise GuidanceError(f"style image(s) '{p}' not found (an image file or a folder of images)")


def _style_grams(clip, images, layers):
    """Mean Gram matrix per layer over the style images (class token left out)."""
    import torch

    from .. import losses as L

    with torch.no_grad():
        sums = None
        for img in images:
            _, hidden = clip.encode_images_with_hidden(img.unsqueeze(0), layers)
            grams = [L.gram_matrix(h[:, 1:])[0] for h in hidden]
            sums = grams if sums is None else [s + g for s, g in zip(sums, grams)]
        assert sums is not None
        return [s / len(images) for s in sums]


TERM = Texture()
