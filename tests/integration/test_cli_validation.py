"""Every bad option or path: one line `nada: error: ...`, exit status 2, nothing written."""
from __future__ import annotations

import json
import shutil

import pytest

from fixtures import make_tiny_generator
from nada.adapt.config import AdaptConfig, AdaptConfigError
from nada.cli import main
from nada.guidance.config import GuidanceConfig
from nada.guidance.errors import GuidanceError


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line_refusal(capsys, argv, tmp_path, *words):
    before = tree(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals (bad syntax, out-of-range flag values)
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("nada: error:") and err.count("\n") == 1, err
    for w in words:
        assert w.lower() in err.lower(), err
    assert tree(tmp_path) == before  # nothing written: no out dir, no files
    return err


@pytest.fixture
def base_file(tmp_path_factory):
    from nada import save_generator

    path = tmp_path_factory.mktemp("base") / "base.safetensors"
    save_generator(make_tiny_generator(), path)
    return path


BAD_ADAPT = [
    (["--lr", "nan"], "lr must be a finite number"),
    (["--lr", "inf"], "lr must be a finite number"),
    (["--lr", "0"], "lr must be a number > 0"),
    (["--lr", "-1"], "lr must be"),
    (["--train-truncation", "nan"], "train_truncation must be a finite number"),
    (["--train-truncation=-inf"], "train_truncation must be a finite number"),
    (["--sample-truncation", "nan"], "sample_truncation"),
    (["--auto-layer-lr", "nan"], "auto_layer_lr must be a finite number"),
    (["--auto-layer-lr", "-0.1"], "auto_layer_lr"),
    (["--batch", "100000"], "batch must be an integer from 1 to 4096, got 100000"),
    (["--n-samples", "5000"], "n_samples"),
    (["--stop-samples", "100000"], "stop_samples"),
    (["--auto-layer-batch", "5000"], "auto_layer_batch"),
    (["--auto-layer-chunk", "100000"], "auto_layer_chunk"),
    (["--auto-layer-iters", "10000000"], "auto_layer_iters"),
    (["--iters", "100000000"], "iters must be an integer from 1 to 10000000"),
    (["--save-every", "-1"], "save_every"),
    (["--seed", str(10**23)], "seed must be an integer from 0 to 9223372036854775807"),
    (["--seed", "-1"], "seed"),
    (["--mixing", "nan"], "mixing"),
    (["--beta1", "nan"], "beta1"),
    (["--beta2", "1"], "beta2"),
    (["--stop-share", "nan"], "stop_share"),
    (["--lambda-global", "nan"], "lambda_global must be a finite number >= 0"),
    (["--lambda-l2", "inf"], "lambda_l2"),
    (["--lambda-direction", "-1"], "lambda_direction"),
    (["--patch-size", "nan"], "patch_size"),
    (["--clip-augment", "100000"], "clip_augment"),
    (["--source-samples", "100000"], "source_samples"),
    (["--patch-count", "100000"], "patch_count"),
    (["--batch", "lots"], "argument --batch"),
]


@pytest.mark.parametrize("extra, message", BAD_ADAPT, ids=[" ".join(e) for e, _ in BAD_ADAPT])
def test_adapt_refuses_bad_numbers_in_one_line_before_writing(base_file, tiny_clip_dir, tmp_path, capsys, extra, message):
    argv = ["adapt", "--generator", str(base_file), "--clip", str(tiny_clip_dir), "--source", "photo", "--target", "sketch",
            "--out", str(tmp_path / "run"), "--iters", "2", "--no-progress"]
    one_line_refusal(capsys, argv + extra, tmp_path, message)


def test_any_finite_truncation_is_legal():
    for psi in (-3.0, 0.0, 0.5, 2.5):
        cfg = AdaptConfig(train_truncation=psi, sample_truncation=psi, guidance={"target_text": "sketch"})
        assert cfg.train_truncation == psi


def test_config_file_values_are_checked_like_flags(tmp_path, capsys):
    bad = tmp_path / "cfg.yaml"
    bad.write_text("lr: .nan\nbatch: 4\n")
    one_line_refusal(capsys, ["adapt", "--config", str(bad), "--source", "photo", "--target", "sketch", "--out",
                              str(tmp_path / "run")], tmp_path, "lr must be a finite number")
    with pytest.raises(AdaptConfigError, match="batch must be an integer"):
        AdaptConfig(batch=2.5)
    with pytest.raises(AdaptConfigError, match="layers"):
        AdaptConfig(layers=[0, "x"])
    with pytest.raises(GuidanceError, match="seed"):
        GuidanceConfig(seed=2**64)


BAD_SAMPLE = [
    (["--seed", str(10**23)], "argument --seed: expected a seed from 0 to 2**63-1"),
    (["--seed", str(2**63 - 1), "--n", "2"], "the last image's seed must be at most 2**63-1"),
    (["--seed", "-1"], "argument --seed"),
    (["--truncation", "nan"], "argument --truncation: expected a finite number, got nan"),
    (["--truncation", "inf"], "argument --truncation: expected a finite number"),
    (["--n", "1000000000"], "argument --n: expected a number of images from 1 to 4096"),
    (["--n", "0"], "argument --n"),
    (["--batch-size", "100000"], "argument --batch-size"),
    (["--noise-mode", "loud"], "argument --noise-mode"),
    (["--generator", "/nonexistent/g.pt"], "g.pt"),
]


@pytest.mark.parametrize("extra, message", BAD_SAMPLE, ids=[" ".join(e) for e, _ in BAD_SAMPLE])
def test_sample_refuses_bad_input_in_one_line_before_writing(tmp_path, capsys, extra, message):
    argv = ["sample", "--generator", "tiny", "--out", str(tmp_path / "s")]
    one_line_refusal(capsys, argv + extra, tmp_path, message)


def test_sample_at_the_edge_of_the_seed_range_works(tmp_path):
    assert main(["sample", "--generator", "tiny", "--out", str(tmp_path / "s"), "--n", "1", "--seed", str(2**63 - 1)]) == 0
    assert (tmp_path / "s" / f"{2**63 - 1:06d}.png").is_file()


def judge_dir(tmp_path, config=None, weights=True):
    from nada.toyworld.judge import JUDGE_DIR

    d = tmp_path / "judge"
    d.mkdir()
    if weights:
        shutil.copy(JUDGE_DIR / "judge.safetensors", d)
    if config is not None:
        (d / "config.json").write_text(config)
    return d


def shipped_config():
    from nada.toyworld.judge import JUDGE_DIR

    return json.loads((JUDGE_DIR / "config.json").read_text())


@pytest.mark.parametrize("case, message", [
    ("no_config", "no judge in"),
    ("no_weights", "no judge in"),
    ("no_config_key", "without a 'config' mapping"),
    ("not_json", "not readable JSON"),
    ("list", "without a 'config' mapping"),
    ("unknown_key", "cannot be built"),
    ("bad_widths", "cannot be built"),
    ("other_widths", "do not fit"),
    ("damaged_weights", "cannot be read"),
])
def test_evaluate_refuses_a_bad_judge_dir_in_one_line(tmp_path, capsys, case, message):
    cfg = shipped_config()
    if case == "no_config":
        d = judge_dir(tmp_path)
    elif case == "no_weights":
        d = judge_dir(tmp_path, json.dumps(cfg), weights=False)
    elif case == "no_config_key":
        d = judge_dir(tmp_path, json.dumps({"labels": cfg.get("labels", {})}))
    elif case == "not_json":
        d = judge_dir(tmp_path, "{not json")
    elif case == "list":
        d = judge_dir(tmp_path, "[1, 2]")
    elif case == "unknown_key":
        d = judge_dir(tmp_path, json.dumps({**cfg, "config": {**cfg["config"], "depth": 3}}))
    elif case == "bad_widths":
        d = judge_dir(tmp_path, json.dumps({**cfg, "config": {**cfg["config"], "widths": ["a"]}}))
    elif case == "other_widths":
        d = judge_dir(tmp_path, json.dumps({**cfg, "config": {**cfg["config"], "widths": [8, 8, 8, 8]}}))
    else:
        d = judge_dir(tmp_path, json.dumps(cfg))
        (d / "judge.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{broken")
    argv = ["toyworld", "evaluate", "--generator", "toy", "--expect", "style=sketch", "--n", "4", "--judge", str(d)]
    one_line_refusal(capsys, argv, tmp_path, "--judge", message)


@pytest.mark.parametrize("extra, message", [
    (["--truncation", "nan"], "argument --truncation: expected a finite number"),
    (["--n", "1000000000"], "argument --n"),
    (["--seed", str(10**23)], "argument --seed"),
])
def test_evaluate_refuses_bad_numbers(tmp_path, capsys, extra, message):
    argv = ["toyworld", "evaluate", "--generator", "toy", "--expect", "style=sketch"]
    one_line_refusal(capsys, argv + extra, tmp_path, message)


def test_evaluate_api_refuses_non_finite_truncation():
    from nada.toyworld.evaluate import EvaluateError, evaluate

    with pytest.raises(EvaluateError, match="finite"):
        evaluate(make_tiny_generator(), ["style=sketch"], n=4, truncation=float("nan"))


def test_sample_api_refuses_bad_seeds_and_truncation():
    from nada.generators.checkpoints import load_generator
    from nada.sampling import sample_images

    G = load_generator("tiny")
    with pytest.raises(ValueError, match="seeds"):
        sample_images(G, 2, seed=2**63 - 1)
    with pytest.raises(ValueError, match="finite"):
        sample_images(G, 2, truncation_psi=float("nan"))


def test_resume_without_a_run_is_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    one_line_refusal(capsys, ["adapt", "--resume", str(tmp_path / "empty"), "--no-progress"], tmp_path, "config")
    one_line_refusal(capsys, ["adapt", "--resume", str(tmp_path / "none"), "--no-progress"], tmp_path, "config")
