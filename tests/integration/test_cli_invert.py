"""`nada invert` and `nada translate` on tiny random generators: outputs exist and load, bad input is one
line and writes nothing."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fixtures import make_tiny_generator
from nada import save_generator
from nada.cli import main
from nada.inversion import load_latents

FAST = ["--w-steps", "4", "--wplus-steps", "4", "--w-avg-samples", "100", "--no-progress"]


@pytest.fixture
def base(tmp_path):
    path = tmp_path / "base.safetensors"
    save_generator(make_tiny_generator(), path)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("a", (40, 30)), ("b", (32, 32))):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def test_invert_writes_latents_reconstructions_grid_and_report(base, photos, tmp_path, capsys):
    out = tmp_path / "inv"
    assert main(["invert", str(photos), "--generator", str(base), "--out", str(out), *FAST]) == 0
    G = make_tiny_generator()
    ws, names = load_latents(out / "latents.safetensors", G)
    assert ws.shape == (2, G.num_ws, G.w_dim) and names == ["a", "b"]
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == ["a.png", "b.png"]
    assert Image.open(out / "grid.png").size[0] > 64
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["images"]] == ["a", "b"] and all(r["distance"] > 0 for r in report["images"])
    assert "2 images" in capsys.readouterr().out
    # the reconstruction file is what the latents draw
    with torch.no_grad():
        drawn = G.synthesis(ws[:1], noise_mode="const")
    from nada.imaging import load_image

    assert (load_image(out / "reconstructions" / "a.png") - drawn[0].clamp(-1, 1)).abs().max() < 2 / 255 + 1e-6


def test_translate_draws_each_target(base, photos, tmp_path):
    adapted = tmp_path / "adapted" / "generator.safetensors"
    adapted.parent.mkdir()
    save_generator(make_tiny_generator(seed=3), adapted)
    from nada.domains.domain import save_domain

    G = make_tiny_generator()
    vectors = {f"stylespace/{u.name}": torch.full((c.in_channel,), 0.5) for u, c in G.modulated_convs()}
    dom = tmp_path / "bright" / "domain.safetensors"
    dom.parent.mkdir()
    save_domain(dom, "stylespace", vectors, G)
    out = tmp_path / "tr"
    assert main(["translate", str(photos / "a.png"), "--generator", str(base), "--domain", str(dom),
                 "--domain", f"{dom}:0.5", "--adapted", str(adapted), "--out", str(out), *FAST]) == 0
    assert {p.name for p in out.iterdir()} >= {"a.png", "bright", "bright_0.5", "adapted", "latents.safetensors",
                                                "report.json", "reconstructions", "grid.png"}
    row = Image.open(out / "a.png")
    assert row.size[0] > 4 * row.size[1]  # input, reconstruction and three targets side by side
    report = json.loads((out / "report.json").read_text())
    assert [t["folder"] for t in report["targets"]] == ["bright", "bright_0.5", "adapted"]
    a = np.asarray(Image.open(out / "bright" / "a.png")).astype(int)
    b = np.asarray(Image.open(out / "adapted" / "a.png")).astype(int)
    assert np.abs(a - b).max() > 0


@pytest.mark.parametrize("case, message", [
    ("missing", "no such image"),
    ("not_image", "not a readable image"),
    ("no_target", "at least one target"),
    ("bad_lr", "lr"),
    ("foreign_adapted", "latent space"),
])
def test_bad_input_is_one_line_and_writes_nothing(base, photos, tmp_path, capsys, case, message):
    out = tmp_path / "out"
    images = [str(photos)]
    cmd, extra = "invert", []
    if case == "missing":
        images = [str(tmp_path / "nope.png")]
    elif case == "not_image":
        (tmp_path / "x.png").write_text("hello")
        images = [str(tmp_path / "x.png")]
    elif case == "no_target":
        cmd = "translate"
    elif case == "bad_lr":
        extra = ["--lr", "nan"]
    elif case == "foreign_adapted":
        other = tmp_path / "other.safetensors"
        save_generator(make_tiny_generator(resolution=16), other)
        cmd, extra = "translate", ["--adapted", str(other)]
    assert main([cmd, *images, "--generator", str(base), "--out", str(out), *FAST, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nada: error:") and len(err.splitlines()) == 1 and message in err
    assert not out.exists()


@pytest.fixture
def e4e_checkpoint(tmp_path):
    from fixtures import make_tiny_encoder, save_encoder_checkpoint

    G = make_tiny_generator()
    E = make_tiny_encoder(G, "e4e", input_size=256)
    avg = G.mean_w().reshape(1, -1).repeat(G.num_ws, 1)
    return save_encoder_checkpoint(tmp_path / "e4e.pt", E, G, latent_avg=avg), E, avg


def test_invert_with_an_e4e_checkpoint_alone_uses_its_generator(e4e_checkpoint, photos, tmp_path):
    path, E, avg = e4e_checkpoint
    out = tmp_path / "inv"
    assert main(["invert", str(photos), "--encoder", str(path), "--out", str(out), "--no-progress",
                 "--w-avg-samples", "100"]) == 0
    G = make_tiny_generator()
    ws, names = load_latents(out / "latents.safetensors", G)
    from nada.inversion import list_images, load_images

    images = load_images(list_images([photos]), G.resolution)
    with torch.no_grad():
        torch.testing.assert_close(ws, E(images) + avg)  # no refinement asked: the encoder's codes
    report = json.loads((out / "report.json").read_text())
    assert report["encoder"]["kind"] == "e4e" and report["generator"] == str(path)
    refined = tmp_path / "refined"
    assert main(["translate", str(photos), "--adapted", str(path), "--encoder", str(path),  # the base: its decoder
                 "--refine-steps", "5", "--out", str(refined), "--no-progress", "--w-avg-samples", "100"]) == 0
    better = json.loads((refined / "report.json").read_text())["images"]
    assert all(b["distance"] < a["distance"] for a, b in zip(report["images"], better))


@pytest.mark.parametrize("extra, message", [
    ([], "give --generator"),
    (["--encoder-type", "psp", "--generator", "{base}"], "--encoder-type needs --encoder"),
    (["--encoder", "{other}", "--generator", "{base}"], "the encoder gives 8 codes of 32 values; this generator takes 6"),
    (["--encoder", "{base}", "--generator", "{base}"], "expected a torch.save file"),
    (["--generator", "{base}", "--refine-steps", "3"], "refine_steps refines an encoder"),
])
def test_encoder_misuse_is_one_line_and_writes_nothing(e4e_checkpoint, base, photos, tmp_path, capsys, extra, message):
    small = tmp_path / "small.safetensors"
    save_generator(make_tiny_generator(resolution=16), small)
    extra = [e.format(other=e4e_checkpoint[0], base=small if "{other}" in " ".join(extra) else base) for e in extra]
    out = tmp_path / "out"
    assert main(["invert", str(photos), "--out", str(out), *FAST, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nada: error:") and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_translate_without_a_generator_or_an_encoder_is_one_line(photos, tmp_path, capsys):
    assert main(["translate", str(photos), "--adapted", str(tmp_path / "a.safetensors"), "--out", str(tmp_path / "o"),
                 *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give --generator" in err and not (tmp_path / "o").exists()
