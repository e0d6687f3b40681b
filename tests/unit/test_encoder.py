"""e4e / pSp encoders: the forward pass against a float64 functional reference written from the papers'
description, checkpoints in their exact layout (and foreign ones refused), the generator in the same file,
and inversion that starts from the encoder."""
from __future__ import annotations

import argparse
import os
import re

import pytest
import torch
import torch.nn.functional as F

from fixtures import make_tiny_encoder, make_tiny_generator, save_encoder_checkpoint
from hostile_files import CallsGlobal
from nada.encoder import EncoderError, StyleEncoder, load_encoder
from nada.generators.checkpoints import load_generator
from nada.inversion import InversionError, invert

STRIDE_UNITS = (0, 3, 7, 21)  # the first unit of each of IR-50's stages (3, 4, 14, 3 units)


def reference_codes(sd: dict, kind: str, x: torch.Tensor, size: int) -> torch.Tensor:
    """The e4e/pSp forward pass, op by op in float64, from a state dict."""
    p = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    x = F.interpolate(x.double(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)

    def bn(t, name):
        return F.batch_norm(t, p[f"{name}.running_mean"], p[f"{name}.running_var"], p[f"{name}.weight"],
                            p[f"{name}.bias"], False, 0.0, 1e-5)

    x = F.prelu(bn(F.conv2d(x, p["input_layer.0.weight"], padding=1), "input_layer.1"), p["input_layer.2.weight"])
    taps = {}
    for i in range(24):
        u, s = f"body.{i}", 2 if i in STRIDE_UNITS else 1
        if f"{u}.shortcut_layer.0.weight" in p:
            shortcut = bn(F.conv2d(x, p[f"{u}.shortcut_layer.0.weight"], stride=s), f"{u}.shortcut_layer.1")
        else:
            shortcut = F.max_pool2d(x, 1, s)
        r = bn(x, f"{u}.res_layer.0")
        r = F.prelu(F.conv2d(r, p[f"{u}.res_layer.1.weight"], padding=1), p[f"{u}.res_layer.2.weight"])
        r = bn(F.conv2d(r, p[f"{u}.res_layer.3.weight"], stride=s, padding=1), f"{u}.res_layer.4")
        gate = F.conv2d(F.relu(F.conv2d(F.adaptive_avg_pool2d(r, 1), p[f"{u}.res_layer.5.fc1.weight"])),
                        p[f"{u}.res_layer.5.fc2.weight"])
        x = r * torch.sigmoid(gate) + shortcut
        taps[i] = x
    c1, c2, c3 = taps[6], taps[20], taps[23]
    up = lambda a, b: F.interpolate(a, size=b.shape[-2:], mode="bilinear", align_corners=True) + b  # noqa: E731
    p2 = up(c3, F.conv2d(c2, p["latlayer1.weight"], p["latlayer1.bias"]))
    p1 = up(p2, F.conv2d(c1, p["latlayer2.weight"], p["latlayer2.bias"]))

    def style(j, f):
        k = 0
        while f"styles.{j}.convs.{2 * k}.weight" in p:
            f = F.leaky_relu(F.conv2d(f, p[f"styles.{j}.convs.{2 * k}.weight"], p[f"styles.{j}.convs.{2 * k}.bias"],
                                      stride=2, padding=1), 0.01)
            k += 1
        w = p[f"styles.{j}.linear.weight"]
        return F.linear(f.reshape(f.shape[0], -1), w / w.shape[1] ** 0.5, p[f"styles.{j}.linear.bias"])

    rows = sum(1 for k in p if k.startswith("styles.") and k.endswith(".linear.weight"))
    feats = [c3 if j < 3 else p2 if j < 7 else p1 for j in range(rows)]
    if kind == "psp":
        return torch.stack([style(j, feats[j]) for j in range(rows)], 1)
    w0 = style(0, c3)
    return torch.stack([w0] + [w0 + style(j, feats[j]) for j in range(1, rows)], 1)


@pytest.fixture
def G():
    return make_tiny_generator()


@pytest.mark.parametrize("kind", ["e4e", "psp"])
def test_forward_matches_float64_reference(G, kind):
    E = make_tiny_encoder(G, kind)
    x = torch.rand(2, 3, 48, 40) * 2 - 1  # not square, not the input size: resized as the reference does
    x = F.interpolate(x, size=(40, 40))
    got = E.double()(x.double())
    want = reference_codes(E.state_dict(), kind, x, E.input_size)
    assert got.shape == (2, G.num_ws, G.w_dim)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    assert want.std() > 0.05  # the reference is not trivially zero


def test_e4e_rows_are_offsets_of_one_w_and_psp_rows_are_independent(G):
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    e4e = make_tiny_encoder(G, "e4e", seed=1)
    psp = make_tiny_encoder(G, "psp", seed=1)  # the same weights
    psp.load_state_dict(e4e.state_dict())
    a, b = e4e(x), psp(x)
    torch.testing.assert_close(a[:, 0], b[:, 0])
    torch.testing.assert_close(a[:, 1:], b[:, 1:] + b[:, :1])


def _codes_with_avg(E, x, avg):
    with torch.no_grad():
        return E(x) + avg


@pytest.mark.parametrize("zip_format", [True, False])
@pytest.mark.parametrize("kind", ["e4e", "psp"])
def test_checkpoint_in_the_papers_layout_loads_exactly(G, tmp_path, kind, zip_format):
    E = make_tiny_encoder(G, kind, input_size=256)  # the papers' input size, load_encoder's default
    avg = torch.randn(G.num_ws, G.w_dim)
    path = save_encoder_checkpoint(tmp_path / "enc.pt", E, G, latent_avg=avg, zip_format=zip_format)
    loaded = load_encoder(path)
    assert loaded.kind == kind and loaded.num_ws == G.num_ws and loaded.w_dim == G.w_dim
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded(x), _codes_with_avg(E, x, avg))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_options_as_a_namespace_and_a_single_row_latent_avg(G, tmp_path):
    E = make_tiny_encoder(G, "e4e")
    avg = torch.randn(G.w_dim)  # rosinality's mean latent, as pSp keeps it before repeating
    opts = argparse.Namespace(encoder_type="Encoder4Editing", start_from_latent_avg=True)
    loaded = load_encoder(save_encoder_checkpoint(tmp_path / "e.pt", E, opts=opts, latent_avg=avg), input_size=64)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded(x), _codes_with_avg(E, x, avg))


