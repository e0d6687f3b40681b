"""The latent mapper: identity at the start, only the chosen levels move, the loss is what it says, the file
round-trips and is refused when foreign, and the CLI trains one and uses it with --mapper."""
from __future__ import annotations

import json

import pytest
import torch

from fixtures import make_tiny_generator
from nada.mapper import (LevelsMapper, MappedGenerator, MapperConfig, MapperError, level_rows, load_mapper,
                         save_mapper, train_mapper)


def test_levels_split_rows_as_styleclip():
    assert level_rows(18) == {"coarse": [0, 1, 2, 3], "medium": [4, 5, 6, 7], "fine": list(range(8, 18))}
    assert level_rows(8)["fine"] == []


def test_a_new_mapper_is_the_identity_and_moves_only_its_levels():
    G = make_tiny_generator()
    m = LevelsMapper(G.num_ws, G.w_dim, levels=["coarse"])
    ws = torch.randn(3, G.num_ws, G.w_dim)
    assert torch.equal(m(ws), torch.zeros_like(ws))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    out = m(ws)
    assert out[:, :4].abs().sum() > 0 and torch.equal(out[:, 4:], torch.zeros_like(out[:, 4:]))
    with pytest.raises(MapperError, match="no W\\+ row"):
        LevelsMapper(G.num_ws, G.w_dim, levels=["fine"])  # an 8-row generator has no fine rows


def test_training_changes_only_the_mapper_and_saves_round_trip(tiny_clip_dir, tmp_path):
    from nada.guidance.config import GuidanceConfig
    from nada.guidance.guidance import Guidance

    G = make_tiny_generator().eval().requires_grad_(False)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    g = Guidance(GuidanceConfig(clip=[str(tiny_clip_dir)], source_text="photo", target_text="sketch"))
    cfg = MapperConfig(iters=3, batch=2, levels=["coarse", "medium"])
    mapper, history = train_mapper(G, g, cfg, progress=False)
    assert len(history) == 3 and all(k in history[0] for k in ("direction", "l2", "norm", "total"))
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)))
    assert mapper(ws).abs().sum() > 0
    path = save_mapper(tmp_path / "m.safetensors", mapper, multiplier=cfg.multiplier, meta={"target_text": "sketch"})
    loaded, multiplier, meta = load_mapper(path, G)
    assert multiplier == cfg.multiplier and meta["target_text"] == "sketch"
    assert torch.equal(loaded(ws), mapper(ws))
    view = MappedGenerator(G, loaded, multiplier)
    with torch.no_grad():
        assert torch.equal(view.synthesis(ws, noise_mode="const"),
                           G.synthesis(ws + multiplier * mapper(ws), noise_mode="const"))
    with pytest.raises(MapperError, match="this generator's"):
        load_mapper(path, make_tiny_generator(resolution=16))
    from nada import save_generator

    save_generator(G, tmp_path / "g.safetensors")
    with pytest.raises(MapperError, match="expected a nada mapper"):
        load_mapper(tmp_path / "g.safetensors")


def test_the_offset_terms_are_the_documented_ones(tiny_clip_dir):
    """The loss is CLIP's + lambda_offset_l2 * mean |o|^2 + lambda_offset_norm * mean |o| (o: each row's offset)."""
    from nada.guidance.config import GuidanceConfig
    from nada.guidance.guidance import Guidance

    G = make_tiny_generator().eval().requires_grad_(False)
    g = Guidance(GuidanceConfig(clip=[str(tiny_clip_dir)], source_text="photo", target_text="sketch"))
    cfg = MapperConfig(iters=2, batch=2, lambda_offset_l2=0.5, lambda_offset_norm=0.25, lr=0.05)
    _, history = train_mapper(G, g, cfg, progress=False)
    h = history[-1]
    assert h["total"] == pytest.approx(h["clip_total"] + 0.5 * h["l2"] + 0.25 * h["norm"], rel=1e-4, abs=1e-6)
    assert h["l2"] > 0  # the zero-initialised head moved after the first step


def test_cli_trains_a_mapper_and_sample_uses_it(tiny_clip_dir, tmp_path, capsys):
    from nada import save_generator
    from nada.cli import main

    base = tmp_path / "g.safetensors"
    save_generator(make_tiny_generator(), base)
    out = tmp_path / "mapper"
    assert main(["mapper", "--generator", str(base), "--clip", str(tiny_clip_dir), "--source", "photo",
                 "--target", "sketch", "--iters", "2", "--batch", "2", "--out", str(out), "--no-progress"]) == 0
    assert (out / "mapper.safetensors").is_file() and (out / "final.png").is_file()
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2
    assert main(["sample", "--generator", str(base), "--mapper", str(out / "mapper.safetensors"), "--n", "2",
                 "--out", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert main(["sample", "--generator", str(base), "--mapper", str(base), "--n", "2", "--out", str(tmp_path / "bad")]) == 2
    assert "expected a nada mapper" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_mapper_options_follow_the_preset_of_the_base_an_adapted_file_names(tmp_path):
    from nada import save_generator
    from nada.mapper import MapperConfig, mapper_config
    from nada.generators.checkpoints import preset_name_for
    from nada.plugins import preset

    toy_mapper = preset("toy")["mapper"]
    adapted = tmp_path / "adapted.safetensors"
    save_generator(make_tiny_generator(), adapted, metadata={"base_generator": "toy"})
    plain = tmp_path / "plain.safetensors"
    save_generator(make_tiny_generator(), plain)
    assert preset_name_for(adapted) == "toy" and preset_name_for(plain) is None and preset_name_for("toy") == "toy"
    assert preset_name_for(tmp_path / "missing.safetensors") is None
    for generator in (adapted, "toy"):
        cfg = mapper_config(generator)
        assert cfg.iters == toy_mapper["iters"] and cfg.lambda_offset_l2 == toy_mapper["lambda_offset_l2"]
        assert mapper_config(generator, iters=7).iters == 7  # flags over the preset
    assert mapper_config(plain) == MapperConfig() and mapper_config("tiny") == MapperConfig()
