"""The base generator's training loop: the scene-latent anchor and resumable GAN steps."""
from __future__ import annotations

import dataclasses
import math
from collections import Counter

import pytest
import torch

from nada.toyworld.gan_train import GanConfig, GanTrainer, scene_from_latent
from nada.toyworld.renderer import COLOURS, RESOLUTION, SHAPES, SIZE_RANGE

TINY = {4: 16, 8: 16, 16: 8, 32: 8, 64: 8}


def test_scene_from_latent_matches_the_renderers_distribution():
    z = torch.randn(6000, 32, generator=torch.Generator().manual_seed(0))
    scenes = scene_from_latent(z)
    shapes, colours = Counter(s.shape for s in scenes), Counter(s.colour for s in scenes)
    assert set(shapes) == set(SHAPES) and set(colours) == set(COLOURS)
    for counts, k in ((shapes, len(SHAPES)), (colours, len(COLOURS))):
        for c in counts.values():  # binomial sd of a share is < 0.007 here
            assert abs(c / len(z) - 1 / k) < 0.03
    for s in scenes:
        assert s.style == "photo"
        assert SIZE_RANGE[0] <= s.size <= SIZE_RANGE[1]
        assert 0 < s.cx < RESOLUTION and 0 < s.cy < RESOLUTION
        assert 0 <= s.rotation < 2 * math.pi and 0 <= s.bg_hue <= 1 and 0 <= s.bg_tone <= 1
        assert -math.pi * 0.9 <= s.light_angle <= -math.pi * 0.1
    # positions fill the frame: both halves of the image are used about equally
    left = sum(s.cx < RESOLUTION / 2 for s in scenes) / len(scenes)
    assert 0.45 < left < 0.55


def test_scene_from_latent_is_a_fixed_function_of_the_first_coordinates():
    z = torch.randn(8, 40, generator=torch.Generator().manual_seed(1))
    z[:, :4] = -5.0
    z[:, 2] = 5.0  # argmax -> third shape
    z[:, 4:10] = -5.0
    z[:, 4 + 4] = 5.0  # argmax -> fifth colour
    a = scene_from_latent(z)
    z2 = z.clone()
    z2[:, 21:] = torch.randn(8, 19)  # unused coordinates change nothing
    assert a == scene_from_latent(z2)
    assert {s.shape for s in a} == {SHAPES[2]} and {s.colour for s in a} == {COLOURS[4]}
    with pytest.raises(ValueError, match="21"):
        scene_from_latent(torch.zeros(2, 8))
    # upright targets change the rotation only
    upright = scene_from_latent(z, upright=True)
    assert all(s.rotation == 0.0 for s in upright)
    assert [dataclasses.replace(s, rotation=0.0) for s in a] == upright


def _trainer(tmp_path, **kw):
    cfg = GanConfig(steps=4, batch=2, pool_size=8, style_dim=32, n_mlp=2, channels=dict(TINY), save_every=2,
                    sample_every=1000, d_reg_every=2, **kw)
    return GanTrainer(cfg, tmp_path)


def test_anchor_term_pulls_generator_towards_the_scene_render(tmp_path):
    trainer = _trainer(tmp_path, anchor_weight=10.0)
    losses = [trainer.train_step()["anchor"] for _ in range(3)]
    assert all(math.isfinite(x) and x > 0 for x in losses)
    plain = _trainer(tmp_path / "plain", anchor_weight=0.0).train_step()
    assert plain["anchor"] == 0.0


def test_gan_training_resumes_bit_identically(tmp_path):
    straight = _trainer(tmp_path / "a", anchor_weight=1.0)
    straight.run()
    first = _trainer(tmp_path / "b", anchor_weight=1.0)
    first.cfg.steps = 2
    first.run()  # saves its state at step 2
    resumed = _trainer(tmp_path / "b", anchor_weight=1.0)
    assert resumed.load() and resumed.step == 2
    resumed.run()
    for (name, a), b in zip(straight.G_ema.state_dict().items(), resumed.G_ema.state_dict().values()):
        assert torch.equal(a, b), name
    assert (tmp_path / "b" / "generator.safetensors").exists()


def test_state_saved_with_one_optimizer_group_still_resumes(tmp_path):
    trainer = _trainer(tmp_path, anchor_weight=0.0)
    trainer.train_step()
    state = trainer.state()
    groups = state["opt_g"]["param_groups"]
    # the layout of states saved before the mapping network had a group of its own
    state["opt_g"]["param_groups"] = [{**groups[1], "params": groups[0]["params"] + groups[1]["params"]}]
    torch.save(state, tmp_path / "state.pt")
    resumed = _trainer(tmp_path, anchor_weight=0.0)
    assert resumed.load() and resumed.step == trainer.step
    for (name, a), b in zip(trainer.opt_g.state_dict()["state"].items(), resumed.opt_g.state_dict()["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]), name
    resumed.train_step()  # the optimiser works on the restored moments


def test_shape_disagreement_matches_the_four_signed_distance_fields():
    from nada.toyworld.gan_train import shape_disagreement
    from nada.toyworld.renderer import shape_sdf

    scenes = scene_from_latent(torch.randn(24, 32, generator=torch.Generator().manual_seed(3)))
    fast = shape_disagreement(scenes)
    # reference: every shape drawn in each scene's place by the renderer's own SDF
    sdf = torch.stack([shape_sdf([dataclasses.replace(s, shape=name) for s in scenes]) for name in SHAPES])
    reference = ((sdf.amin(0) < 0.5) & (sdf.amax(0) > -0.5)).float()
    assert fast.shape == (24, 1, RESOLUTION, RESOLUTION)
    assert 0.02 < reference.mean() < 0.3  # a band around the outlines, not empty and not everything
    # bilinear sampling of a 256^2 template moves the band's edge by a small fraction of a pixel
    assert (fast != reference).float().mean() < 0.002


def test_code_pretraining_moves_only_the_mapping_and_encodes_shape_in_w(tmp_path):
    trainer = _trainer(tmp_path, anchor_weight=1.0, anchor_code_weight=1.0)
    synthesis = {n: p.detach().clone() for n, p in trainer.G.synthesis_parameters()}
    before = {n: p.detach().clone() for n, p in trainer.G.mapping_parameters()}
    accuracy = trainer.pretrain_code(60, batch=256)
    assert all(torch.equal(p, synthesis[n]) for n, p in trainer.G.synthesis_parameters())
    assert any(not torch.equal(p, before[n]) for n, p in trainer.G.mapping_parameters())
    # the EMA generator maps z exactly as the trained one does
    z = torch.randn(4, trainer.G.z_dim)
    assert torch.allclose(trainer.G_ema.mapping(z), trainer.G.mapping(z))
    # chance is 1/4; a linear read-out of w learns the argmax of four coordinates
    assert sum(accuracy[-10:]) / 10 > sum(accuracy[:5]) / 5 + 0.2
    assert trainer.log[-1]["code_pretrain"] == 60
    # the anchor's code term is part of the loss and finite
    assert math.isfinite(trainer.train_step()["anchor"])
