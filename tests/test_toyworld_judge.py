"""The shipped judge loads frozen and agrees with the renderer's labels on fresh renders."""
from __future__ import annotations

import pytest
import torch

from nada.toyworld.assets import JUDGE_DIR
from nada.toyworld.judge import Judge, JudgeConfig, JudgeNet, load_judge, save_judge
from nada.toyworld.renderer import render_batch


@pytest.fixture(scope="module")
def judge():
    return load_judge()


def test_judge_agrees_with_renderer(judge):
    images, labels = render_batch(100, seed=424_242)  # a seed no training run used
    pred = judge.predict(images)
    for k in ("style", "shape", "colour"):
        assert pred[k].dtype == torch.long and pred[k].shape == (100,)
        acc = (pred[k] == labels[k]).float().mean().item()
        assert acc >= 0.95, f"{k} accuracy {acc:.2f}"
    err = (pred["position"] - labels["position"]).norm(dim=1)
    assert pred["position"].shape == (100, 2)
    assert err.median() < 2.0


def test_judge_is_frozen_small_and_checks_input(judge):
    assert not judge.net.training
    assert all(not p.requires_grad for p in judge.net.parameters())
    assert (JUDGE_DIR / "judge.safetensors").stat().st_size <= 3 * 2**20
    feats = judge.features(render_batch(3, seed=1)[0])
    assert feats.shape == (3, judge.net.config.feature_dim) and torch.isfinite(feats).all()
    with pytest.raises(ValueError, match=r"\(N, 3, 64, 64\)"):
        judge.predict(torch.zeros(2, 3, 32, 32))
    assert judge.predict(torch.zeros(0, 3, 64, 64))["position"].shape == (0, 2)


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = JudgeNet(JudgeConfig(widths=(8, 8, 8, 8), feature_dim=8))
    net.eval()
    save_judge(net, tmp_path)
    loaded = load_judge(directory=tmp_path)
    x = render_batch(4, seed=2)[0]
    ref = net(x)
    got = loaded.logits(x)
    # weights are stored in float16
    assert torch.allclose(got["style"], ref["style"], atol=1e-2)
    assert torch.allclose(got["position"], ref["position"], atol=1e-2)
    with pytest.raises(FileNotFoundError):
        load_judge(directory=tmp_path / "missing")


def test_adaptation_code_does_not_import_the_judge():
    import pathlib

    src = pathlib.Path(__file__).resolve().parents[1] / "src" / "nada"
    for sub in ("adapt", "guidance", "generators"):
        for f in (src / sub).rglob("*.py"):
            text = f.read_text()
            for needle in ("toyworld.judge", "load_judge", "JudgeNet", "toyworld import judge"):
                assert needle not in text, f"{f} uses the judge ({needle})"
