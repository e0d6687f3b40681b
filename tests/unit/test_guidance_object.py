"""The Guidance object the engine calls: gradients, ensembles, augmentation, optional terms, state."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from nada.guidance.clip import load_clip
from nada.guidance.config import GuidanceConfig
from nada.guidance.ensemble import ClipEnsemble
from nada.guidance.errors import GuidanceError
from nada.guidance.guidance import Guidance
from fixtures import make_tiny_clip

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip8"), patch_size=8, seed=5)


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_clip(clip_dir)


@pytest.fixture(scope="module")
def clip16(tmp_path_factory):
    return load_clip(make_tiny_clip(tmp_path_factory.mktemp("clip16"), patch_size=16, seed=6))


class TinyGenerator(nn.Module):
    """Latent -> 32x32 image in [-1, 1]; stands in for the synthesis network."""

    def __init__(self, seed=0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.fc = nn.Linear(8, 4 * 8 * 8)
            self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, z):
        x = self.fc(z).view(-1, 4, 8, 8)
        return torch.tanh(self.conv(nn.functional.interpolate(x, scale_factor=4, mode="bilinear")))


def _pair(seed=0, n=3):
    g_train = TinyGenerator(seed)
    g_frozen = copy.deepcopy(g_train).requires_grad_(False)
    gen = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():  # trained copy has moved a little already
        for p in g_train.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    z = torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))
    return g_train, g_frozen, z


def _config(**kw):
    base = dict(clip=["tiny"], source_text="photo", target_text="sketch", use_templates=False)
    base.update(kw)
    return GuidanceConfig(**base)


def test_generator_gets_gradients_and_clip_gets_none(clip):
    g_train, g_frozen, z = _pair()
    guidance = Guidance(_config(clip_augment=2), [clip])
    guidance.prepare()
    total, info = guidance.loss(g_train(z), g_frozen(z))
    assert set(info) == {"direction", "total"} and 0 <= info["direction"] <= 2
    total.backward()
    grads = [p.grad for p in g_train.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in clip.model.parameters())
    assert all(p.grad is None for p in g_frozen.parameters())


def test_first_step_with_identical_generators_is_finite(clip):
    g_train = TinyGenerator(1)
    g_frozen = copy.deepcopy(g_train).requires_grad_(False)
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(1))
    guidance = Guidance(_config(lambda_global=0.2, lambda_angle=1.0, lambda_manifold=1.0, lambda_l2=1.0,
                                lambda_patch=0.5, clip_augment=3), [clip])
    total, info = guidance.loss(g_train(z), g_frozen(z))
    total.backward()
    assert info["direction"] == pytest.approx(1.0) and info["l2"] == 0.0
    assert all(np.isfinite(v) for v in info.values())
    assert all(torch.isfinite(p.grad).all() for p in g_train.parameters())


def test_loss_total_is_the_weighted_sum_of_the_terms(clip):
    g_train, g_frozen, z = _pair(2)
    weights = dict(lambda_direction=0.8, lambda_global=0.2, lambda_angle=0.5, lambda_manifold=2.0, lambda_l2=3.0)
    guidance = Guidance(_config(**weights), [clip])
    _, info = guidance.loss(g_train(z), g_frozen(z))
    expected = sum(weights[f"lambda_{k}"] * info[k] for k in ("direction", "global", "angle", "manifold", "l2"))
    assert info["total"] == pytest.approx(expected, rel=1e-6)


def test_ensemble_weighting(clip, clip16):
    g_train, g_frozen, z = _pair(3)
    with torch.no_grad():
        a, b = g_train(z), g_frozen(z)
    cfg = _config(lambda_global=0.5)
    single = [Guidance(cfg, [m]).loss(a, b)[1] for m in (clip, clip16)]
    ens = Guidance(cfg, ClipEnsemble([clip, clip16], [3.0, 1.0])).loss(a, b)[1]
    for k in ("direction", "global"):
        assert ens[k] == pytest.approx(0.75 * single[0][k] + 0.25 * single[1][k], rel=1e-5)
    assert single[0]["direction"] != pytest.approx(single[1]["direction"], rel=1e-3)  # the weighting mattered


def test_ensemble_from_specs_loads_directories(clip_dir):
    ens = ClipEnsemble.from_specs([f"{clip_dir}:2", str(clip_dir)])
    assert ens.weights == pytest.approx([2 / 3, 1 / 3]) and len(ens) == 2
    assert ens.names == [str(clip_dir), str(clip_dir)]


def test_augmentation_applies_the_same_views_to_both_images(clip):
    guidance = Guidance(_config(clip_augment=4), [clip])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    (e_train, e_frozen), = guidance.encode_pair(x, x.clone())
    assert torch.equal(e_train, e_frozen)  # independent draws would differ
    (e2, _), = guidance.encode_pair(x, x.clone())
    assert not torch.allclose(e_train, e2)  # but each step draws new views
    again = Guidance(_config(clip_augment=4), [clip])
    (e3, _), = again.encode_pair(x, x)
    assert torch.equal(e_train, e3)  # same seed, same views


def test_state_dict_resumes_the_random_stream(clip):
    cfg = _config(clip_augment=2, lambda_patch=0.3, learned_weights=True)
    g1 = Guidance(cfg, [clip])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    g1.loss(x, y)
    state = g1.state_dict()
    _, expected = g1.loss(x, y)
    g2 = Guidance(cfg, [clip])
    g2.load_state_dict(state)
    _, got = g2.loss(x, y)
    assert got == pytest.approx(expected, rel=1e-6)


def test_learned_weights_in_guidance(clip):
    g_train, g_frozen, z = _pair(4)
    cfg = _config(lambda_direction=1.0, lambda_l2=10.0, learned_weights=True)
    guidance = Guidance(cfg, [clip])
    params = guidance.parameters()
    assert len(params) == 1 and params[0].shape == (2,)
    opt = torch.optim.Adam(list(g_train.parameters()) + params, lr=0.01)
    for _ in range(5):
        opt.zero_grad()
        total, info = guidance.loss(g_train(z), g_frozen(z))
        total.backward()
        opt.step()
    assert info["weight_l2"] > 0 and np.isfinite(info["weight_l2"]) and info["weight_direction"] > 0
    assert Guidance(_config(), [clip]).parameters() == []


def test_global_loss_is_differentiable_and_uses_the_target(clip):
    guidance = Guidance(_config(), [clip])
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    value = guidance.global_loss(x)
    value.backward()
    assert x.grad.abs().sum() > 0
    with torch.no_grad():
        expected = (1 - clip.encode_images(x) @ clip.encode_texts(["sketch"])[0]).mean()
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)


def test_texture_loss_vanishes_for_the_style_image_itself(tmp_path, clip):
    rng = np.random.default_rng(0)
    style = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(style).save(tmp_path / "style.png")
    cfg = _config(lambda_texture=1.0, style_images=str(tmp_path / "style.png"), texture_layers=[1, 2])
    guidance = Guidance(cfg, [clip])
    guidance.prepare()
    assert [g.shape for g in guidance.targets[0].style_grams] == [(32, 32), (32, 32)]
    from nada.imaging import from_uint8

    same = from_uint8(style)[None]
    other = torch.rand(1, 3, 32, 32) * 2 - 1
    _, info_same = guidance.loss(same, same)
    _, info_other = guidance.loss(other, other)
    assert info_same["texture"] < 1e-8 < info_other["texture"]
    with pytest.raises(GuidanceError, match="out of range"):
        Guidance(_config(lambda_texture=1.0, style_images=str(tmp_path / "style.png"), texture_layers=[7]), [clip]).prepare()


def test_structure_loss_keeps_the_frozen_layout_and_reaches_the_image(clip):
    guidance = Guidance(_config(lambda_structure=1.0, lambda_direction=0.0), [clip])
    guidance.prepare()
    assert guidance.targets[0].structure_layers == [max(1, clip.num_vision_layers // 2)]
    g = torch.Generator().manual_seed(0)
    frozen = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    _, info_same = guidance.loss(frozen, frozen)
    trained = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1).requires_grad_(True)
    loss, info_other = guidance.loss(trained, frozen)
    assert info_same["structure"] < 1e-10 < info_other["structure"]
    loss.backward()
    assert trained.grad is not None and trained.grad.abs().sum() > 0
    with pytest.raises(GuidanceError, match="structure layer 9 out of range"):
        Guidance(_config(lambda_structure=1.0, structure_layers=[9]), [clip]).prepare()


def test_words_outside_a_word_level_vocabulary_are_refused_or_flagged(clip):
    assert clip.unknown_words("a sketch of a zebra, striped") == ["zebra", "striped"]
    assert clip.unknown_words("a sketch of a dog") == []
    with pytest.raises(GuidanceError, match=r"does not know the word\(s\) 'zebra' in the target text 'a zebra'"):
        Guidance(_config(target_text="a zebra"), [clip]).prepare()
    with pytest.raises(GuidanceError, match="'unicorn' in the source text"):
        Guidance(_config(source_text="a unicorn photo"), [clip]).prepare()
    with pytest.raises(GuidanceError, match="keep alternative 'oval'"):
        Guidance(_config(lambda_keep=1.0, keep=["circle,oval"]), [clip]).prepare()
    # unknown template words only warn: the text itself is still read
    with pytest.warns(UserWarning, match="template word\\(s\\) 'glossy'"):
        Guidance(_config(use_templates=True, templates=["a glossy {}", "{}"]), [clip]).prepare()


def test_perceptual_term_needs_and_uses_a_network(clip):
    with pytest.raises(GuidanceError, match="perceptual network"):
        Guidance(_config(lambda_perceptual=1.0), [clip])
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    guidance = Guidance(_config(lambda_perceptual=1.0), [clip], perceptual=lambda x: [net(x), net(x)[:, :2]])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    _, info_same = guidance.loss(x, x)
    _, info_diff = guidance.loss(x, -x)
    assert info_same["perceptual"] == pytest.approx(0.0, abs=1e-9) and info_diff["perceptual"] > 0.01


def test_bad_inputs(clip):
    guidance = Guidance(_config(), [clip])
    with pytest.raises(ValueError, match="same"):
        guidance.loss(torch.zeros(1, 3, 32, 32), torch.zeros(2, 3, 32, 32))
    with pytest.raises(GuidanceError, match="set target_text"):
        Guidance(GuidanceConfig(clip=["tiny"]), [clip])


def test_keep_term_skips_the_attribute_being_changed_and_pulls_towards_the_frozen_reading(clip):
    keep = ["circle,square,triangle", "red,blue,green"]
    g = Guidance(_config(source_text="a red shape", target_text="a blue shape", lambda_keep=1.0, keep=keep), [clip])
    info = g.prepare()
    assert info["keep_groups"] == [["circle", "square", "triangle"]]
    assert info["keep_skipped"] == [["red", "blue", "green"]]
    assert len(g.targets[0].keep_alternatives) == 1 and g.targets[0].keep_alternatives[0].shape[0] == 3

    g_train, g_frozen, z = _pair(4)
    with torch.no_grad():
        frozen = g_frozen(z)
    assert g.loss(frozen, frozen)[1]["keep"] == pytest.approx(0.0, abs=1e-6)  # nothing moved, nothing to keep
    img = g_train(z)
    total, info = g.loss(img, frozen)
    assert info["keep"] > 0
    total.backward()
    assert sum(float(p.grad.abs().sum()) for p in g_train.parameters()) > 0


def test_keep_needs_groups_and_checks_them():
    with pytest.raises(GuidanceError, match="keep groups"):
        _config(lambda_keep=1.0).check_ready()
    for bad in ["circle", "circle,,square", "circle,circle"]:
        with pytest.raises(GuidanceError, match="keep group"):
            _config(keep=[bad])
    assert _config(keep="a,b").keep_groups() == [["a", "b"]]


def test_source_variants_swap_the_named_word_and_leave_out_the_target():
    from nada.guidance.guidance import source_variants

    shapes, colours = ["circle", " square", "triangle"], ["red", "green", "blue"]
    assert source_variants("a photo of a circle", [shapes, colours], "a photo of a square") == (
        ["a photo of a circle", "a photo of a triangle"], [["circle", "square", "triangle"]])
    assert source_variants("Red", [colours], "blue") == (["red", "green"], [colours])
    # two groups change: every combination, the source first
    got, used = source_variants("a red circle", [shapes, colours], "a blue square")
    assert got == ["a red circle", "a green circle", "a red triangle", "a green triangle"] and len(used) == 2
    # groups that do not apply: not named ("starfish" is not "star"), named twice, or not changed
    for source, target in [("a starfish", "a square"), ("a circle or a triangle", "a square"), ("a triangle", "a triangle drawing")]:
        assert source_variants(source, [["star", "circle", "triangle"]], target) == ([source], [])
    assert source_variants("a red circle", [colours], "a red square") == (["a red circle"], [])


def test_source_group_gives_each_sample_the_source_it_shows(clip):
    cfg = _config(source_text="a circle", target_text="a square", source_group=["red,blue", "circle,square,triangle"])
    g = Guidance(cfg, [clip])
    info = g.prepare()
    assert info["source_variants"] == ["a circle", "a triangle"]
    assert info["source_groups_used"] == [["circle", "square", "triangle"]]
    t = g.targets[0]
    assert t.source_variants.shape == (2, t.direction.shape[0])
    g_train, g_frozen, z = _pair(5)
    with torch.no_grad():
        frozen = g_frozen(z)
    img = g_train(z)
    total, terms = g.loss(img, frozen)
    # the same loss computed by hand from the per-sample directions
    from nada.guidance import losses as L

    e_tr, e_fr = g.encode_pair(img, frozen)[0]
    dirs = L.read_source_direction(e_fr, t.target, t.source_variants, clip.logit_scale)
    assert terms["direction"] == pytest.approx(float(L.directional_loss(e_tr, e_fr, dirs).detach()), rel=1e-5)
    assert abs(terms["direction"] - float(L.directional_loss(e_tr, e_fr, t.direction).detach())) > 1e-6
    total.backward()
    assert sum(float(p.grad.abs().sum()) for p in g_train.parameters()) > 0
    # no group names what changes: one shared source, as without source_group
    g2 = Guidance(_config(source_text="photo", target_text="sketch", source_group="circle,square"), [clip])
    assert g2.prepare()["source_groups_used"] == [] and g2.targets[0].source_variants is None
    with pytest.raises(GuidanceError, match="source_group"):
        _config(source_group="circle")


def test_target_margin_matches_a_hand_computation(clip, clip16):
    from nada.guidance.directions import domain_text_embedding

    g_train, _, z = _pair(7, n=5)
    with torch.no_grad():
        images = g_train(z)
    # one source text, two models weighted 3:1
    g = Guidance(_config(), ClipEnsemble([clip, clip16], [3, 1]))
    g.prepare()
    want = torch.zeros(5, dtype=torch.float64)
    for model, w in ((clip, 0.75), (clip16, 0.25)):
        e = model.encode_images(images).double()
        t = domain_text_embedding(model, "sketch", None, False).double()
        s = domain_text_embedding(model, "photo", None, False).double()
        want += w * (e @ t - e @ s)
    got = g.target_margin(images)
    assert got.shape == (5,) and torch.allclose(got.double(), want, atol=1e-5)
    # source groups: the margin is against the closest of the per-sample sources
    g2 = Guidance(_config(source_text="a circle", target_text="a square", source_group="circle,square,triangle,star"), [clip])
    g2.prepare()
    e = clip.encode_images(images).double()
    t = domain_text_embedding(clip, "a square", None, False).double()
    sources = torch.stack([domain_text_embedding(clip, v, None, False) for v in ("a circle", "a triangle", "a star")]).double()
    want2 = e @ t - (e @ sources.T).max(dim=1).values
    assert torch.allclose(g2.target_margin(images).double(), want2, atol=1e-5)
    assert not torch.allclose(want2, e @ t - e @ sources[0], atol=1e-4)  # the max is not just the named source
    # reading draws no random numbers: the augmentation stream is untouched
    before = g.state_dict()["aug_rng"].clone()
    g.target_margin(images)
    assert torch.equal(g.state_dict()["aug_rng"], before)
