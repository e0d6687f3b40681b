"""Domains without training: identity at initialisation, hooks vs. baked weights, the file format,
strength and linear mixing, the base fingerprint, the config's parameterisation defaults, file size."""
from __future__ import annotations

import json

import pytest
import torch

from fixtures import make_tiny_generator
from nada.adapt.config import AdaptConfig, merge
from nada.domains.domain import (
    Domain,
    DomainError,
    DomainGenerator,
    apply_domains,
    bake_domains,
    base_fingerprint,
    load_domain,
    parse_domain_spec,
    save_domain,
)
from nada.domains.parameterisations import DOMAIN_PARAMS, DomainParameterisation
from nada.errors import CheckpointError, NadaError

PARAMS = list(DOMAIN_PARAMS)


def ws_for(G, n=3, seed=0):
    return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)))


def random_domain(G, param, seed=0, scale=0.2):
    p = DomainParameterisation(G, param)
    gen = torch.Generator().manual_seed(seed)
    vectors = {k: torch.randn(v.shape, generator=gen) * scale for k, v in p.vectors.items()}
    return Domain(param, vectors, {"base_fingerprint": base_fingerprint(G)})


@pytest.mark.parametrize("param", PARAMS)
def test_identity_at_initialisation_is_bit_identical(tiny_generator, param):
    G = tiny_generator.requires_grad_(False)
    p = DomainParameterisation(G, param)
    ws = ws_for(G)
    with torch.no_grad():
        assert torch.equal(p.synthesis(ws), G.synthesis(ws))
        assert torch.equal(p.adapted_generator().synthesis(ws), G.synthesis(ws))


@pytest.mark.parametrize("param", PARAMS)
def test_a_step_changes_only_the_domain_vectors(tiny_generator, param):
    G = tiny_generator.requires_grad_(False)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    p = DomainParameterisation(G, param)
    opt = torch.optim.Adam(p.parameters(), lr=0.1)
    p.attach(opt)
    p.synthesis(ws_for(G)).square().mean().backward()
    opt.step()
    assert all(v.abs().sum() > 0 for v in p.vectors.values())
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_which_layers_carry_vectors(tiny_generator):
    G = tiny_generator
    mod, style = DomainParameterisation(G, "modulation"), DomainParameterisation(G, "stylespace")
    convs = {u.name: c for u, c in G.modulated_convs()}
    assert set(style.vectors) == {f"stylespace/{k}" for k in convs}  # every modulated layer, ToRGB included
    assert set(mod.vectors) == {f"modulation/{u.name}" for u, _ in G.modulated_convs() if u.kind == "conv"}  # no ToRGB
    assert all(v.shape == (convs[k.split("/")[1]].in_channel,) for k, v in mod.vectors.items())
    shape = DomainParameterisation(G, "modulation", "0,1,2")
    assert set(shape.vectors) == {"modulation/conv1", "modulation/convs.0", "modulation/convs.1"} and shape.rows == [0, 1, 2]
    # StyleDomain's StyleSpace+ and Affine+: weight offsets on the 64-px block (here the finest, 32 px)
    plus, affine = DomainParameterisation(G, "stylespace+"), DomainParameterisation(G, "affine+")
    offsets = {k for k in plus.vectors if k.startswith("weight/")}
    assert offsets == {"weight/convs.4", "weight/convs.5", "weight/to_rgbs.2"} and offsets < set(affine.vectors)
    assert plus.vectors["weight/convs.5"].shape == (convs["convs.5"].out_channel, convs["convs.5"].in_channel)
    assert affine.vectors["affine.weight/conv1"].shape == convs["conv1"].modulation.weight.shape
    assert len([k for k in affine.vectors if k.startswith("affine.bias/")]) == len(convs)


@pytest.mark.parametrize("param", PARAMS)
def test_bake_matches_the_hooked_generator(tiny_generator, param):
    G = tiny_generator.requires_grad_(False)
    d = random_domain(G, param)
    view = d.apply(G)
    baked = d.bake(G)
    ws = ws_for(G)
    with torch.no_grad():
        hooked = view.synthesis(ws)
        assert not torch.allclose(hooked, G.synthesis(ws), atol=1e-3)
        assert torch.allclose(baked.synthesis(ws), hooked, atol=1e-5)
    assert all(c.style_hook is None and c.weight_hook is None for _, c in G.modulated_convs())


