"""``nada sample`` and the sampling API behind it."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from nada.cli import main
from nada.generators.checkpoints import load_generator, save_generator
from nada.sampling import sample_images, write_samples


def read_png(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def same_image(a, b):
    # different batch sizes change float summation order, which may move a pixel by one level
    return np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_sample_tiny_writes_pngs_and_grid(tmp_path, capsys):
    out = tmp_path / "samples"
    assert main(["sample", "--generator", "tiny", "--out", str(out), "--n", "5", "--seed", "3", "--batch-size", "2"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["000003.png", "000004.png", "000005.png", "000006.png", "000007.png", "grid.png"]
    first = read_png(out / "000003.png")
    assert first.shape == (32, 32, 3) and first.std() > 0  # a real image, not a constant
    assert read_png(out / "grid.png").shape[0] > 32  # several tiles
    printed = capsys.readouterr().out
    assert str(out) in printed and "5 images" in printed


def test_images_depend_only_on_their_seed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["sample", "--generator", "tiny", "--out", str(a), "--n", "4", "--seed", "10", "--batch-size", "3"]) == 0
    assert main(["sample", "--generator", "tiny", "--out", str(b), "--n", "2", "--seed", "12", "--batch-size", "1"]) == 0
    for name in ("000012.png", "000013.png"):
        assert same_image(read_png(a / name), read_png(b / name)), name
    assert not same_image(read_png(a / "000010.png"), read_png(a / "000011.png"))


def test_truncation_and_noise_modes_change_images(tmp_path):
    G = load_generator("tiny")
    base = sample_images(G, 2, seed=0)
    assert base.shape == (2, 3, 32, 32) and base.dtype == torch.float32
    truncated = sample_images(G, 2, seed=0, truncation_psi=0.5)
    assert not torch.allclose(base, truncated)
    # psi = 0 collapses every image onto the mean latent's image
    collapsed = sample_images(G, 2, seed=0, truncation_psi=0.0)
    torch.testing.assert_close(collapsed[0], collapsed[1], rtol=0, atol=1e-6)
    rand1 = sample_images(G, 3, seed=5, noise_mode="random", batch_size=2)
    rand2 = sample_images(G, 3, seed=5, noise_mode="random", batch_size=3)
    torch.testing.assert_close(rand1, rand2, rtol=0, atol=1e-5)  # random noise is seeded per image too (BLAS order differs per batch)
    assert not torch.allclose(rand1, sample_images(G, 3, seed=5))


def test_tiny_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    G1 = load_generator("tiny")
    after = torch.rand(1)
    G2 = load_generator("tiny")
    assert torch.equal(before, after)
    for (k, v1), v2 in zip(G1.state_dict().items(), G2.state_dict().values()):
        assert torch.equal(v1, v2), k


def test_sample_from_a_checkpoint_file(tmp_path):
    G = load_generator("tiny")
    path = save_generator(G, tmp_path / "tiny.safetensors")
    out1, out2 = tmp_path / "o1", tmp_path / "o2"
    assert main(["sample", "--generator", str(path), "--out", str(out1), "--n", "2", "--truncation", "0.7"]) == 0
    assert main(["sample", "--generator", "tiny", "--out", str(out2), "--n", "2", "--truncation", "0.7"]) == 0
    assert np.array_equal(read_png(out1 / "000000.png"), read_png(out2 / "000000.png"))  # same batch size: exact


def test_write_samples_names_and_grid(tmp_path):
    images = torch.linspace(-1, 1, 3 * 3 * 4 * 4).reshape(3, 3, 4, 4)
    files = write_samples(images, tmp_path / "w", first_seed=7)
    assert [p.name for p in files.images] == ["000007.png", "000008.png", "000009.png"]
    assert files.grid.name == "grid.png"
    expected = ((images[1].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(read_png(files.images[1]), expected)
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["000007.png", "000008.png", "000009.png", "grid.png"]


@pytest.mark.parametrize("argv", [
    ["sample", "--generator", "tiny", "--out", "x", "--n", "0"],
    ["sample", "--generator", "tiny", "--out", "x", "--seed", "-1"],
    ["sample", "--generator", "tiny", "--out", "x", "--noise-mode", "loud"],
    ["sample", "--out", "x"],
])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "sample" in capsys.readouterr().err


def test_console_entry_point_runs(tmp_path):
    """The README's first command, as a subprocess (fresh interpreter, installed entry point)."""
    out = tmp_path / "samples"
    proc = subprocess.run([sys.executable, "-m", "nada.cli", "sample", "--generator", "tiny", "--out", str(out), "--n", "2"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert (out / "grid.png").is_file() and (out / "000001.png").is_file()


def test_bad_device_is_a_one_line_error(tmp_path, capsys):
    devices = ["nonsense"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in devices:
        assert main(["sample", "--generator", "tiny", "--out", str(tmp_path / "o"), "--device", device]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"nada: error: --device {device}") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
