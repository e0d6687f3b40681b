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

    src = pathlib.Path(__file__).resolve().parents[2] / "src" / "nada"
    for sub in ("adapt", "guidance", "generators"):
        for f in (src / sub).rglob("*.py"):
            text = f.read_text()
            for needle in ("toyworld.judge", "load_judge", "JudgeNet", "toyworld import judge"):
                assert needle not in text, f"{f} uses the judge ({needle})"


def test_blend_styles_mixes_each_scene_with_itself_in_another_style():
    import numpy as np

    from nada.toyworld.judge_train import blend_styles
    from nada.toyworld.renderer import STYLES, Scene, render, sample_scenes

    scenes = sample_scenes(6, np.random.default_rng(4))
    images = render(scenes)
    mixed, keep, other = blend_styles(images, scenes, torch.Generator().manual_seed(1), lowest=0.5, highest=0.5)
    again = blend_styles(images, scenes, torch.Generator().manual_seed(1), lowest=0.5, highest=0.5)[0]
    assert torch.equal(mixed, again) and torch.equal(keep, torch.full((6,), 0.5))
    # with an even mix, 2 * mixed - image is exactly a render of the same scene in some other style
    rest = 2 * mixed - images
    for i, sc in enumerate(scenes):
        errs = {st: float((rest[i] - render([Scene(**{**sc.as_dict(), "style": st})])[0]).abs().max()) for st in STYLES}
        best = min(errs, key=errs.get)
        assert errs[best] < 1e-5 and best != sc.style and STYLES[int(other[i])] == best
    # the share kept of each image lies in [lowest, highest]
    whole = blend_styles(images, scenes, torch.Generator().manual_seed(2), lowest=1.0, highest=1.0)[0]
    assert torch.allclose(whole, images)
    with pytest.raises(ValueError):
        blend_styles(images[:2], scenes, torch.Generator())
    with pytest.raises(ValueError):
        blend_styles(images, scenes, torch.Generator(), lowest=0.9, highest=0.1)


def test_train_judge_with_blends_runs_and_records_the_share(tmp_path):
    import json

    from nada.toyworld.judge_train import train_judge

    summary = train_judge(tmp_path / "j", steps=2, batch=8, pool_size=32, eval_every=1, tone_jitter=0.5,
                          style_blend=0.5, blend_style_labels="soft", log=lambda m: None)
    assert summary["style_blend"] == 0.5 and summary["blend_style_labels"] == "soft" and summary["steps"] == 2
    assert set(summary["heldout_2000_style_blended"]) == {"shape", "colour", "position_within_2px", "position_error_median_px",
                                                          "style_dominant"}
    saved = json.loads((tmp_path / "j" / "config.json").read_text())
    assert load_judge(directory=tmp_path / "j").net.config == JudgeConfig()
    assert "style_blend" in json.dumps(saved)
    with pytest.raises(ValueError, match="style_blend"):
        train_judge(tmp_path / "k", steps=1, style_blend=1.5, log=lambda m: None)
    with pytest.raises(ValueError, match="blend_style_labels"):
        train_judge(tmp_path / "k", steps=1, blend_style_labels="hard", log=lambda m: None)
