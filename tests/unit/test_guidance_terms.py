"""Loss terms, one module each: the registry, the config fields they bring, the evaluation order."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from nada.guidance.clip import load_clip
from nada.guidance.config import DEFAULT_CLIPS, LOSS_TERMS, GuidanceConfig
from nada.guidance.errors import GuidanceError
from nada.guidance.guidance import Guidance
from nada.guidance.terms import TERMS, Term
from fixtures import make_tiny_clip
from nada.options import info

torch.set_num_threads(1)

BUILTIN = ["direction", "global", "patch", "angle", "manifold", "texture", "structure", "l2", "perceptual", "keep"]
# the order the total sums in (embedding terms per model first, then the image terms)
EVALUATION = ["direction", "global", "angle", "manifold", "keep", "patch", "texture", "structure", "l2", "perceptual"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return load_clip(make_tiny_clip(tmp_path_factory.mktemp("clip8"), patch_size=8, seed=5))


def test_registry_holds_every_builtin_term_in_the_declared_order():
    assert list(TERMS)[:len(BUILTIN)] == BUILTIN
    assert LOSS_TERMS == {n: f"lambda_{n}" for n in TERMS}
    assert all(isinstance(t, Term) for t in TERMS.values())
    assert [n for n in TERMS if TERMS[n].stage == "embedding"] == ["direction", "global", "angle", "manifold", "keep"]


def test_config_fields_come_from_the_terms_and_keep_their_flat_names():
    names = [f.name for f in dataclasses.fields(GuidanceConfig)]
    for term in TERMS.values():
        assert term.weight_field in names
        assert set(term.options) <= set(names)
    # the same flat keys as before the terms were split out
    assert names[:10] == ["clip", "clip_dtype", "source_text", "target_text", "target_image_dir", "auto_source",
                          "source_candidates", "source_samples", "use_templates", "templates"]
    assert names[10:20] == [f"lambda_{n}" for n in BUILTIN]
    assert names[-2:] == ["source_group", "seed"]
    cfg = GuidanceConfig.from_dict({"lambda_patch": 0.5, "patch_count": 2, "keep": ["a,b"], "target_text": "x"})
    assert cfg.lambda_patch == 0.5 and cfg.patch_count == 2 and cfg.keep == ["a,b"]
    assert GuidanceConfig().clip == list(DEFAULT_CLIPS)
    # every field has its help text where it is declared
    assert all(info(f) is not None and info(f).help for f in dataclasses.fields(GuidanceConfig))


def test_term_options_are_checked_in_one_line():
    for kwargs, message in [({"patch_count": 0}, "patch_count must be at least 1"),
                            ({"patch_size": 0.0}, "patch_size must be in"),
                            ({"keep": ["circle"]}, "a keep group lists two or more"),
                            ({"texture_layers": [10**6]}, "texture_layers must be hidden-state indices"),
                            ({"lambda_keep": float("nan")}, "lambda_keep must be a finite number >= 0")]:
        with pytest.raises(GuidanceError, match=message) as err:
            GuidanceConfig(**kwargs)
        assert "\n" not in str(err.value)


class Features(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return [self.conv(x)]


def test_every_term_at_once_sums_in_the_evaluation_order(clip, tmp_path):
    style = tmp_path / "style.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype("uint8")).save(style)
    weights = {f"lambda_{n}": 0.1 * (i + 1) for i, n in enumerate(BUILTIN)}
    cfg = GuidanceConfig(clip=["tiny"], source_text="photo", target_text="sketch", use_templates=False,
                         style_images=str(style), keep=["circle,square"], clip_augment=2, **weights)
    torch.manual_seed(0)
    g = Guidance(cfg, [clip], perceptual=Features())
    g.prepare()
    t = g.targets[0]
    assert t.part_directions is not None and t.style_grams is not None and t.keep_alternatives is not None
    gen = torch.Generator().manual_seed(0)
    frozen = torch.rand(3, 3, 32, 32, generator=gen) * 2 - 1
    train = (frozen + 0.1 * torch.randn(3, 3, 32, 32, generator=gen)).clamp(-1, 1).requires_grad_(True)
    total, values = g.loss(train, frozen)
    assert list(values)[:-1] == EVALUATION
    assert values["total"] == pytest.approx(sum(weights[f"lambda_{n}"] * values[n] for n in EVALUATION), rel=1e-6)
    total.backward()
    assert torch.isfinite(train.grad).all()


def test_inactive_terms_prepare_nothing_and_need_nothing(clip):
    g = Guidance(GuidanceConfig(clip=["tiny"], target_text="sketch", use_templates=False), [clip])
    g.prepare()
    t = g.targets[0]
    assert t.part_directions is None and t.style_grams is None and t.keep_alternatives is None and t.terms == {}
    with pytest.raises(AttributeError):
        t.not_a_term_value
    with pytest.raises(GuidanceError, match="perceptual network"):
        Guidance(GuidanceConfig(clip=["tiny"], target_text="sketch", lambda_perceptual=1.0), [clip])
    with pytest.raises(GuidanceError, match="needs keep groups"):
        Guidance(GuidanceConfig(clip=["tiny"], target_text="sketch", lambda_keep=1.0), [clip])


def test_one_file_makes_a_term(monkeypatch, clip):
    """A term is a Term subclass; the registry and the config pick it up (here: registered by hand)."""
    import nada.guidance.config as config_module
    import nada.guidance.guidance as guidance_module
    import nada.guidance.terms as terms_module
    from nada.guidance.terms._base import IMAGE
    from nada.options import option

    class Brightness(Term):
        name, order, stage = "brightness", 500, IMAGE
        weight_help = "weight of a mean-brightness match"
        options = {"brightness_target": (float, option(0.0, help="target mean pixel value"))}

        def values(self, guidance, img_train, img_frozen, targets):
            yield (img_train.mean() - guidance.config.brightness_target) ** 2, 1.0

    terms = dict(TERMS, brightness=Brightness())
    monkeypatch.setattr(terms_module, "TERMS", terms)
    try:
        monkeypatch.setattr(config_module, "TERMS", terms)
        cls = dataclasses.make_dataclass("GuidanceConfig", config_module._fields(),
                                         bases=(config_module._GuidanceConfigMethods,))
        monkeypatch.setattr(config_module, "LOSS_TERMS", {n: t.weight_field for n, t in terms.items()})
        monkeypatch.setattr(guidance_module, "TERMS", terms)
        monkeypatch.setattr(guidance_module, "LOSS_TERMS", config_module.LOSS_TERMS)
        cfg = cls(clip=["tiny"], target_text="sketch", use_templates=False, lambda_brightness=2.0, brightness_target=0.5)
        g = Guidance(cfg, [clip])
        img = torch.zeros(2, 3, 32, 32)
        _, values = g.loss(img + 0.01, img)
        assert list(values) == ["direction", "brightness", "total"]
        assert values["brightness"] == pytest.approx((0.01 - 0.5) ** 2, rel=1e-5)
    finally:
        monkeypatch.undo()
