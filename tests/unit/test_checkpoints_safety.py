"""Hostile pickles are refused before anything in them runs; damaged or foreign files give one-line errors."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys

import pytest
import torch

from nada.generators import safe_pickle, safe_torch
from nada.generators.checkpoints import CheckpointError, UnsafePickleError, load_generator, save_generator
from nada.generators.stylegan2 import Generator, GeneratorConfig


def tiny(seed=0):
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4}))
    G.set_w_avg(torch.zeros(8))
    return G


class CallsGlobal:
    """Pickles as ``func(*args)``: the classic way to make unpickling run code."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def payloads(marker):
    """(payload object, global name the pickle asks for): each would create ``marker`` if run."""
    m = str(marker)
    return [
        (CallsGlobal(os.system, f"touch {m}"), f"{os.system.__module__}.system"),
        (CallsGlobal(open, m, "w"), f"{open.__module__}.open"),
        (CallsGlobal(subprocess.Popen, ["touch", m]), "subprocess.Popen"),
        (CallsGlobal(exec, f"open({m!r}, 'w').close()"), "builtins.exec"),
        (CallsGlobal(eval, f"open({m!r}, 'w')"), "builtins.eval"),
    ]


@pytest.mark.parametrize("index", range(5))
@pytest.mark.parametrize("container", ["pickle", "torch-zip", "torch-legacy"])
def test_unsafe_pickle_is_refused_and_runs_nothing(tmp_path, index, container):
    marker = tmp_path / "pwned"
    payload, global_name = payloads(marker)[index]
    path = tmp_path / "evil.pt"
    checkpoint = {"g_ema": {"style.1.weight": torch.zeros(2, 2)}, "args": payload}
    if container == "pickle":
        path.write_bytes(pickle.dumps(checkpoint, protocol=4))
    else:
        torch.save(checkpoint, path, _use_new_zipfile_serialization=(container == "torch-zip"))
    assert not marker.exists()
    with pytest.raises(UnsafePickleError) as info:
        load_generator(path)
    message = str(info.value)
    assert not marker.exists(), "the payload ran"
    assert global_name in message and str(path) in message and "\n" not in message
    assert isinstance(info.value, CheckpointError)


def test_payload_hidden_in_a_nested_storage_blob_is_refused(tmp_path):
    """torch pickles storages as torch.storage._load_from_bytes(<torch.save bytes>); the blob is restricted too."""
    marker = tmp_path / "pwned"
    inner = io.BytesIO()
    torch.save(CallsGlobal(os.system, f"touch {marker}"), inner, _use_new_zipfile_serialization=False)
    outer = CallsGlobal(torch.storage._load_from_bytes, inner.getvalue())
    path = tmp_path / "nested.pkl"
    path.write_bytes(pickle.dumps({"G_ema": outer}, protocol=4))
    with pytest.raises(UnsafePickleError, match="system"):
        load_generator(path)
    assert not marker.exists()


def test_control_the_payload_really_would_run(tmp_path):
    """Guards the tests above: with the ordinary unpickler the same bytes do create the file."""
    marker = tmp_path / "pwned"
    data = pickle.dumps(CallsGlobal(open, str(marker), "w"))
    pickle.loads(data).close()
    assert marker.exists()


def test_allow_list_still_reads_plain_data():
    import argparse
    import collections

    import numpy as np

    obj = {"a": collections.OrderedDict(x=torch.arange(3.0)), "n": argparse.Namespace(size=8), "s": {1, 2},
           "f": frozenset({3}), "arr": np.arange(4, dtype=np.float32), "sc": np.float64(0.5), "dt": torch.float16}
    out = safe_torch.read_pickle_bytes(pickle.dumps(obj, protocol=4))
    assert torch.equal(out["a"]["x"], torch.arange(3.0)) and out["n"].size == 8 and out["s"] == {1, 2}
    assert out["f"] == frozenset({3}) and out["arr"].tolist() == [0, 1, 2, 3] and out["sc"] == 0.5 and out["dt"] is torch.float16
    out2 = safe_torch.read_pickle_bytes(pickle.dumps(obj, protocol=2))
    assert out2["n"].size == 8 and out2["arr"].tolist() == [0, 1, 2, 3]


