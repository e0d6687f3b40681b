"""`nada adapt` from the command line: flags, config files, resume, one-line errors."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from fixtures import make_tiny_generator
from nada.cli import main


@pytest.fixture
def base_file(tmp_path):
    from nada import save_generator

    path = tmp_path / "base.safetensors"
    save_generator(make_tiny_generator(), path)
    return path


def common(base_file, clip_dir, out):
    return ["adapt", "--generator", str(base_file), "--clip", f"{clip_dir}:1", "--source", "photo", "--target", "sketch",
            "--out", str(out), "--iters", "3", "--batch", "2", "--auto-layer-batch", "2", "--auto-layer-k", "2",
            "--n-samples", "2", "--sample-every", "0", "--no-progress"]


def test_adapt_cli_end_to_end(base_file, tiny_clip_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(common(base_file, tiny_clip_dir, out) + ["--clip-augment", "2", "--layers", "all"]) == 0
    assert "generator.safetensors" in capsys.readouterr().out
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["iters"] == 3 and cfg["layers"] == "all"
    assert cfg["guidance"]["clip_augment"] == 2 and cfg["guidance"]["target_text"] == "sketch"
    assert cfg["guidance"]["clip"] == [f"{tiny_clip_dir}:1"]
    from nada.generators.checkpoints import read_metadata

    meta = read_metadata(out / "generator.safetensors")  # the lineage later commands follow to the base's preset
    assert meta["base_generator"] == str(base_file) and meta["target"] == "sketch" and meta["source"] == cfg["guidance"]["source_text"]
    assert "preset" not in meta  # the base file has no preset to carry on
    assert main(["sample", "--generator", str(out / "generator.safetensors"), "--out", str(tmp_path / "s"), "--n", "2"]) == 0
    assert (tmp_path / "s" / "grid.png").is_file()


def test_config_file_then_flags(base_file, tiny_clip_dir, tmp_path):
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump({"iters": 2, "batch": 1, "lr": 0.01, "guidance": {"lambda_l2": 0.5}}))
    out = tmp_path / "run"
    argv = common(base_file, tiny_clip_dir, out) + ["--config", str(cfg_path), "--lambda-global", "0.2"]
    argv[argv.index("--iters") + 1] = "2"
    assert main(argv) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["lr"] == 0.01  # from the file
    assert cfg["batch"] == 2  # the flag wins over the file
    assert cfg["guidance"]["lambda_l2"] == 0.5 and cfg["guidance"]["lambda_global"] == 0.2
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert {"direction", "global", "l2"} <= set(history[0])


def finished_and_unfinished_runs(base_file, tiny_clip_dir, tmp_path):
    """A finished 4-step run (its generator's state dict) and a copy stopped after 2 steps, as a crash would."""
    from nada import load_generator
    from nada.adapt.config import AdaptConfig
    from nada.adapt.engine import Adapter

    out = tmp_path / "run"
    argv = common(base_file, tiny_clip_dir, out) + ["--save-every", "1"]
    argv[argv.index("--iters") + 1] = "4"
    assert main(argv) == 0
    reference = load_generator(out / "generator.safetensors").state_dict()
    out2 = tmp_path / "run2"
    cfg = AdaptConfig.load(out / "config.yaml")
    run = Adapter(cfg, out2, generator=load_generator(base_file), progress=False)
    out2.mkdir()
    cfg.save(out2 / "config.yaml")
    for _ in range(2):
        run.train_step()
    run.save_state()
    return reference, out2


def test_resume_continues_an_unfinished_run(base_file, tiny_clip_dir, tmp_path):
    from nada import load_generator

    reference, out2 = finished_and_unfinished_runs(base_file, tiny_clip_dir, tmp_path)
    assert main(["adapt", "--out", str(out2)] + ["--no-progress"]) == 2  # refuses to restart it silently
    assert main(["adapt", "--resume", str(out2), "--no-progress"]) == 0
    resumed = load_generator(out2 / "generator.safetensors").state_dict()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


@pytest.mark.parametrize("extra, message", [
    (["--target", "photo"], "direction"),
    (["--target", "a sketch of a zebra"], "does not know the word(s) 'zebra'"),
    (["--layers", "42"], "out of range"),
    (["--batch", "0"], "batch"),
    (["--clip", "/nonexistent/clip"], "does not exist"),
    (["--generator", "/nonexistent/g.pt"], "g.pt"),
    (["--device", "cuda:7"], "cuda"),
])
def test_bad_input_is_one_line_and_writes_nothing(base_file, tiny_clip_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    argv = common(base_file, tiny_clip_dir, out)
    if extra[0] in ("--clip", "--target"):  # replace the value (a repeated --target would be a second domain)
        argv[argv.index(extra[0]) + 1] = extra[1]
        extra = []
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nada: error:") and len(err.splitlines()) == 1
    assert message.lower() in err.lower()
    assert not out.exists()


def test_repeated_list_flags_collect_every_value():
    # list fields (--clip, --keep, --texture-layers) are repeatable flags, each value kept in order
    from nada.cli import adapt_config_from_args, build_parser

    args = build_parser().parse_args(
        ["adapt", "--source", "photo", "--target", "sketch", "--out", "o", "--clip", "a", "--clip", "b:0.5",
         "--keep", "circle,square", "--keep", "red,blue", "--texture-layers", "1", "--texture-layers", "3"])
    g = adapt_config_from_args(args).guidance
    assert g.clip == ["a", "b:0.5"]
    assert g.keep == ["circle,square", "red,blue"]
    assert g.texture_layers == [1, 3]


def test_builtin_preset_source_groups_and_override():
    from nada.cli import adapt_config_from_args, build_parser
    from nada.plugins import preset

    base = ["adapt", "--source", "a photo of a circle", "--target", "a photo of a square", "--out", "o"]
    g = adapt_config_from_args(build_parser().parse_args(base)).guidance
    assert g.source_group == preset("toy")["guidance"]["source_group"] and len(g.source_group) == 2
    g = adapt_config_from_args(build_parser().parse_args(base + ["--source-group", "circle,square"])).guidance
    assert g.source_group == ["circle,square"]


def test_a_generator_adapt_wrote_takes_the_preset_of_the_base_it_names(tmp_path):
    from nada import save_generator
    from nada.adapt.api import make_config
    from nada.plugins import preset

    adapted = tmp_path / "run" / "generator.safetensors"
    adapted.parent.mkdir()
    save_generator(make_tiny_generator(), adapted, metadata={"base_generator": "toy"})
    plain = tmp_path / "plain.safetensors"
    save_generator(make_tiny_generator(), plain)
    toy = preset("toy")
    chained = tmp_path / "run2" / "generator.safetensors"  # adapted from the adapted file: the preset name carries on
    chained.parent.mkdir()
    save_generator(make_tiny_generator(), chained, metadata={"base_generator": str(adapted), "preset": "toy"})
    assert make_config("a", "b", generator=str(chained))[0].iters == toy["iters"]
    cfg, _ = make_config("sketch", "watercolor", generator=str(adapted))
    assert cfg.generator == str(adapted)  # the file trains; only the options come from the base's preset
    assert cfg.iters == toy["iters"] and cfg.guidance.clip == toy["guidance"]["clip"]
    assert make_config("sketch", "watercolor", generator=str(plain), iters=5)[0].guidance.clip != toy["guidance"]["clip"]


def test_builtin_preset_stops_when_clip_reads_the_target_and_the_flag_turns_it_off():
    from nada.cli import adapt_config_from_args, build_parser

    base = ["adapt", "--source", "photo", "--target", "sketch", "--out", "o"]
    assert adapt_config_from_args(build_parser().parse_args(base)).stop_share == 1.0
    assert adapt_config_from_args(build_parser().parse_args(base + ["--stop-share", "0"])).stop_share == 0
    # other generators keep the reference behaviour: every iteration runs
    other = base + ["--generator", "ffhq-1024"]
    assert adapt_config_from_args(build_parser().parse_args(other)).stop_share == 0
    # the preset lets content edits (a source group applies) train every step; the flag restores the stop
    assert not adapt_config_from_args(build_parser().parse_args(base)).stop_content_edits
    assert adapt_config_from_args(build_parser().parse_args(base + ["--stop-content-edits"])).stop_content_edits
    assert adapt_config_from_args(build_parser().parse_args(other)).stop_content_edits


# ----------------------------------------------------------------------------- options declared once


def test_help_flags_and_defaults_come_from_the_option_fields(capsys):
    import dataclasses

    from nada.adapt.config import AdaptConfig
    from nada.guidance.config import GuidanceConfig
    from nada.options import info

    with pytest.raises(SystemExit):
        main(["adapt", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for cls in (AdaptConfig, GuidanceConfig):
        for f in dataclasses.fields(cls):
            opt = info(f)
            if opt is None or not opt.cli:
                continue
            assert f"--{opt.flag or f.name.replace('_', '-')}" in text
            assert " ".join(opt.help.split()) in text.replace("- ", "-")
    assert "--lambda-perceptual" not in text  # needs a network: Python API only
    assert "--device DEVICE auto (CUDA when available, else CPU)" in text and "(default: auto)" in text
    assert "(default: the generator preset's CLIPs, else ViT-B/32 and ViT-B/16)" in text


def test_lambda_perceptual_is_no_flag(capsys):
    with pytest.raises(SystemExit):
        main(["adapt", "--source", "photo", "--target", "sketch", "--out", "o", "--lambda-perceptual", "1"])
    assert "unrecognized arguments: --lambda-perceptual" in capsys.readouterr().err


def test_docs_option_tables_are_generated_from_the_fields():
    from pathlib import Path

    from nada.options import DOC_FILES, render_doc

    root = Path(__file__).resolve().parents[2]
    for rel in DOC_FILES:
        text = (root / rel).read_text(encoding="utf-8")
        assert "<!-- options: " in text
        assert render_doc(text) == text, f"{rel}: run `python -m nada.options`"


def test_precedence_defaults_preset_file_flags(tmp_path):
    from nada.adapt.api import make_config
    from nada.cli import adapt_config_from_args, build_parser
    from nada.plugins import preset

    toy = preset("toy")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump({"iters": 7, "guidance": {"clip_augment": 2}}))
    base = ["adapt", "--source", "photo", "--target", "sketch", "--out", "o", "--config", str(cfg_path)]
    for cfg in (adapt_config_from_args(build_parser().parse_args(base + ["--clip-augment", "3"])),
                make_config("photo", "sketch", config=cfg_path, clip_augment=3)[0]):
        assert cfg.mixing == 0.0  # default
        assert cfg.batch == toy["batch"] and cfg.guidance.clip == toy["guidance"]["clip"]  # preset
        assert cfg.iters == 7  # the file over the preset
        assert cfg.guidance.clip_augment == 3  # the flag over the file
        assert cfg.device == "auto"
    # no preset and no CLIP named: the paper's pair
    cfg = make_config("photo", "sketch", generator="some-checkpoint.pt")[0]
    assert cfg.guidance.clip == ["ViT-B/32", "ViT-B/16"] and cfg.iters == 1000


def test_unknown_api_option_is_a_config_error_and_a_type_error():
    from nada.adapt.api import make_config
    from nada.errors import ConfigError

    with pytest.raises(TypeError, match="unknown option 'iterations'") as err:
        make_config("photo", "sketch", iterations=3)
    assert isinstance(err.value, ConfigError)


def test_api_resume_reads_the_saved_config_and_rewrites_it(base_file, tiny_clip_dir, tmp_path):
    import nada
    from nada import load_generator

    reference, out2 = finished_and_unfinished_runs(base_file, tiny_clip_dir, tmp_path)
    # no source, target or options: everything comes from out2/config.yaml, as with `nada adapt --resume`
    result = nada.adapt(out=out2, resume=True, progress=False, save_every=3)
    assert result.metrics["steps"] == 4
    resumed = load_generator(out2 / "generator.safetensors").state_dict()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    saved = yaml.safe_load((out2 / "config.yaml").read_text())
    assert saved["save_every"] == 3 and saved["iters"] == 4  # config.yaml says what ran


def test_api_passes_a_perceptual_network(base_file, tiny_clip_dir, tmp_path):
    import nada

    class Features(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.conv(x)

    result = nada.adapt("photo", "sketch", generator=str(base_file), clip=[str(tiny_clip_dir)], iters=1, batch=1,
                        auto_layer_batch=1, n_samples=1, progress=False, lambda_perceptual=0.5, perceptual=Features())
    assert "perceptual" in result.metrics["history"][0]
