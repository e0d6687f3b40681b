"""Interpolation and video: slerp and weight interpolation against direct computations, domain strength
at the ends, mp4/GIF written and read back, the CLI's panels and its one-line refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures import make_tiny_generator
from nada.video import Panel, VideoError, lerp_generators, render_video, slerp, walk_codes, write_video


def test_slerp_matches_the_formula_and_its_ends():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1, 8, generator=g, dtype=torch.float64), torch.randn(1, 8, generator=g, dtype=torch.float64)
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    ua, ub = a / a.norm(), b / b.norm()
    omega = torch.arccos((ua * ub).sum())
    t = 0.3
    want = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / torch.sin(omega) * ((1 - t) * a.norm() + t * b.norm())
    assert torch.allclose(slerp(a, b, t), want)


def test_weight_interpolation_ends_are_the_two_generators():
    A, B = make_tiny_generator(seed=0), make_tiny_generator(seed=1)
    mid = lerp_generators(A, B, 0.25)
    for k, v in mid.state_dict().items():
        a, b = A.state_dict()[k], B.state_dict()[k]
        if v.is_floating_point():
            assert torch.allclose(v, 0.75 * a + 0.25 * b, atol=1e-6)
    assert all(torch.equal(v, A.state_dict()[k]) for k, v in lerp_generators(A, B, 0.0).state_dict().items())
    with pytest.raises(VideoError, match="architecture"):
        lerp_generators(A, make_tiny_generator(resolution=16), 0.5)


def test_the_walk_loops_through_its_seeds():
    G = make_tiny_generator()
    first = walk_codes(G, [3, 4, 5], 0.0)
    assert torch.allclose(walk_codes(G, [3, 4, 5], 1.0), first)  # back to the start
    with torch.no_grad():
        z4 = torch.randn(G.z_dim, generator=torch.Generator().manual_seed(4))[None]
        assert torch.allclose(walk_codes(G, [3, 4, 5], 1 / 3), G.mapping(z4), atol=1e-5)
    assert torch.allclose(walk_codes(G, [3, 4], 0.25, space="w"),
                          0.5 * walk_codes(G, [3], 0.0) + 0.5 * walk_codes(G, [4], 0.0), atol=1e-5)


def test_domain_panel_is_the_base_at_0_and_the_domain_at_1():
    from nada.domains.domain import Domain

    G = make_tiny_generator().eval()
    vectors = {f"stylespace/{u.name}": torch.full((c.in_channel,), 0.7) for u, c in G.modulated_convs()}
    d = Domain("stylespace", vectors)
    frames = render_video([Panel.domain("d", G, d)], 3, seeds=[1], progress=False)
    base = render_video([Panel.fixed("b", G)], 1, seeds=[1], progress=False)
    full = render_video([Panel.fixed("f", d.apply(G, allow_other_base=True))], 1, seeds=[1], progress=False)
    assert np.array_equal(frames[0], base[0]) and np.array_equal(frames[-1], full[0])
    assert not np.array_equal(frames[0], frames[-1])


def test_a_2x2_grid_video_is_written_as_mp4_and_gif_and_reads_back(tmp_path):
    import imageio.v3 as iio

    A, B = make_tiny_generator(seed=0), make_tiny_generator(seed=1)
    panels = [Panel.fixed("base", A), Panel.towards("b", A, B), Panel.fixed("c", B), Panel.fixed("d", A)]
    frames = render_video(panels, 5, seeds=[0, 1], walk=True, progress=False)
    assert frames.shape == (5, 2 + 2 * (32 + 2), 2 + 2 * (32 + 2), 3) and frames.dtype == np.uint8
    write_video(frames, tmp_path / "v.mp4", fps=10)
    write_video(frames, tmp_path / "v.gif", fps=10)
    video = iio.imread(tmp_path / "v.mp4", plugin="FFMPEG")
    assert video.shape == frames.shape  # frame count and size
    assert np.abs(video.astype(int) - frames.astype(int)).mean() < 20  # lossy, but the same pictures
    gif = iio.imread(tmp_path / "v.gif", index=None)
    assert gif.shape[:3] == frames.shape[:3]
    with pytest.raises(VideoError, match="mp4 or .gif"):
        write_video(frames, tmp_path / "v.avi")


def test_cli_video_panels_and_refusals(tmp_path, capsys):
    from nada import save_generator
    from nada.cli import main

    base = tmp_path / "g.safetensors"
    save_generator(make_tiny_generator(), base)
    adapted = tmp_path / "sketchy" / "generator.safetensors"
    adapted.parent.mkdir()
    save_generator(make_tiny_generator(seed=2), adapted)
    out = tmp_path / "v.gif"
    assert main(["video", "--generator", str(base), "--panel", "base", "--panel", str(adapted), "--interpolate",
                 "--walk", "--seeds", "0-2", "--frames", "4", "--out", str(out), "--no-progress"]) == 0
    assert out.is_file() and "(base, sketchy)" in capsys.readouterr().out
    for extra, message in ((["--out", str(tmp_path / "v.avi")], ".mp4 or .gif"),
                           (["--frames", "0"], "frames"),
                           (["--panel", str(tmp_path / "missing.safetensors")], "missing")):
        argv = ["video", "--generator", str(base), "--out", str(tmp_path / "w.gif"), "--no-progress", *extra]
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own refusals exit at once
            code = e.code
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
        assert not (tmp_path / "w.gif").exists()


def test_latents_and_a_mapper_drive_the_video(tmp_path):
    from nada import save_generator
    from nada.cli import main
    from nada.inversion import save_latents
    from nada.mapper import LevelsMapper, save_mapper

    G = make_tiny_generator().eval()
    base = tmp_path / "g.safetensors"
    save_generator(G, base)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(4))).detach()
    save_latents(tmp_path / "l.safetensors", ws, ["a", "b"])
    # a walk through latents starts at the first code and comes back to it
    frames = render_video([Panel.fixed("g", G)], 3, latents=ws, walk=True, progress=False)
    still = render_video([Panel.fixed("g", G)], 1, latents=ws[:1], progress=False)
    assert np.array_equal(frames[0], still[0]) and np.array_equal(frames[-1], still[0])
    # a mapper moves every code before drawing
    mapper = LevelsMapper(G.num_ws, G.w_dim)
    with torch.no_grad():
        for p in mapper.parameters():
            p.normal_(0, 0.5)
    save_mapper(tmp_path / "m.safetensors", mapper, multiplier=1.0)
    plain, mapped = tmp_path / "plain.gif", tmp_path / "mapped.gif"
    common = ["video", "--generator", str(base), "--latents", str(tmp_path / "l.safetensors"), "--frames", "2", "--no-progress"]
    assert main([*common, "--out", str(plain)]) == 0
    assert main([*common, "--mapper", str(tmp_path / "m.safetensors"), "--out", str(mapped)]) == 0
    import imageio.v3 as iio

    a, b = iio.imread(plain, index=None), iio.imread(mapped, index=None)
    assert a.shape == b.shape and a.shape[2] > a.shape[1]  # two codes side by side
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0