def test_numpy_object_arrays_cannot_smuggle_globals(tmp_path):
    import numpy as np

    marker = tmp_path / "pwned"
    arr = np.array([CallsGlobal(open, str(marker), "w")], dtype=object)
    with pytest.raises(UnsafePickleError):
        safe_pickle.loads(pickle.dumps(arr, protocol=4))
    assert not marker.exists()


# ============================================================================ damaged and foreign files


def one_line_error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


@pytest.fixture
def good_files(tmp_path):
    G = tiny()
    files = {}
    files["zip"] = tmp_path / "zip.pt"
    torch.save({"g_ema": G.state_dict()}, files["zip"])
    files["legacy"] = tmp_path / "legacy.pt"
    torch.save({"g_ema": G.state_dict()}, files["legacy"], _use_new_zipfile_serialization=False)
    files["pickle"] = tmp_path / "plain.pkl"
    files["pickle"].write_bytes(pickle.dumps({"g_ema": G.state_dict()}, protocol=4))
    files["safetensors"] = save_generator(G, tmp_path / "g.safetensors")
    return files


@pytest.mark.parametrize("kind", ["zip", "legacy", "pickle", "safetensors"])
def test_truncated_files(good_files, tmp_path, kind):
    load_generator(good_files[kind])  # the intact file loads
    data = good_files[kind].read_bytes()
    cut = tmp_path / f"cut-{kind}.bin"
    cut.write_bytes(data[: len(data) // 2])
    message = one_line_error(cut)
    assert "truncated" in message or "damaged" in message


def test_corrupted_bytes_in_the_middle(good_files, tmp_path):
    data = bytearray(good_files["zip"].read_bytes())
    start = len(data) // 3
    data[start:start + 64] = b"\x00" * 64
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(bytes(data))
    message = one_line_error(bad)
    assert "corrupted" in message or "expected" in message


@pytest.mark.parametrize("content,found", [
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "a PNG image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "a JPEG image"),
    (b"these are not the weights you are looking for\n", "a text file"),
    (b"", "an empty file"),
    (bytes(range(200, 256)) * 3, "unrecognised data"),
])
def test_files_of_another_kind(tmp_path, content, found):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    message = one_line_error(path)
    assert "expected a StyleGAN2 generator checkpoint" in message and found in message


def test_missing_file_and_unknown_name(tmp_path):
    message = one_line_error(tmp_path / "nope.pt")
    assert "no such file" in message
    with pytest.raises(CheckpointError) as info:
        load_generator("no-such-generator")
    assert "known:" in str(info.value) and "tiny" in str(info.value) and "ffhq-1024" in str(info.value)


def test_state_dict_of_no_known_layout(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": {"encoder.weight": torch.zeros(3)}}, path)
    assert "found a dict with keys [model]" in one_line_error(path)

    G = tiny()
    sd = G.state_dict()
    del sd["convs.1.noise.weight"]
    torch.save({"g_ema": sd}, path)
    assert "missing 1 keys (e.g. convs.1.noise.weight)" in one_line_error(path)

    sd = G.state_dict()
    sd["convs.0.activate.bias"] = torch.zeros(5)
    torch.save({"g_ema": sd}, path)
    assert "shape mismatches" in one_line_error(path)

    sd = G.state_dict()
    sd["extra.weight"] = torch.zeros(1)
    torch.save({"g_ema": sd}, path)
    assert "unexpected keys (e.g. extra.weight)" in one_line_error(path)


def test_non_finite_weights_are_reported(tmp_path):
    sd = tiny().state_dict()
    sd["conv1.activate.bias"][0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save({"g_ema": sd}, path)
    assert "NaN or infinite values in conv1.activate.bias" in one_line_error(path)


def test_safetensors_from_another_program(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    assert "expected a nada generator .safetensors" in one_line_error(path)


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
    from nada.cli import main

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert main(["sample", "--generator", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a PNG image" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_unsafe_pickle_exit_code_in_a_subprocess(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(CallsGlobal(os.system, f"touch {marker}")))
    proc = subprocess.run([sys.executable, "-m", "nada.cli", "sample", "--generator", str(path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "refusing to unpickle" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists()
