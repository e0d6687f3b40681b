"""Inversion pieces against straightforward computations, and inversion of a tiny generator's own images."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from fixtures import make_tiny_generator
from nada.inversion import (ImageDistance, InversionError, InvertConfig, invert, learning_rate, list_images,
                            load_images, load_latents, noise_penalty, save_latents)


def test_images_are_resized_by_the_shorter_side_and_centre_cropped(tmp_path):
    a = np.zeros((32, 64, 3), np.uint8)  # 64 wide, 32 high: the centre 32 columns are white
    a[:, 16:48] = 255
    Image.fromarray(a).save(tmp_path / "wide.png")
    x = load_images([tmp_path / "wide.png"], 16)
    assert x.shape == (1, 3, 16, 16)
    # only the white centre is left (a crop from the left edge would be half black); Lanczos rings at the border
    assert torch.allclose(x[..., 2:-2], torch.ones_like(x[..., 2:-2]), atol=0.02) and x.mean() > 0.97


def test_list_images_reads_folders_and_refuses_what_it_cannot_use(tmp_path):
    for name in ("b.png", "a.jpg"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images([tmp_path])] == ["a.jpg", "b.png"]
    with pytest.raises(InversionError, match="no such image"):
        list_images([tmp_path / "missing.png"])
    (tmp_path / "sub").mkdir()
    with pytest.raises(InversionError, match="no image files"):
        list_images([tmp_path / "sub"])
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "sub" / "a.png")
    with pytest.raises(InversionError, match="named a"):
        list_images([tmp_path, tmp_path / "sub"])
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InversionError, match="not a readable image"):
        load_images([tmp_path / "bad.png"], 8)


def test_distance_matches_a_float64_computation():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1, torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    got = ImageDistance(b, scales=3)(a)
    want = []
    for i in range(3):
        x, y = a[i].double(), b[i].double()
        total = 0.0
        for s in range(3):
            k = 2 ** s
            xs = x.reshape(3, 16 // k, k, 16 // k, k).mean((2, 4))
            ys = y.reshape(3, 16 // k, k, 16 // k, k).mean((2, 4))
            total += float(((xs - ys) ** 2).mean())
        want.append(total)
    assert torch.allclose(got.double(), torch.tensor(want, dtype=torch.float64), atol=1e-6)
    with pytest.raises(InversionError, match="needs a CLIP"):
        ImageDistance(b, lambda_clip=1.0)


def test_learning_rate_schedule_ramps_up_and_down():
    cfg = InvertConfig(lr=0.1)
    assert learning_rate(0.0, cfg) == 0.0
    assert math.isclose(learning_rate(0.5, cfg), 0.1)
    assert learning_rate(0.99, cfg) < 0.01
    assert learning_rate(0.025, cfg) == pytest.approx(0.05)


def test_noise_penalty_matches_a_direct_computation():
    g = torch.Generator().manual_seed(1)
    maps = [torch.randn(2, 1, 16, 16, generator=g, dtype=torch.float64), torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64)]
    want = torch.zeros(2, dtype=torch.float64)
    for n in maps:
        level = n
        while True:
            for i in range(2):
                m = level[i, 0]
                want[i] += (m * torch.roll(m, 1, 1)).mean() ** 2 + (m * torch.roll(m, 1, 0)).mean() ** 2
            if level.shape[-1] <= 8:
                break
            level = level.reshape(2, 1, level.shape[-2] // 2, 2, level.shape[-1] // 2, 2).mean((3, 5))
    assert torch.allclose(noise_penalty(maps), want)


def test_config_refuses_bad_options_in_one_line():
    with pytest.raises(InversionError, match="lr"):
        InvertConfig(lr=float("nan"))
    with pytest.raises(InversionError, match="nothing would be optimised"):
        InvertConfig(w_steps=0, wplus_steps=0)


def test_inverting_the_generators_own_images_gets_close_and_leaves_it_unchanged():
    G = make_tiny_generator().eval().requires_grad_(False)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        target = G.synthesis(G.mapping(z), noise_mode="const")
        start = G.synthesis(G.w_avg.expand(3, G.num_ws, -1), noise_mode="const")
    r = invert(G, target, w_steps=60, wplus_steps=60, w_avg_samples=500, progress=False)
    assert r.ws.shape == (3, G.num_ws, G.w_dim) and r.images.shape == target.shape
    start_d = ImageDistance(target)(start)
    assert (r.distances < 0.3 * start_d).all(), (r.distances, start_d)
    assert r.history[0]["phase"] == "w" and r.history[-1]["phase"] == "wplus"
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_images_are_inverted_independently_of_the_batch():
    G = make_tiny_generator().eval().requires_grad_(False)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        target = G.synthesis(G.mapping(z), noise_mode="const")
    kw = dict(w_steps=10, wplus_steps=10, w_noise=0.0, w_avg_samples=200, progress=False)
    together = invert(G, target, batch=2, **kw)
    apart = invert(G, target, batch=1, **kw)
    assert torch.allclose(together.ws, apart.ws, atol=1e-4)


def test_noise_optimisation_returns_normalised_maps():
    G = make_tiny_generator().eval().requires_grad_(False)
    target = torch.zeros(2, 3, G.resolution, G.resolution)
    r = invert(G, target, w_steps=5, wplus_steps=5, optimize_noise=True, w_avg_samples=200, progress=False)
    assert r.noise is not None and len(r.noise) == len(G.noise_buffers())
    for m in r.noise:
        assert m.shape[0] == 2
        assert torch.allclose(m.mean((1, 2, 3)), torch.zeros(2), atol=1e-5)
        assert torch.allclose(m.pow(2).mean((1, 2, 3)), torch.ones(2), atol=1e-4)


def test_wrong_image_size_is_refused():
    G = make_tiny_generator()
    with pytest.raises(InversionError, match="this generator draws 32 x 32"):
        invert(G, torch.zeros(1, 3, 16, 16), progress=False)


def test_latents_round_trip_and_foreign_arrays(tmp_path):
    G = make_tiny_generator()
    ws = torch.randn(2, G.num_ws, G.w_dim)
    save_latents(tmp_path / "l.safetensors", ws, ["a", "b"], generator="tiny")
    got, names = load_latents(tmp_path / "l.safetensors", G)
    assert torch.equal(got, ws) and names == ["a", "b"]
    np.save(tmp_path / "w.npy", np.zeros((3, G.w_dim), np.float32))  # one w per image: every row
    got, names = load_latents(tmp_path / "w.npy", G)
    assert got.shape == (3, G.num_ws, G.w_dim) and names == ["0000", "0001", "0002"]
    np.save(tmp_path / "bad.npy", np.zeros((3, 7), np.float32))
    with pytest.raises(InversionError, match="do not fit"):
        load_latents(tmp_path / "bad.npy", G)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InversionError, match="plain numeric"):
        load_latents(tmp_path / "obj.npy", G)


def test_wplus_spread_matches_a_float64_loop_and_pulls_the_rows_together():
    from nada.inversion import w_statistics, wplus_spread

    ws = torch.randn(3, 5, 4, dtype=torch.float64)
    want = [sum(float(((ws[n, i] - ws[n].mean(0)) ** 2).sum()) for i in range(5)) / 5 / 2.0 ** 2 for n in range(3)]
    assert torch.allclose(wplus_spread(ws, 2.0), torch.tensor(want, dtype=torch.float64))
    G = make_tiny_generator().eval().requires_grad_(False)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():  # a target no single w draws: two codes mixed at row 3
        ws_mix = torch.cat([G.mapping(z[:1])[:, :3], G.mapping(z[1:])[:, 3:]], dim=1)
        target = G.synthesis(ws_mix, noise_mode="const")
    kw = dict(w_steps=20, wplus_steps=40, w_avg_samples=300, progress=False)
    free = invert(G, target, **kw)
    held = invert(G, target, wplus_spread=10.0, **kw)
    _, w_std = w_statistics(G, 300)
    assert float(wplus_spread(held.ws, w_std)) < 0.5 * float(wplus_spread(free.ws, w_std))


def test_wplus_rows_frees_only_the_chosen_rows_and_bad_specs_are_refused():
    G = make_tiny_generator().eval().requires_grad_(False)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        target = G.synthesis(G.mapping(z), noise_mode="const")
    r = invert(G, target, w_steps=10, wplus_steps=10, wplus_rows="0,1", w_avg_samples=200, progress=False)
    fixed = r.ws[:, 2:]
    assert torch.equal(fixed, fixed[:, :1].expand_as(fixed))  # the W phase's w on every other row
    assert (r.ws[:, :2] - r.ws[:, 2:3]).abs().amax() > 1e-3  # the chosen rows moved
    with pytest.raises(InversionError, match=r"wplus_rows: rows \[99\] out of range"):
        invert(G, target, wplus_rows="0,99", progress=False, w_avg_samples=100)
    with pytest.raises(InversionError, match="wplus_rows 'adaptive'"):
        InvertConfig(wplus_rows="adaptive")
