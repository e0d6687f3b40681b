"""LPIPS-VGG: the standard weight layouts load (through the safe reader), the distance matches a
straightforward float64 computation, foreign files are refused in one line, and inversion can use it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nada.errors import CheckpointError
from nada.lpips import LPIPS_CHANNELS, SCALE, SHIFT, VGG16_CONVS, load_lpips


def zoo_vgg16(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, cin, cout in VGG16_CONVS:
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        state[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    state["classifier.0.weight"] = torch.zeros(4, 4)  # the model zoo's classifier: ignored
    return state


def lpips_lins(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(LPIPS_CHANNELS)}


@pytest.fixture
def files(tmp_path):
    torch.save(zoo_vgg16(), tmp_path / "vgg16.pth")
    torch.save(lpips_lins(), tmp_path / "vgg.pth")
    return tmp_path / "vgg16.pth", tmp_path / "vgg.pth"


def reference(x: torch.Tensor, y: torch.Tensor, vgg: dict, lins: dict) -> torch.Tensor:
    """LPIPS written out in float64, layer by layer."""
    shift = torch.tensor(SHIFT, dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor(SCALE, dtype=torch.float64).view(1, 3, 1, 1)

    def feats(z):
        z = (z.double() - shift) / scale
        out = []
        for i, _, _ in VGG16_CONVS:
            z = F.relu(F.conv2d(z, vgg[f"features.{i}.weight"].double(), vgg[f"features.{i}.bias"].double(), padding=1))
            if i in (2, 7, 14, 21, 28):
                out.append(z)
            if i in (2, 7, 14, 21):
                z = F.max_pool2d(z, 2)
        return out

    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for k, (a, b) in enumerate(zip(feats(x), feats(y))):
        na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = lins[f"lin{k}.model.1.weight"].double().view(1, -1, 1, 1)
        total += ((na - nb).pow(2) * w).sum(1).mean((1, 2))
    return total


def test_lpips_matches_a_float64_computation(files):
    model = load_lpips(*files)
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    want = reference(x, y, zoo_vgg16(), lpips_lins())
    assert torch.allclose(model(x, y).double(), want, rtol=1e-4)
    assert torch.allclose(model(x, x), torch.zeros(2), atol=1e-7)


def test_safetensors_weights_load_too(tmp_path):
    from safetensors.torch import save_file

    save_file(zoo_vgg16(), str(tmp_path / "vgg16.safetensors"))
    save_file(lpips_lins(), str(tmp_path / "lin.safetensors"))
    assert isinstance(load_lpips(tmp_path / "vgg16.safetensors", tmp_path / "lin.safetensors")(
        torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)).item(), float)


def test_foreign_layouts_are_refused_in_one_line(tmp_path, files):
    vgg = zoo_vgg16()
    vgg["features.3.weight"] = vgg.pop("features.2.weight")  # another network's numbering
    torch.save(vgg, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="expected ImageNet VGG16 weights \\(features.2.weight"):
        load_lpips(tmp_path / "other.pth", files[1])
    lins = lpips_lins()
    lins["lin4.model.1.weight"] = torch.rand(1, 256, 1, 1)
    torch.save(lins, tmp_path / "lin_bad.pth")
    with pytest.raises(CheckpointError, match="LPIPS linear layers"):
        load_lpips(files[0], tmp_path / "lin_bad.pth")


def test_inversion_and_the_cli_use_lpips(files, tmp_path, capsys):
    from fixtures import make_tiny_generator
    from nada import save_generator
    from nada.cli import main
    from nada.inversion import invert

    G = make_tiny_generator().eval().requires_grad_(False)
    target = torch.zeros(1, 3, G.resolution, G.resolution)
    r = invert(G, target, w_steps=2, wplus_steps=2, w_avg_samples=100, lpips=load_lpips(*files), progress=False)
    assert torch.isfinite(r.distances).all()
    base = tmp_path / "g.safetensors"
    save_generator(G, base)
    from PIL import Image

    Image.new("RGB", (40, 32), (200, 30, 30)).save(tmp_path / "p.png")
    argv = ["invert", str(tmp_path / "p.png"), "--generator", str(base), "--w-steps", "2", "--wplus-steps", "2",
            "--w-avg-samples", "100", "--no-progress"]
    assert main(argv + ["--lpips-vgg", str(files[0]), "--lpips-lin", str(files[1]), "--out", str(tmp_path / "o")]) == 0
    capsys.readouterr()
    assert main(argv + ["--lpips-vgg", str(files[0]), "--out", str(tmp_path / "no")]) == 2
    assert "--lpips-lin" in capsys.readouterr().err and not (tmp_path / "no").exists()
