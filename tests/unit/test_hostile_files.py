"""Every hostile or malformed generator file is refused in one line, runs no code and is never
handed to ``torch.load`` / ``torch.jit.load`` (time and memory per file: benchmarks/hostile_inputs.py)."""
from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
import torch

from hostile_files import ATTACKS, tiny_state_dict, torch_bytes
from nada.generators.checkpoints import CheckpointError, load_generator


@pytest.fixture
def no_torch_load(monkeypatch):
    """Fail the test if anything reaches torch's own loaders."""
    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load / torch.jit.load must never be called on a user file")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(torch.jit, "load", forbidden)


@pytest.mark.parametrize("name, make, expected", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_hostile_generator_file_is_refused_in_one_line(tmp_path, no_torch_load, name, make, expected):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    path.write_bytes(make(marker))
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message and str(path) in message
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # nothing written


@pytest.mark.parametrize("kind", ["zip", "legacy", "pickle"])
def test_valid_files_still_load_without_torch_load(tmp_path, no_torch_load, kind):
    sd = tiny_state_dict()
    path = tmp_path / "g.bin"
    data = pickle.dumps({"g_ema": sd}, protocol=4) if kind == "pickle" else torch_bytes({"g_ema": sd}, zip_format=kind == "zip")
    path.write_bytes(data)
    G = load_generator(path)
    for k, v in sd.items():
        assert torch.equal(G.state_dict()[k], v), k


def test_shared_and_strided_storages_read_exactly(tmp_path):
    """Views torch writes legitimately (a transposed tensor, two tensors on one storage) come back equal."""
    from nada.generators.safe_torch import read_torch_file

    base = torch.arange(12.0).reshape(3, 4)
    obj = {"t": base.t(), "row": base[1], "base": base}
    for zip_format in (True, False):
        path = tmp_path / f"views{zip_format}.pt"
        path.write_bytes(torch_bytes(obj, zip_format=zip_format))
        out = read_torch_file(path)
        for k in obj:
            assert torch.equal(out[k], obj[k]) and out[k].stride() == obj[k].stride(), k


def test_format_is_recognised_by_content_not_extension(tmp_path):
    sd = tiny_state_dict()
    for name, data in [("zip.safetensors", torch_bytes({"g_ema": sd})), ("legacy.pkl", torch_bytes({"g_ema": sd}, False)),
                       ("plain.pt", pickle.dumps({"g_ema": sd}))]:
        (tmp_path / name).write_bytes(data)
        assert torch.equal(load_generator(tmp_path / name).state_dict()["style.1.weight"], sd["style.1.weight"]), name


def test_loaders_ignore_torch_force_weights_only_load(tmp_path):
    """With TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 valid checkpoints of every layout still load (we never call torch.load)."""
    sd = tiny_state_dict()
    for i, data in enumerate([torch_bytes({"g_ema": sd}), torch_bytes({"g_ema": sd}, False), pickle.dumps({"g_ema": sd})]):
        (tmp_path / f"{i}.pt").write_bytes(data)
    code = ("import sys; from nada import load_generator\n"
            f"for i in range(3): load_generator(r'{tmp_path}/' + str(i) + '.pt')\nprint('ok')")
    env = {"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-500:]


def test_checksum_catches_a_flipped_bit(tmp_path):
    from nada.generators.checkpoints import save_generator
    from nada.generators.stylegan2 import Generator, GeneratorConfig

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4}))
    path = save_generator(G, tmp_path / "g.safetensors")
    load_generator(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x04  # one bit of the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_generator(path)


@pytest.mark.parametrize("kind", ["zip", "legacy", "pickle", "safetensors"])
def test_random_damage_never_escapes_as_another_error(tmp_path, kind):
    """Flipped bytes, zeroed runs and cuts anywhere in a valid file: it loads or is refused in one line."""
    import random

    from nada.generators.checkpoints import save_generator
    from nada.generators.stylegan2 import Generator, GeneratorConfig

    sd = tiny_state_dict()
    good = tmp_path / "good"
    if kind == "safetensors":
        torch.manual_seed(0)
        save_generator(Generator(GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4})), good)
    elif kind == "pickle":
        good.write_bytes(pickle.dumps({"g_ema": sd, "latent_avg": torch.zeros(8)}, protocol=4))
    else:
        good.write_bytes(torch_bytes({"g_ema": sd, "latent_avg": torch.zeros(8)}, zip_format=kind == "zip"))
    data = good.read_bytes()
    rng = random.Random(kind)
    bad = tmp_path / "bad"
    for trial in range(150):
        damaged = bytearray(data)
        how = trial % 3
        if how == 0:
            for _ in range(rng.randint(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        elif how == 1:
            start = rng.randrange(len(damaged))
            damaged[start:start + rng.randint(1, 64)] = bytes(min(64, len(damaged) - start))
        else:
            damaged = damaged[: rng.randrange(1, len(damaged))]
        bad.write_bytes(bytes(damaged))
        try:
            load_generator(bad)
        except CheckpointError as e:
            assert "\n" not in str(e)


def test_safetensors_whose_header_length_looks_like_a_pickle_mark(tmp_path):
    """A header of 0x380 bytes starts with 80 03, a pickle's protocol-3 mark: still read as safetensors."""
    from safetensors.torch import save_file

    from nada.generators.checkpoints import sniff_format

    path = tmp_path / "x.safetensors"
    for pad in range(0x380):
        save_file({"w": torch.zeros(2)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:2] == b"\x80\x03":
            break
    assert path.read_bytes()[:2] == b"\x80\x03"
    assert sniff_format(path) == "safetensors"
    with pytest.raises(CheckpointError, match="expected a nada generator .safetensors"):
        load_generator(path)  # read as what it is (a safetensors file of another program), not as a pickle