def test_without_start_from_latent_avg_the_average_is_not_added(G, tmp_path):
    E = make_tiny_encoder(G, "psp")
    opts = {"encoder_type": "GradualStyleEncoder", "start_from_latent_avg": False}
    loaded = load_encoder(save_encoder_checkpoint(tmp_path / "e.pt", E, opts=opts, latent_avg=torch.ones(G.w_dim)),
                          input_size=64)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded(x), _codes_with_avg(E, x, 0))


def test_the_generator_in_the_same_checkpoint_loads(G, tmp_path):
    E = make_tiny_encoder(G, "e4e")
    avg = G.mean_w().reshape(1, -1).repeat(G.num_ws, 1) + 0.5
    path = save_encoder_checkpoint(tmp_path / "e4e.pt", E, G, latent_avg=avg)
    G2 = load_generator(path)
    torch.testing.assert_close(G2.w_avg, avg[0])
    ws = torch.randn(2, G.num_ws, G.w_dim)
    with torch.no_grad():
        torch.testing.assert_close(G2.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const"))


def _edit_checkpoint(G, tmp_path, change):
    E = make_tiny_encoder(G, "e4e")
    sd = {f"encoder.{k}": v for k, v in E.state_dict().items()}
    obj = {"state_dict": sd, "opts": {"encoder_type": "Encoder4Editing"}, "latent_avg": torch.zeros(G.w_dim)}
    change(obj)
    torch.save(obj, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


@pytest.mark.parametrize("change, message", [
    (lambda o: o["state_dict"].pop("encoder.styles.3.linear.bias"), r"missing encoder\.styles\.3\.linear\.bias"),
    (lambda o: o["state_dict"].__setitem__("encoder.extra.weight", torch.zeros(1)), r"unexpected encoder\.extra\.weight"),
    (lambda o: [o["state_dict"].pop(k) for k in list(o["state_dict"]) if k.startswith("encoder.body.23.")],
     "24 units"),
    (lambda o: o["state_dict"].__setitem__("encoder.input_layer.0.weight", torch.zeros(16, 1, 3, 3)), "input channels"),
    (lambda o: o.__setitem__("state_dict", {"decoder.style.1.weight": torch.zeros(2, 2)}), "no encoder.* weights"),
    (lambda o: o.__setitem__("opts", {"encoder_type": "BackboneEncoderUsingLastLayerIntoW"}), "not supported"),
    (lambda o: o.__setitem__("opts", {}), "--encoder-type"),
    (lambda o: (o.__setitem__("opts", {"encoder_type": "Encoder4Editing", "start_from_latent_avg": True}),
                o.pop("latent_avg")), "no latent_avg"),
    (lambda o: o["state_dict"].__setitem__("encoder.latlayer1.bias", torch.full((32,), float("nan"))), "non-finite"),
])
def test_foreign_or_damaged_checkpoints_are_refused_in_one_line(G, tmp_path, change, message):
    path = _edit_checkpoint(G, tmp_path, change)
    with pytest.raises(EncoderError) as e:
        load_encoder(path)
    text = str(e.value)
    assert "\n" not in text and str(path) in text
    assert re.search(message, text), text


def test_a_generator_checkpoint_is_not_an_encoder(G, tmp_path):
    torch.save({"g_ema": G.state_dict(), "latent_avg": torch.zeros(G.w_dim)}, tmp_path / "g.pt")
    with pytest.raises(EncoderError, match=r"expected an e4e/pSp checkpoint \{state_dict, opts, latent_avg\}"):
        load_encoder(tmp_path / "g.pt")
    with pytest.raises(EncoderError, match="no such encoder"):
        load_encoder(tmp_path / "missing.pt")


def test_kind_given_by_the_caller_overrides_missing_options(G, tmp_path):
    path = _edit_checkpoint(G, tmp_path, lambda o: o.__setitem__("opts", {}))
    assert load_encoder(path, kind="psp").kind == "psp"
    with pytest.raises(EncoderError, match="must be one of"):
        load_encoder(path, kind="pixel2style")


def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(G, tmp_path):
    marker = tmp_path / "ran"
    obj = {"state_dict": {}, "opts": CallsGlobal(os.system, f"touch {marker}")}
    torch.save(obj, tmp_path / "evil.pt")
    with pytest.raises(EncoderError, match="refusing"):
        load_encoder(tmp_path / "evil.pt")
    assert not marker.exists()


def test_invert_with_an_encoder_starts_from_its_codes_and_refinement_lowers_the_distance(G):
    G.requires_grad_(False)
    E = make_tiny_encoder(G, "e4e")
    E.latent_avg = G.mean_w().reshape(1, -1)
    with torch.no_grad():
        target = G.synthesis(G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(5))),
                             noise_mode="const")
    plain = invert(G, target, encoder=E, progress=False, w_avg_samples=100)
    with torch.no_grad():
        torch.testing.assert_close(plain.ws, E(target))
    refined = invert(G, target, encoder=E, refine_steps=30, refine_lr=0.05, progress=False, w_avg_samples=100)
    assert (refined.distances < plain.distances).all()
    assert [h["phase"] for h in refined.history] == ["refine"] * 30


