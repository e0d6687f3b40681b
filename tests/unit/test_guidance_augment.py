"""Differentiable augmentation: geometry conventions, shared parameters for pairs, view averaging."""
from __future__ import annotations

import pytest
import torch

from nada.guidance.augment import (
    AugmentParams,
    DifferentiableAugment,
    average_views,
    crop_patches,
    sample_patch_boxes,
)

torch.set_num_threads(1)


def _images(n=2, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g) * 2 - 1


def test_identity_and_flip_parameters_reproduce_the_image():
    x = _images()
    ident = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    flip = torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    aug = DifferentiableAugment(1)
    assert torch.allclose(aug.apply(x, AugmentParams(1, 2, ident, None)), x, atol=1e-5)
    assert torch.allclose(aug.apply(x, AugmentParams(1, 2, flip, None)), x.flip(-1), atol=1e-5)


def test_no_op_settings_sample_identity():
    aug = DifferentiableAugment(3, crop_scale=(1.0, 1.0), aspect=(1.0, 1.0), flip=False, max_rotate_deg=0, max_noise=0)
    x = _images()
    out = aug.apply(x, aug.sample(2, 16, 16, torch.Generator().manual_seed(1)))
    assert out.shape == (6, 3, 16, 16)
    assert torch.allclose(out, x.repeat(3, 1, 1, 1), atol=1e-5)


def test_crop_zooms_into_the_centre():
    # A centred crop of half the side samples input pixels 3.75 .. 11.25 (pixel centres,
    # bilinear), so a bright square over pixels 3..12 fills the whole output.
    x = torch.zeros(1, 3, 16, 16)
    x[..., 3:13, 3:13] = 1.0
    theta = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])
    out = DifferentiableAugment(1).apply(x, AugmentParams(1, 1, theta, None))
    assert torch.allclose(out, torch.ones_like(out), atol=1e-5)
    # shifted right by a quarter of the width (0.5 in [-1, 1] units) the dark border shows up
    theta[0, 0, 2] = 0.5
    out = DifferentiableAugment(1).apply(x, AugmentParams(1, 1, theta, None))
    assert out[..., :, -1].max() < 1e-5 and torch.allclose(out[..., :, 0], torch.ones(1, 3, 16))


def test_pairs_share_parameters_and_draws_are_reproducible():
    aug = DifferentiableAugment(4)
    a = _images(seed=1)
    b = _images(seed=2)
    p = aug.sample(2, 16, 16, torch.Generator().manual_seed(5))
    # grid_sample is linear and the noise is shared, so the pair difference is the
    # augmentation of the difference without noise: same crop, flip and rotation for both.
    p_clean = AugmentParams(p.n_views, p.batch, p.theta, None)
    assert torch.allclose(aug.apply(a, p) - aug.apply(b, p), aug.apply(a - b, p_clean), atol=1e-5)
    assert torch.equal(aug.apply(a, p), aug.apply(a.clone(), p))
    q = aug.sample(2, 16, 16, torch.Generator().manual_seed(5))
    assert torch.equal(p.theta, q.theta) and torch.equal(p.noise, q.noise)
    r = aug.sample(2, 16, 16, torch.Generator().manual_seed(6))
    assert not torch.allclose(aug.apply(a, p), aug.apply(a, r))


def test_sampled_parameters_respect_their_ranges():
    aug = DifferentiableAugment(64, crop_scale=(0.8, 1.0), aspect=(0.9, 1.1), max_rotate_deg=8.0, max_noise=0.03)
    p = aug.sample(4, 8, 8, torch.Generator().manual_seed(0))
    th = p.theta
    # columns of the linear part have length sx and sy (rotation keeps lengths)
    sx, sy = th[:, :, 0].norm(dim=-1), th[:, :, 1].norm(dim=-1)
    assert sx.min() >= 0.8 * 0.9**0.5 - 1e-5 and sx.max() <= 1.0 + 1e-6
    assert sy.min() >= 0.8 * 0.9**0.5 - 1e-5 and sy.max() <= 1.0 + 1e-6
    assert (th[:, 0, 2].abs() <= 1 - sx + 1e-6).all() and (th[:, 1, 2].abs() <= 1 - sy + 1e-6).all()
    det_sign = torch.sign(th[:, 0, 0] * th[:, 1, 1] - th[:, 0, 1] * th[:, 1, 0])
    assert (det_sign < 0).any() and (det_sign > 0).any()  # some flipped, some not
    assert p.noise.abs().max() < 0.03 * 6


def test_augmentation_is_differentiable():
    x = _images().requires_grad_(True)
    aug = DifferentiableAugment(2)
    aug.apply(x, aug.sample(2, 16, 16, torch.Generator().manual_seed(0))).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_average_views_formula():
    e = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, -1.0]])  # V=2 views of N=2 images
    out = average_views(e, 2)
    # image 0: units (1,0) and (0,1) -> mean (0.5,0.5) -> unit (1,1)/sqrt2; image 1: (0,1),(0,-1)... mean 0 -> stays 0
    assert torch.allclose(out[0], torch.tensor([1.0, 1.0]) / 2**0.5)
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError):
        average_views(e, 3)


def test_patch_boxes_and_crops():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    boxes, side = sample_patch_boxes(2, 3, 8, 8, 0.5, torch.Generator().manual_seed(0))
    assert side == 4 and boxes.shape == (6, 3)
    assert boxes[:, 0].tolist() == [0, 0, 0, 1, 1, 1]
    assert (boxes[:, 1:] >= 0).all() and (boxes[:, 1:] <= 4).all()
    patches = crop_patches(x, boxes, side)
    n, top, left = boxes[4].tolist()
    assert torch.equal(patches[4], x[n, :, top : top + 4, left : left + 4])
    with pytest.raises(ValueError):
        sample_patch_boxes(1, 1, 8, 8, 0.0)
