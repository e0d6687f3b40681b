"""The built-in world's evaluation: Fréchet distance, expectations, and the report's internal logic."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nada.toyworld.evaluate import EvaluateError, evaluate, frechet_distance, parse_expectations


def reference_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Straightforward float64 formula: tr sqrt(S_a S_b) from the eigenvalues of the (non-symmetric) product."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.linalg.eigvals(s_a @ s_b)
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(np.clip(eig.real, 0, None)).sum())


def test_frechet_distance_matches_reference():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(300, 6)) * 2 + 1
    got = frechet_distance(torch.from_numpy(a), torch.from_numpy(b))
    assert got == pytest.approx(reference_frechet(a, b), rel=1e-8)
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a)) == pytest.approx(0, abs=1e-8)
    # same covariance, shifted mean: the distance is the squared shift
    assert frechet_distance(torch.from_numpy(a), torch.from_numpy(a + 3.0)) == pytest.approx(9 * 6, rel=1e-9)


def test_parse_expectations():
    assert parse_expectations(["style=pixel_art", "color=Blue"]) == {"style": "pixel art", "colour": "blue"}
    with pytest.raises(EvaluateError, match="unknown label"):
        parse_expectations(["mood=happy"])
    with pytest.raises(EvaluateError, match="choose from"):
        parse_expectations(["shape=hexagon"])
    with pytest.raises(EvaluateError, match="LABEL=VALUE"):
        parse_expectations(["sketch"])
    with pytest.raises(EvaluateError, match="at least one"):
        parse_expectations([])


def tiny_64(seed):
    from nada.generators.stylegan2 import Generator, GeneratorConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Generator(GeneratorConfig(64, style_dim=16, n_mlp=1, channels={4: 16, 8: 16, 16: 8, 32: 8, 64: 8})).eval()


class FakeJudge:
    """Labels from simple image statistics, so the report's bookkeeping can be checked exactly."""

    def predict(self, images):
        m = images.mean(dim=(2, 3))  # (N, 3)
        n = len(images)
        return {"style": (m[:, 0] > 0).long(), "shape": (m[:, 1] > 0).long(), "colour": (m[:, 2] > 0).long(),
                "position": torch.stack([m[:, 0], m[:, 1]], 1) * 10, "n": n}

    def features(self, images):
        return images.mean(dim=(2, 3)).double()


class FakeClip:
    def encode_images(self, images, batch_size=None):
        e = torch.nn.functional.normalize(images.flatten(1)[:, :8], dim=1)
        return e

    def encode_texts(self, texts):
        return torch.nn.functional.normalize(torch.ones(len(texts), 8), dim=1)


def test_report_against_itself_and_against_another_generator():
    G = tiny_64(0)
    judge, clips = FakeJudge(), [FakeClip()]
    same = evaluate(G, ["style=sketch"], n=32, seed=0, base=G, judge=judge, clips=clips)
    assert same["target_rate"] == same["base_target_rate"]
    assert same["preserved"] == {"shape": 1.0, "colour": 1.0}
    assert same["position_shift_px"] == 0.0
    assert same["clip_quality"] == same["base_clip_quality"]
    other = tiny_64(1)
    diff = evaluate(other, ["style=sketch", "shape=square"], n=32, seed=0, base=G, judge=judge, clips=clips)
    assert set(diff["preserved"]) == {"colour"}
    # recompute target rate and preservation by hand from the fake judge's rule
    from nada.toyworld.evaluate import generate

    a, b = judge.predict(generate(other, 32, 0)), judge.predict(generate(G, 32, 0))
    sketch, square = 1, 1  # indices of "sketch" in STYLES and "square" in SHAPES
    want = ((a["style"] == sketch) & (a["shape"] == square)).float().mean().item()
    assert diff["target_rate"] == pytest.approx(want)
    assert diff["preserved"]["colour"] == pytest.approx((a["colour"] == b["colour"]).float().mean().item())
    assert 0.0 <= diff["clip_diversity"] <= 2.0


def test_resolution_mismatch_is_refused():
    from fixtures import make_tiny_generator

    with pytest.raises(EvaluateError, match="px"):
        evaluate(make_tiny_generator(), ["style=sketch"], n=4, base=tiny_64(0), judge=FakeJudge(), clips=[FakeClip()])


def test_cli_evaluate_takes_another_judge(tmp_path, capsys):
    import json
    import shutil

    from nada.cli import main
    from nada.toyworld.judge import JUDGE_DIR

    args = ["toyworld", "evaluate", "--generator", "toy", "--expect", "style=sketch", "--n", "8", "--json"]
    assert main(args) == 0
    shipped = json.loads(capsys.readouterr().out)
    # the base against itself: nothing changes, whichever judge reads it
    assert shipped["target_rate"] == shipped["base_target_rate"] and shipped["preserved"] == {"shape": 1.0, "colour": 1.0}
    copy = tmp_path / "judge"
    shutil.copytree(JUDGE_DIR, copy)
    assert main(args + ["--judge", str(copy)]) == 0
    assert json.loads(capsys.readouterr().out) == shipped
    assert main(args + ["--judge", str(tmp_path / "none")]) != 0
    assert "no judge in" in capsys.readouterr().err


def test_toyworld_train_is_part_of_the_one_cli(tmp_path, capsys):
    from PIL import Image

    from nada.cli import main

    out = tmp_path / "sheet.png"
    assert main(["toyworld", "train", "sheet", "--out", str(out), "--columns", "2", "--upscale", "1"]) == 0
    width, height = Image.open(out).size  # five rows of styles, two columns of scenes (plus grid padding)
    assert 128 <= width < 5 * 64 and 320 <= height < 6 * 64 and height > 2 * width
    with pytest.raises(SystemExit) as info:  # each trainer's own --help passes through
        main(["toyworld", "train", "judge", "--help"])
    assert info.value.code == 0 and "nada toyworld train judge" in capsys.readouterr().out
    assert main(["toyworld", "train", "bogus"]) == 2