def test_invert_refuses_an_encoder_of_another_generator_and_refinement_without_one(G):
    other = make_tiny_generator(resolution=16)
    E = make_tiny_encoder(other, "psp")
    target = torch.zeros(1, 3, 32, 32)
    with pytest.raises(InversionError, match="encoder gives 6 codes of 32 values; this generator takes 8"):
        invert(G, target, encoder=E, progress=False, w_avg_samples=100)
    with pytest.raises(InversionError, match="refine_steps refines an encoder"):
        invert(G, target, refine_steps=5, progress=False, w_avg_samples=100)


def test_style_blocks_must_end_at_one_pixel(G):
    E = StyleEncoder("psp", widths=(16, 20, 24, G.w_dim), style_dim=G.w_dim, style_convs=(1,) * G.num_ws, input_size=64)
    with pytest.raises(EncoderError, match="not 1 x 1"):
        E.eval()(torch.zeros(1, 3, 64, 64))


def papers_e4e_layout(rows: int = 18) -> dict[str, tuple[int, ...]]:
    """The key names and shapes of e4e's/pSp's FFHQ encoder, enumerated from the papers' description:
    IR-SE50 (stages of 3, 4, 14, 3 units at 64, 128, 256, 512 channels; a conv shortcut only where the width
    changes), style blocks of 4/5/6 stride-2 convs (16/32/64 px), latlayers from 256 and 128 channels."""
    keys: dict[str, tuple[int, ...]] = {}

    def bn(prefix, c):
        keys.update({f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                     f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()})

    keys["input_layer.0.weight"] = (64, 3, 3, 3)
    bn("input_layer.1", 64)
    keys["input_layer.2.weight"] = (64,)
    i, c_in = 0, 64
    for depth, units in ((64, 3), (128, 4), (256, 14), (512, 3)):
        for _ in range(units):
            u = f"body.{i}"
            if c_in != depth:
                keys[f"{u}.shortcut_layer.0.weight"] = (depth, c_in, 1, 1)
                bn(f"{u}.shortcut_layer.1", depth)
            bn(f"{u}.res_layer.0", c_in)
            keys[f"{u}.res_layer.1.weight"] = (depth, c_in, 3, 3)
            keys[f"{u}.res_layer.2.weight"] = (depth,)
            keys[f"{u}.res_layer.3.weight"] = (depth, depth, 3, 3)
            bn(f"{u}.res_layer.4", depth)
            keys[f"{u}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
            keys[f"{u}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
            i, c_in = i + 1, depth
    for j in range(rows):
        for k in range(4 if j < 3 else 5 if j < 7 else 6):
            keys[f"styles.{j}.convs.{2 * k}.weight"] = (512, 512, 3, 3)
            keys[f"styles.{j}.convs.{2 * k}.bias"] = (512,)
        keys[f"styles.{j}.linear.weight"] = (512, 512)
        keys[f"styles.{j}.linear.bias"] = (512,)
    keys.update({"latlayer1.weight": (512, 256, 1, 1), "latlayer1.bias": (512,),
                 "latlayer2.weight": (512, 128, 1, 1), "latlayer2.bias": (512,)})
    return keys


@pytest.mark.parametrize("kind", ["e4e", "psp"])
def test_full_size_encoder_has_exactly_the_papers_keys_and_shapes(kind):
    with torch.device("meta"):
        sd = StyleEncoder(kind).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == papers_e4e_layout(18)


def test_architecture_is_read_back_from_the_papers_layout():
    from nada.encoder import _architecture

    sd = {k: torch.empty(shape) for k, shape in papers_e4e_layout(14).items()}  # a 256-px generator's 14 rows
    arch = _architecture(sd)
    assert arch == {"widths": (64, 128, 256, 512), "style_dim": 512, "style_convs": (4,) * 3 + (5,) * 4 + (6,) * 7,
                    "se_reduction": 16}