@pytest.mark.parametrize("param", PARAMS)
def test_save_load_same_images_and_metadata(tiny_generator, tmp_path, param):
    G = tiny_generator.requires_grad_(False)
    d = random_domain(G, param)
    path = save_domain(tmp_path / "d.safetensors", param, d.vectors, G, source_text="photo", target_text="sketch",
                       clips=["a", "b"], steps=7)
    again = load_domain(path)
    assert again.param == param and again.base_fingerprint == base_fingerprint(G)
    assert again.meta["target_text"] == "sketch" and json.loads(again.meta["clips"]) == ["a", "b"]
    assert again.meta["steps"] == "7" and again.base_config == G.config.to_dict() and "nada_version" in again.meta
    ws = ws_for(G)
    with torch.no_grad():
        assert torch.equal(again.apply(G).synthesis(ws), d.apply(G).synthesis(ws))


def test_strength_zero_is_the_base_exactly_and_mixing_is_linear(tiny_generator):
    G = tiny_generator.requires_grad_(False)
    a, b = random_domain(G, "modulation", 1), random_domain(G, "modulation", 2)
    s1, s2 = random_domain(G, "stylespace", 3), random_domain(G, "stylespace", 4)
    ws = ws_for(G)
    with torch.no_grad():
        base = G.synthesis(ws)
        assert torch.equal(apply_domains(G, [(a, 0.0), (s1, 0.0)]).synthesis(ws), base)
        for x, y in ((a, b), (s1, s2)):
            mixed = apply_domains(G, [(x, 0.5), (y, -0.25)]).synthesis(ws)
            one = Domain(x.param, {k: 0.5 * x.vectors[k] - 0.25 * y.vectors[k] for k in x.vectors}, x.meta)
            assert torch.allclose(mixed, one.apply(G).synthesis(ws), atol=1e-6)
            assert torch.allclose(apply_domains(G, [(x, 1.0), (x, 1.0)]).synthesis(ws), x.apply(G, 2.0).synthesis(ws),
                                  atol=1e-6)
        # different parameterisations compose; the baked generator draws the same
        both = apply_domains(G, [(a, 1.0), (s1, 1.0)])
        assert torch.allclose(both.bake().synthesis(ws), both.synthesis(ws), atol=1e-5)
        assert torch.allclose(bake_domains(G, [(a, 1.0), (s1, 1.0)]).synthesis(ws), both.synthesis(ws), atol=1e-5)


def test_the_view_samples_and_backpropagates_like_a_generator(tiny_generator):
    from nada.sampling import sample_images

    G = tiny_generator
    view = random_domain(G, "stylespace").apply(G)
    assert isinstance(view, DomainGenerator) and view.z_dim == G.z_dim and view.num_ws == G.num_ws
    images = sample_images(view, 2, seed=5)
    assert images.shape == (2, 3, G.resolution, G.resolution)
    ws = ws_for(G).detach().requires_grad_(True)
    view.synthesis(ws).mean().backward()
    assert ws.grad is not None and G.conv1.conv.weight.grad is not None


def test_another_base_is_refused_in_one_line_naming_both(tiny_generator, tmp_path):
    G = tiny_generator
    d = random_domain(G, "modulation")
    other = make_tiny_generator(seed=1)
    with pytest.raises(DomainError) as e:
        d.apply(other)
    msg = str(e.value)
    assert "\n" not in msg and base_fingerprint(G) in msg and base_fingerprint(other) in msg
    assert "allow_other_base" in msg
    d.apply(other, allow_other_base=True)  # same architecture: applies
    with pytest.raises(DomainError, match="names no|shape"):
        d.apply(make_tiny_generator(resolution=16), allow_other_base=True)


