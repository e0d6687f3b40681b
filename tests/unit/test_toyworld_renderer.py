"""The built-in world's renderer, captions and augmentations."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from nada.toyworld import augment as aug
from nada.toyworld.captions import (
    VOCABULARY,
    build_tokenizer,
    caption_scenes,
    compose,
    zero_shot_prompts,
)
from nada.toyworld.renderer import (
    COLOURS,
    RESOLUTION,
    SHAPES,
    STYLES,
    Scene,
    render,
    render_batch,
    sample_scenes,
    shape_sdf,
)


def _scenes(n, seed=0, **fixed):
    return sample_scenes(n, np.random.default_rng(seed), **fixed)


def test_constants():
    assert STYLES == ("photo", "sketch", "pixel art", "neon", "watercolor")
    assert SHAPES == ("circle", "square", "triangle", "star")
    assert COLOURS == ("red", "green", "blue", "yellow", "purple", "orange")
    assert RESOLUTION == 64


def test_render_shape_range_and_determinism():
    scenes = _scenes(20)
    a, b = render(scenes), render(scenes)
    assert a.shape == (20, 3, 64, 64) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)
    # an image does not depend on which other scenes share its batch
    single = torch.cat([render([s]) for s in scenes[:5]])
    assert torch.equal(single, a[:5])


def test_render_batch_same_seed_same_pixels_and_labels():
    x1, l1 = render_batch(12, seed=3)
    x2, l2 = render_batch(12, seed=3)
    x3, _ = render_batch(12, seed=4)
    assert torch.equal(x1, x2)
    assert all(torch.equal(l1[k], l2[k]) for k in l1)
    assert not torch.equal(x1, x3)
    assert l1["style"].dtype == torch.long and l1["position"].shape == (12, 2)


def test_texture_seed_changes_texture_only():
    s = _scenes(1, style="watercolor")[0]
    other = dataclasses.replace(s, seed=s.seed + 1)
    a, b = render([s]), render([other])
    assert not torch.equal(a, b)
    assert (a - b).abs().mean() < 0.1  # same object, same place: only the texture differs


def test_fixed_attributes_and_bad_names():
    scenes = _scenes(30, style="neon", shape=2, colour="blue")
    assert {s.style for s in scenes} == {"neon"}
    assert {s.shape for s in scenes} == {"triangle"}
    assert {s.colour for s in scenes} == {"blue"}
    _, labels = render_batch(8, seed=0, style="sketch")
    assert (labels["style"] == STYLES.index("sketch")).all()
    with pytest.raises(ValueError, match="unknown style"):
        sample_scenes(2, np.random.default_rng(0), style="oil")
    with pytest.raises(ValueError, match="out of range"):
        sample_scenes(2, np.random.default_rng(0), shape=9)
    with pytest.raises(TypeError, match="unexpected keyword"):
        render_batch(2, seed=0, size=3)
    with pytest.raises(ValueError, match="unknown colour"):
        Scene("photo", "circle", "pink", 10, 32, 32, 0, 0, 0, 0, 0, 0)


def test_sdf_matches_exact_distances():
    # circle: exact formula; square: distance to an axis-aligned box, both in float64
    base = dict(style="photo", colour="red", size=10.0, cx=30.3, cy=33.7, bg_hue=0, bg_tone=0, bg_angle=0, light_angle=0, seed=0)
    circle = Scene(shape="circle", rotation=0.0, **base)
    square = Scene(shape="square", rotation=0.0, **base)
    sdf = shape_sdf([circle, square]).double()
    c = torch.arange(64, dtype=torch.float64) + 0.5
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    ref_circle = torch.sqrt((xx - 30.3) ** 2 + (yy - 33.7) ** 2) - 10.0
    half = 10.0 * np.sqrt(np.pi) / 2  # equal area with the circle
    qx, qy = (xx - 30.3).abs() - half, (yy - 33.7).abs() - half
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    ref_square = outside + torch.maximum(qx, qy).clamp_max(0)
    assert torch.allclose(sdf[0, 0], ref_circle, atol=1e-4)
    assert torch.allclose(sdf[1, 0], ref_square, atol=1e-4)
    # every shape has about the area of its equal-area circle
    for shape in SHAPES:
        s = dataclasses.replace(circle, shape=shape, rotation=0.4)
        area = float((shape_sdf([s]) < 0).sum())
        assert abs(area - np.pi * 100) < 0.06 * np.pi * 100, shape


def _centroid(weights: torch.Tensor) -> torch.Tensor:
    c = torch.arange(64, dtype=torch.float64) + 0.5
    w = weights.double()
    return torch.stack([(w.sum(-2) * c).sum(-1), (w.sum(-1) * c).sum(-1)], -1) / w.sum((-2, -1))[..., None]


@pytest.mark.parametrize("style", STYLES)
def test_object_pixels_centred_on_label(style):
    # the pixels that change with the object's colour are the object's; their centroid is its position
    scenes = _scenes(12, seed=1, style=style)
    recoloured = [dataclasses.replace(s, colour=COLOURS[(COLOURS.index(s.colour) + 2) % 6]) for s in scenes]
    diff = (render(scenes) - render(recoloured)).abs().sum(1)
    centre = _centroid(diff)
    target = torch.tensor([[s.cx, s.cy] for s in scenes], dtype=torch.float64)
    err = (centre - target).norm(dim=1)
    assert err.max() < 1.5, err


def _style_statistics(images: torch.Tensor) -> torch.Tensor:
    """A few global statistics per image: brightness, contrast, saturation, edges, blockiness, border tone."""
    x = (images + 1) / 2
    lum = x.mean(1)
    sat = x.amax(1) - x.amin(1)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().sum(1)
    border = torch.cat([lum[:, :4].flatten(1), lum[:, -4:].flatten(1)], 1)
    return torch.stack(
        [
            lum.mean((1, 2)),
            lum.std((1, 2)),
            sat.mean((1, 2)),
            dx.mean((1, 2)),
            (dx < 1e-6).float().mean((1, 2)),  # exact repeats: blocky pixel art
            border.mean(1),
            (dx > 0.3).float().mean((1, 2)),  # hard edges
        ],
        dim=1,
    )


def test_styles_separated_by_simple_statistics():
    # a nearest-centroid classifier on global statistics tells the styles apart on fresh renders
    train_x, train_l = render_batch(200, seed=10)
    test_x, test_l = render_batch(100, seed=11)
    f_train, f_test = _style_statistics(train_x), _style_statistics(test_x)
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_test = (f_train - mu) / sd, (f_test - mu) / sd
    centroids = torch.stack([f_train[train_l["style"] == i].mean(0) for i in range(len(STYLES))])
    pred = torch.cdist(f_test, centroids).argmin(1)
    assert (pred == test_l["style"]).float().mean() >= 0.95


def test_captions_use_the_vocabulary_and_fit_their_scene():
    tok = build_tokenizer()
    scenes = _scenes(200, seed=2)
    caps = caption_scenes(scenes, np.random.default_rng(0))
    assert all(c.fits(s) for c, s in zip(caps, scenes))
    mentioned = {(c.style is not None, c.shape is not None, c.colour is not None) for c in caps}
    assert len(mentioned) >= 6  # subsets of attributes, not always all three
    texts = [c.text for c in caps] + [p for a in ("style", "shape", "colour") for cls in zero_shot_prompts(a) for p in cls]
    for text in texts:
        assert set(text.split()) <= set(VOCABULARY), text
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids and ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert len(ids) <= tok.model_max_length
    assert compose("sketch", "circle", "red") == "a sketch of a red circle"
    assert compose("photo", "square", None) == "a photo of a square"
    assert compose(None, "star", "blue", variant=1) == "a blue star"
    # a caption naming only the style fits every scene of that style
    cap = caption_scenes([scenes[0]], np.random.default_rng(0))[0]
    other = dataclasses.replace(scenes[0], shape=SHAPES[(SHAPES.index(scenes[0].shape) + 1) % 4])
    assert cap.fits(other) == (cap.shape is None)


def test_augment_maps_points_with_the_image():
    scenes = _scenes(8, seed=5)
    mask = (shape_sdf(scenes) < 0).float().repeat(1, 3, 1, 1)
    g = torch.Generator().manual_seed(0)
    theta = aug.random_affine_matrices(8, g, scale=(0.9, 1.1), max_rotate_deg=10, max_translate=0.1)
    moved = aug.apply_affine(mask, theta, padding_mode="zeros")
    target = aug.map_points(torch.tensor([[s.cx, s.cy] for s in scenes]), theta, 64)
    assert (_centroid(moved[:, 0]) - target.double()).norm(dim=1).max() < 0.3


def test_augment_is_differentiable_and_keeps_range():
    x = render_batch(4, seed=0)[0].requires_grad_(True)
    y = aug.augment(x, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_tone_darkens_or_washes_out_without_changing_hue():
    x = render_batch(64, seed=3)[0].double()
    u = (x + 1) / 2
    # darken scales [0, 1] intensities; wash_out mixes with white: checked against the formulas
    f = torch.linspace(0.2, 1.0, 64, dtype=torch.float64)
    assert torch.allclose((aug.darken(x, f) + 1) / 2, u * f.view(-1, 1, 1, 1))
    assert torch.allclose((aug.wash_out(x, f) + 1) / 2, u * f.view(-1, 1, 1, 1) + (1 - f.view(-1, 1, 1, 1)))
    assert torch.equal(aug.tone(x, torch.Generator().manual_seed(0), 0.0), x)
    y = aug.tone(x, torch.Generator().manual_seed(0), 1.0, darkest=0.25, palest=0.35)
    assert torch.equal(y, aug.tone(x, torch.Generator().manual_seed(0), 1.0, darkest=0.25, palest=0.35))
    v = (y + 1) / 2
    changed = (v - u).abs().amax(dim=(1, 2, 3)) > 1e-6
    darker = (v <= u + 1e-9).all(dim=3).all(dim=2).all(dim=1)
    paler = (v >= u - 1e-9).all(dim=3).all(dim=2).all(dim=1)
    assert changed.all() and (darker ^ paler).all() and darker.any() and paler.any()
    # a darkened image is one factor times the original (channel ratios, so hue, kept); a
    # washed-out one keeps each pixel's channel order
    d = darker.nonzero()[0, 0]
    lit = u[d] > 0.05
    ratio = v[d][lit] / u[d][lit]
    assert ratio.max() - ratio.min() < 1e-9 and ratio.max() < 1
    w = paler.nonzero()[0, 0]
    assert torch.equal(v[w].argmax(0), u[w].argmax(0))
    assert y.min() >= -1 and y.max() <= 1


def test_train_cli_dispatch_and_contact_sheet(tmp_path, capsys):
    from PIL import Image

    from nada.toyworld.train import main

    assert main(["no-such-model"]) == 2
    out = tmp_path / "sheet.png"
    assert main(["sheet", "--out", str(out), "--columns", "3", "--upscale", "1"]) == 0
    with Image.open(out) as im:
        # five rows (styles) of three 64 px tiles with 2 px padding
        assert im.size == (3 * 66 + 2, 5 * 66 + 2)


def test_preset_source_groups_name_the_renderer_attributes():
    from nada.plugins import preset
    from nada.toyworld.renderer import COLOURS, SHAPES

    assert [g.split(",") for g in preset("toy")["guidance"]["source_group"]] == [list(SHAPES), list(COLOURS)]