@pytest.mark.parametrize("content, words", [
    (b"not a safetensors file at all", "expected a nada domain"),
    (None, "format="),
    ("flip", "checksum"),
])
def test_malformed_and_foreign_files_are_refused_in_one_line(tiny_generator, tmp_path, content, words):
    from nada.generators.checkpoints import save_generator

    path = tmp_path / "x.safetensors"
    if content is None:
        save_generator(tiny_generator, path)  # a generator, not a domain
    elif content == "flip":
        save_domain(path, "stylespace", random_domain(tiny_generator, "stylespace").vectors, tiny_generator)
        data = bytearray(path.read_bytes())
        data[-3] ^= 0x40
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(content)
    with pytest.raises(DomainError) as e:
        load_domain(path)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert issubclass(DomainError, CheckpointError) and issubclass(DomainError, NadaError)


def test_domain_spec_parsing(tmp_path):
    assert parse_domain_spec("a/d.safetensors") == ("a/d.safetensors", 1.0)
    assert parse_domain_spec("a/d.safetensors:0.5") == ("a/d.safetensors", 0.5)
    assert parse_domain_spec("d.safetensors:-1") == ("d.safetensors", -1.0)
    with pytest.raises(DomainError):
        parse_domain_spec("d.safetensors:nan")


def test_parameterisation_defaults_layer_between_preset_and_user(tmp_path):
    assert merge({"param": "modulation"}).lr == 0.1 and merge({"param": "modulation"}).iters == 300
    assert merge({"param": "stylespace", "generator": "x.safetensors"}).lr == 0.05  # StyleDomain's
    assert merge({"param": "stylespace"}).lr == 0.5  # the toy preset's value for stylespace, over the param's own
    assert merge({"param": "stylespace"}, {"lr": 0.2}).lr == 0.2  # the user's over both
    assert merge({"param": "stylespace+"}).lr == 0.05  # the preset's params entry names stylespace only
    assert merge({"param": "modulation"}, {"lr": 0.01}).lr == 0.01  # the user's value wins
    assert merge({}).lr == 0.003  # fine-tuning keeps the toy preset's
    assert merge({"generator": "x.safetensors"}).lr == 0.002
    with pytest.raises(NadaError, match="param must be one of"):
        merge({"param": "lora"})
    assert "param" not in AdaptConfig().to_dict()  # the default leaves config files as they were
    assert merge(AdaptConfig(param="stylespace", lr=0.2).to_dict()).lr == 0.2


def test_a_1024_config_f_modulation_domain_is_under_64_kb(tmp_path):
    from nada.generators.stylegan2 import Generator, GeneratorConfig

    with torch.device("meta"):
        G = Generator(GeneratorConfig(1024))
    units = [(u, c) for u, c in G.modulated_convs() if u.kind == "conv"]
    vectors = {f"modulation/{u.name}": torch.zeros(c.in_channel) for u, c in units}
    assert len(vectors) == 17 and sum(v.numel() for v in vectors.values()) == 6048
    path = save_domain(tmp_path / "d.safetensors", "modulation", vectors, fingerprint="0" * 64,
                       base_config=G.config.to_dict(), source_text="photo", target_text="sketch",
                       clips=["ViT-B/32", "ViT-B/16"], steps=300)
    size = path.stat().st_size
    assert size < 64 * 1024, size
    assert load_domain(path).param == "modulation"


def test_a_file_with_a_tensor_of_another_space_is_refused(tiny_generator, tmp_path):
    d = random_domain(tiny_generator, "stylespace+")
    path = save_domain(tmp_path / "d.safetensors", "stylespace", d.vectors, tiny_generator)  # has weight/ tensors
    with pytest.raises(DomainError, match="not '<space>/<layer>' with a space of stylespace"):
        load_domain(path)


def test_the_python_api_takes_param_and_its_defaults():
    from nada.adapt.api import make_config

    cfg, _ = make_config("photo", "sketch", param="affine+")
    assert cfg.param == "affine+" and cfg.lr == 0.02 and cfg.iters == 300
    cfg, _ = make_config("photo", "sketch", param="modulation", iters=5)
    assert cfg.lr == 0.1 and cfg.iters == 5


def test_the_view_follows_the_base_to_another_dtype(tiny_generator):
    G = tiny_generator.requires_grad_(False)
    view = random_domain(G, "modulation").apply(G)
    ws = ws_for(G)
    with torch.no_grad():
        single = view.synthesis(ws)
        view.double()
        assert torch.allclose(view.synthesis(ws.double()).float(), single, atol=1e-5)
