"""Round trips through every checkpoint format give the same images; architecture inference.

The NVIDIA and TensorFlow pickles are synthesised here. Their layouts are restated in this file
from the published facts (stylegan2-ada-pytorch module tree: mapping.fc{i}, synthesis.b{R}.conv0/
conv1/torgb with affine/weight/bias/noise_const/noise_strength; TF variable names
mapping/Dense{i}, synthesis/{R}x{R}/Conv0_up|Conv1|ToRGB with (k, k, in, out) weights, spatially
flipped for Conv0_up, mod_bias stored without its +1, synthesis/noise{i}, dlatent_avg), not taken
from the loader, so a mapping error in the loader shows up as different images.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import math
import pickle
import sys
import types

import numpy as np
import pytest
import torch

import nada
from nada.generators.checkpoints import (
    CheckpointError,
    export_rosinality,
    generator_from_state_dict,
    load_generator,
    read_metadata,
    save_generator,
    sniff_format,
)
from nada.generators.stylegan2 import Generator, GeneratorConfig, make_fir_kernel


def tiny_generator(seed=0, resolution=16, style_dim=16, n_mlp=2, channels=None, conv_clamp=None, lr_mlp=0.01):
    torch.manual_seed(seed)
    channels = channels or {4: 8, 8: 8, 16: 8, 32: 8}
    cfg = GeneratorConfig(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp,
                          channels={r: c for r, c in channels.items() if r <= resolution},
                          conv_clamp=conv_clamp, lr_mlp=lr_mlp)
    G = Generator(cfg)
    with torch.no_grad():  # non-trivial values everywhere a mapping mistake could hide
        for name, p in G.named_parameters():
            if "bias" in name or name.endswith("noise.weight"):
                p.add_(torch.randn_like(p) * 0.3)
    G.set_w_avg(torch.randn(style_dim))
    return G.eval()


def small_custom_generator(seed=0):
    return tiny_generator(seed, channels={4: 8, 8: 7, 16: 6})


def images(G, n=2, psi=1.0, seed=123):
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.synthesis(G.mapping(z, truncation_psi=psi), noise_mode="const")


def assert_same_images(G1, G2, exact=True):
    for psi in (1.0, 0.7):
        a, b = images(G1, psi=psi), images(G2, psi=psi)
        if exact:
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ============================================================================ rosinality .pt


@pytest.mark.parametrize("zip_format", [True, False])
def test_rosinality_pt_round_trip(tmp_path, zip_format):
    G = small_custom_generator()
    path = tmp_path / "g.pt"
    args = argparse.Namespace(size=16, latent=16, n_mlp=2, channel_multiplier=2, iter=800000)
    torch.save({"g_ema": G.state_dict(), "g": {}, "latent_avg": G.w_avg.clone(), "args": args,
                "g_optim": {"state": {}, "param_groups": [{"lr": 0.002}]}}, path,
               _use_new_zipfile_serialization=zip_format)
    assert sniff_format(path) == ("torch-zip" if zip_format else "torch-legacy")
    G2 = load_generator(path)
    assert G2.config.channel_table == G.config.channel_table
    assert (G2.config.style_dim, G2.config.n_mlp, G2.resolution) == (16, 2, 16)
    assert G2.w_avg_ready
    torch.testing.assert_close(G2.w_avg, G.w_avg, rtol=0, atol=0)
    assert not G2.training
    assert_same_images(G, G2)


def test_rosinality_uses_g_when_no_g_ema_and_bare_state_dicts(tmp_path):
    G = tiny_generator(resolution=8)
    torch.save({"g": G.state_dict()}, tmp_path / "g.pt")
    torch.save(G.state_dict(), tmp_path / "bare.pt")
    torch.save({"g_ema": {f"module.{k}": v for k, v in G.state_dict().items()}, "mean_latent": G.w_avg[None]}, tmp_path / "ddp.pt")
    for name in ("g.pt", "bare.pt", "ddp.pt"):
        G2 = load_generator(tmp_path / name)
        assert G2.w_avg_ready == (name == "ddp.pt")  # only that file carries a mean latent
        with torch.no_grad():
            ws = torch.randn(2, G.num_ws, G.w_dim)
            torch.testing.assert_close(G2.synthesis(ws), G.synthesis(ws), rtol=0, atol=0)


def test_rosinality_prefers_g_ema_over_g(tmp_path):
    G_ema, G_train = tiny_generator(seed=0, resolution=8), tiny_generator(seed=1, resolution=8)
    torch.save({"g": G_train.state_dict(), "g_ema": G_ema.state_dict(), "latent_avg": G_ema.w_avg}, tmp_path / "both.pt")
    assert_same_images(load_generator(tmp_path / "both.pt"), G_ema)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_infers_channel_multiplier(multiplier):
    with torch.device("meta"):
        G = Generator(GeneratorConfig(resolution=256, style_dim=512, n_mlp=8, channel_multiplier=multiplier))
    from nada.generators.checkpoints import infer_rosinality_config

    cfg = infer_rosinality_config(G.state_dict())
    assert (cfg.resolution, cfg.style_dim, cfg.n_mlp, cfg.channel_multiplier, cfg.channels) == (256, 512, 8, multiplier, None)


def test_infers_explicit_channel_table():
    G = small_custom_generator()
    G2 = generator_from_state_dict(G.state_dict())
    assert G2.config.channels == {4: 8, 8: 7, 16: 6}
    assert not G2.w_avg_ready  # nothing in a bare state dict says what w_avg is


# ============================================================================ our safetensors + export


def test_safetensors_round_trip(tmp_path):
    G = small_custom_generator()
    path = save_generator(G, tmp_path / "sub" / "g.safetensors", metadata={"target": "a sketch"})
    assert sniff_format(path) == "safetensors"
    meta = read_metadata(path)
    assert meta["format"] == "nada.stylegan2" and meta["target"] == "a sketch" and meta["format_version"] == "1"
    G2 = load_generator(path)
    assert G2.config == G.config
    torch.testing.assert_close(G2.w_avg, G.w_avg, rtol=0, atol=0)
    assert_same_images(G, G2)
    assert [p.name for p in path.parent.iterdir()] == ["g.safetensors"]  # no temporary file left


def test_safetensors_detected_by_content_not_extension(tmp_path):
    G = tiny_generator(resolution=8)
    path = save_generator(G, tmp_path / "weights.bin")
    assert_same_images(load_generator(path), G)


def test_save_computes_w_avg_when_unknown(tmp_path):
    G = tiny_generator(resolution=8)
    G.w_avg_ready = False
    G.w_avg.zero_()
    path = save_generator(G, tmp_path / "g.safetensors")
    G2 = load_generator(path)
    assert G2.w_avg_ready and G2.w_avg.abs().sum() > 0
    expected = tiny_generator(resolution=8).compute_w_avg().clone()
    torch.testing.assert_close(G2.w_avg, expected, rtol=0, atol=0)


def test_save_rejects_reserved_metadata(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_generator(tiny_generator(resolution=8), tmp_path / "g.safetensors", metadata={"config": "{}"})


def standard_generator(seed=0, conv_clamp=None, lr_mlp=0.01):
    """The smallest generator with rosinality's own channel table (8 px, channel_multiplier 2: 512 channels)."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, conv_clamp=conv_clamp, lr_mlp=lr_mlp))
    with torch.no_grad():
        for name, p in G.named_parameters():
            if "bias" in name or name.endswith("noise.weight"):
                p.add_(torch.randn_like(p) * 0.3)
    G.set_w_avg(torch.randn(8))
    return G.eval()


def test_export_rosinality_round_trip(tmp_path):
    G = standard_generator(conv_clamp=1e6)  # NVIDIA-style clamp that never clips: rosinality draws the same
    path = export_rosinality(G, tmp_path / "export.pt")
    raw = torch.load(path, weights_only=True)  # plain tensors and dicts: loadable without our unpickler
    assert set(raw) == {"g_ema", "latent_avg", "args"}
    # exactly the arguments rosinality's Generator(size, style_dim, n_mlp, channel_multiplier) takes
    assert raw["args"] == {"size": 8, "latent": 8, "n_mlp": 1, "channel_multiplier": 2}
    assert list(raw["g_ema"]) == list(G.state_dict())
    assert_same_images(G, load_generator(path))


@pytest.mark.parametrize("change, reason", [
    ({"channels": {4: 8, 8: 8}}, "channel table"),
    ({"lr_mlp": 0.02}, "lr_mlp is 0.02"),
    ({"conv_clamp": 0.5}, "clips its activations"),
])
def test_export_rosinality_refuses_what_rosinality_cannot_reproduce(tmp_path, change, reason):
    from nada.generators.checkpoints import check_rosinality_exportable

    if "channels" in change:
        G = tiny_generator(resolution=8)
    else:
        G = standard_generator(**change)
    assert reason in check_rosinality_exportable(G)
    with pytest.raises(CheckpointError, match=reason) as info:
        export_rosinality(G, tmp_path / "export.pt")
    assert "\n" not in str(info.value) and ".safetensors" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written
    if "conv_clamp" in change:  # the clamp really changes the images, so refusing was right
        unclamped = standard_generator(lr_mlp=0.01)
        assert not torch.allclose(images(unclamped), images(G))


def test_top_level_lazy_api():
    assert nada.load_generator is load_generator
    assert issubclass(nada.CheckpointError, Exception)


# ============================================================================ NVIDIA persistence pickles


@contextlib.contextmanager
def installed_modules(modules: dict):
    """Put ``modules`` into ``sys.modules`` for the block (so pickle can name them), then restore what was there."""
    saved = {k: sys.modules.get(k) for k in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@contextlib.contextmanager
def fake_nvidia_modules():
    """Importable stand-ins so pickle can name torch_utils.persistence / dnnlib.util globals."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # never called: the test only pickles
        raise AssertionError("the real reconstructor must not run")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    torch_utils = types.ModuleType("torch_utils")
    torch_utils.persistence = persistence
    dnnlib = types.ModuleType("dnnlib")
    dnnlib.util = util
    with installed_modules({"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib,
                            "dnnlib.util": util}):
        yield _reconstruct_persistent_obj, EasyDict


# Source code stored in the pickle; the loader must never execute it.
EVIL_MODULE_SRC = "import pathlib\npathlib.Path({marker!r}).write_text('executed')\n"


class FakePersistent:
    """Pickles like an NVIDIA persistent module: reduce -> _reconstruct_persistent_obj(meta)."""

    def __init__(self, reconstruct, easydict, class_name, marker, params=(), buffers=(), modules=(), attrs=None, init_kwargs=None):
        state = dict(attrs or {})
        state.update(
            training=False,
            _parameters=collections.OrderedDict((k, torch.nn.Parameter(v.detach().clone(), requires_grad=False)) for k, v in params),
            _buffers=collections.OrderedDict((k, v.detach().clone()) for k, v in buffers),
            _non_persistent_buffers_set=set(),
            _modules=collections.OrderedDict(modules),
            _forward_hooks=collections.OrderedDict(),
            _init_args=(),
            _init_kwargs=easydict(init_kwargs or {}),
        )
        self.meta = dict(type="class", version=4, module_src=EVIL_MODULE_SRC.format(marker=str(marker)),
                         class_name=class_name, state=state)
        self.reconstruct = reconstruct

    def __reduce__(self):
        return (self.reconstruct, (self.meta,))


def nvidia_pickle_bytes(G, marker, conv_clamp=None, architecture="skip", c_dim=0, extra_mapping=None, with_w_avg=True):
    """G's weights in stylegan2-ada-pytorch's module tree, pickled as {'G', 'D', 'G_ema', ...}."""
    sd = {k: v.detach() for k, v in G.state_dict().items()}
    D, lr = G.w_dim, G.config.lr_mlp
    fir = make_fir_kernel((1, 3, 3, 1))
    with fake_nvidia_modules() as (reconstruct, EasyDict):
        def mod(class_name, **kw):
            return FakePersistent(reconstruct, EasyDict, class_name, marker, **kw)

        def fc(weight, bias, activation, gain):
            return mod("FullyConnectedLayer", params=[("weight", weight), ("bias", bias)],
                       attrs=dict(in_features=weight.shape[1], out_features=weight.shape[0], activation=activation,
                                  weight_gain=np.float64(gain / math.sqrt(weight.shape[1])), bias_gain=gain))

        fcs = [(f"fc{i}", fc(sd[f"style.{i + 1}.weight"], sd[f"style.{i + 1}.bias"], "lrelu", lr)) for i in range(G.config.n_mlp)]
        if extra_mapping:
            fcs += extra_mapping(fc)
        mapping = mod("MappingNetwork", buffers=[("w_avg", G.w_avg)] if with_w_avg else [], modules=fcs,
                      attrs=dict(z_dim=D, c_dim=c_dim, w_dim=D, num_ws=G.num_ws, num_layers=G.config.n_mlp, w_avg_beta=0.995))

        def layer(name, noise_index, res, up):
            return mod("SynthesisLayer",
                       params=[("weight", sd[f"{name}.conv.weight"][0]), ("noise_strength", sd[f"{name}.noise.weight"].reshape(())),
                               ("bias", sd[f"{name}.activate.bias"])],
                       buffers=[("resample_filter", fir), ("noise_const", sd[f"noises.noise_{noise_index}"][0, 0])],
                       modules=[("affine", fc(sd[f"{name}.conv.modulation.weight"], sd[f"{name}.conv.modulation.bias"], "linear", 1))],
                       attrs=dict(resolution=res, up=up, use_noise=True, activation="lrelu", conv_clamp=conv_clamp, padding=1))

        def torgb(name):
            return mod("ToRGBLayer",
                       params=[("weight", sd[f"{name}.conv.weight"][0]), ("bias", sd[f"{name}.bias"].reshape(3))],
                       modules=[("affine", fc(sd[f"{name}.conv.modulation.weight"], sd[f"{name}.conv.modulation.bias"], "linear", 1))],
                       attrs=dict(conv_clamp=conv_clamp, weight_gain=np.float64(1 / math.sqrt(sd[f"{name}.conv.weight"].shape[2]))))

        blocks = [("b4", mod("SynthesisBlock", params=[("const", sd["input.input"][0])], buffers=[("resample_filter", fir)],
                             modules=[("conv1", layer("conv1", 0, 4, 1)), ("torgb", torgb("to_rgb1"))],
                             attrs=dict(resolution=4, architecture=architecture, in_channels=0)))]
        for k in range(len(G.to_rgbs)):
            r = 2 ** (k + 3)
            blocks.append((f"b{r}", mod("SynthesisBlock", buffers=[("resample_filter", fir)],
                                        modules=[("conv0", layer(f"convs.{2 * k}", 2 * k + 1, r, 2)),
                                                 ("conv1", layer(f"convs.{2 * k + 1}", 2 * k + 2, r, 1)),
                                                 ("torgb", torgb(f"to_rgbs.{k}"))],
                                        attrs=dict(resolution=r, architecture=architecture))))
        synthesis = mod("SynthesisNetwork", modules=blocks, attrs=dict(w_dim=D, img_resolution=G.resolution, img_channels=3))
        kwargs = dict(z_dim=D, c_dim=c_dim, w_dim=D, img_resolution=G.resolution, img_channels=3,
                      mapping_kwargs=EasyDict(num_layers=G.config.n_mlp), synthesis_kwargs=EasyDict(conv_clamp=conv_clamp))
        G_ema = mod("Generator", modules=[("synthesis", synthesis), ("mapping", mapping)],
                    attrs=dict(z_dim=D, c_dim=c_dim, w_dim=D, img_resolution=G.resolution, img_channels=3, num_ws=G.num_ws),
                    init_kwargs=kwargs)
        D_net = mod("Discriminator", params=[("x", torch.zeros(2))])
        data = {"G": G_ema, "D": D_net, "G_ema": G_ema, "augment_pipe": None,
                "training_set_kwargs": EasyDict(class_name="training.dataset.ImageFolderDataset", resolution=G.resolution)}
        return pickle.dumps(data, protocol=4)


@pytest.mark.parametrize("conv_clamp", [None, 0.5])
def test_nvidia_pickle_round_trip(tmp_path, conv_clamp):
    marker = tmp_path / "executed.txt"
    G = small_custom_generator() if conv_clamp is None else tiny_generator(conv_clamp=conv_clamp)
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(nvidia_pickle_bytes(G, marker, conv_clamp=conv_clamp))
    assert b"torch_utils.persistence" in path.read_bytes() and b"_reconstruct_persistent_obj" in path.read_bytes()
    assert sniff_format(path) == "pickle"
    G2 = load_generator(path)
    assert not marker.exists()  # the module source in the pickle was never executed
    assert G2.config.conv_clamp == conv_clamp
    assert G2.config.channel_table == G.config.channel_table
    torch.testing.assert_close(G2.w_avg, G.w_avg, rtol=0, atol=0)
    assert_same_images(G, G2)


def test_nvidia_pickle_without_w_avg_buffer(tmp_path):
    """w_avg_beta=None models carry no w_avg; it is then computed on first use."""
    G = tiny_generator(resolution=8)
    path = tmp_path / "n.pkl"
    path.write_bytes(nvidia_pickle_bytes(G, tmp_path / "m", with_w_avg=False))
    G2 = load_generator(path)
    assert not G2.w_avg_ready
    torch.testing.assert_close(G2.mean_w(), G.compute_w_avg(), rtol=0, atol=0)


@pytest.mark.parametrize("variant,message", [
    (dict(c_dim=10), "class-conditional"),
    (dict(architecture="resnet"), "'skip' generator architecture"),
])
def test_nvidia_unsupported_variants_are_refused(tmp_path, variant, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(nvidia_pickle_bytes(tiny_generator(resolution=8), tmp_path / "m", **variant))
    with pytest.raises(CheckpointError, match=message) as info:
        load_generator(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_nvidia_z_dim_different_from_w_dim_is_refused(tmp_path):
    G = tiny_generator(resolution=8)

    def wide_first_layer(fc):  # replace fc0 by a (w, 2w) layer: z_dim = 2 * w_dim
        return [("fc0", fc(torch.randn(G.w_dim, 2 * G.w_dim), torch.zeros(G.w_dim), "lrelu", 0.01))]

    path = tmp_path / "zw.pkl"
    path.write_bytes(nvidia_pickle_bytes(G, tmp_path / "m", extra_mapping=wide_first_layer))
    with pytest.raises(CheckpointError, match="z_dim == w_dim"):
        load_generator(path)


def test_stylegan3_pickle_is_refused_by_name(tmp_path):
    with fake_nvidia_modules() as (reconstruct, EasyDict):
        def mod(class_name, **kw):
            return FakePersistent(reconstruct, EasyDict, class_name, tmp_path / "m", **kw)

        synthesis = mod("SynthesisNetwork", modules=[
            ("input", mod("SynthesisInput", params=[("weight", torch.zeros(4, 2))])),
            ("L0_36_512", mod("SynthesisLayer", params=[("weight", torch.zeros(4, 4, 1, 1))]))])
        G_ema = mod("Generator", modules=[("synthesis", synthesis)], attrs=dict(c_dim=0, img_channels=3))
        data = pickle.dumps({"G_ema": G_ema}, protocol=4)
    path = tmp_path / "stylegan3-t.pkl"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        load_generator(path)


# ============================================================================ TensorFlow pickles


@contextlib.contextmanager
def fake_tf_network_class():
    module = types.ModuleType("dnnlib.tflib.network")

    class Network:
        def __init__(self, name, variables, components=None, static_kwargs=None):
            self._state = dict(version=4, name=name, static_kwargs=dict(static_kwargs or {}), components=dict(components or {}),
                               build_module_src="raise SystemExit('never run')", build_func_name="G_main",
                               variables=list(variables), input_shapes=[[None, 512]], output_shapes=[[None, 3, 8, 8]],
                               input_names=["latents_in"], output_names=["images_out"])

        def __getstate__(self):
            return self._state

    Network.__module__, Network.__qualname__ = "dnnlib.tflib.network", "Network"
    module.Network = Network
    with installed_modules({"dnnlib": types.ModuleType("dnnlib"), "dnnlib.tflib": types.ModuleType("dnnlib.tflib"),
                            "dnnlib.tflib.network": module}):
        yield Network


def tf_pickle_bytes(G, static_kwargs=None):
    """G's weights as NVIDIA's TensorFlow StyleGAN2 (G, D, Gs) pickle."""
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in G.state_dict().items()}
    mapping = []
    for i in range(G.config.n_mlp):
        mapping += [(f"Dense{i}/weight", sd[f"style.{i + 1}.weight"].T.copy()), (f"Dense{i}/bias", sd[f"style.{i + 1}.bias"])]

    def modvars(scope, name):
        return [(f"{scope}/mod_weight", sd[f"{name}.conv.modulation.weight"].T.copy()),
                (f"{scope}/mod_bias", (sd[f"{name}.conv.modulation.bias"] - np.float32(1)).astype(np.float32))]

    def conv(scope, name, up):
        w = sd[f"{name}.conv.weight"][0].transpose(2, 3, 1, 0)  # (out, in, k, k) -> (k, k, in, out)
        if up:
            w = w[::-1, ::-1]
        return [(f"{scope}/weight", np.ascontiguousarray(w)), *modvars(scope, name),
                (f"{scope}/noise_strength", np.float32(sd[f"{name}.noise.weight"][0])), (f"{scope}/bias", sd[f"{name}.activate.bias"])]

    def torgb(scope, name):
        w = sd[f"{name}.conv.weight"][0].transpose(2, 3, 1, 0)
        return [(f"{scope}/weight", np.ascontiguousarray(w)), *modvars(scope, name), (f"{scope}/bias", sd[f"{name}.bias"].reshape(3))]

    synthesis = [("4x4/Const/const", sd["input.input"]), *conv("4x4/Conv", "conv1", False), *torgb("4x4/ToRGB", "to_rgb1")]
    for k in range(len(G.to_rgbs)):
        r = 2 ** (k + 3)
        synthesis += conv(f"{r}x{r}/Conv0_up", f"convs.{2 * k}", True)
        synthesis += conv(f"{r}x{r}/Conv1", f"convs.{2 * k + 1}", False)
        synthesis += torgb(f"{r}x{r}/ToRGB", f"to_rgbs.{k}")
    synthesis += [(f"noise{i}", sd[f"noises.noise_{i}"]) for i in range(G.num_layers)]
    kwargs = {"resolution": G.resolution, "num_channels": 3, "label_size": 0, **(static_kwargs or {})}
    with fake_tf_network_class() as Network:
        comps = {"mapping": Network("G_mapping", mapping, static_kwargs=kwargs),
                 "synthesis": Network("G_synthesis", synthesis, static_kwargs=kwargs)}
        Gs = Network("Gs", [("lod", np.float32(0)), ("dlatent_avg", G.w_avg.numpy().astype(np.float32))], comps, kwargs)
        D = Network("D", [("Output/weight", np.zeros((4, 1), np.float32))])
        return pickle.dumps((Gs, D, Gs), protocol=4)


def test_tensorflow_pickle_round_trip(tmp_path):
    G = small_custom_generator()
    path = tmp_path / "stylegan2-car-config-f.pkl"
    path.write_bytes(tf_pickle_bytes(G))
    assert b"dnnlib.tflib.network" in path.read_bytes()
    G2 = load_generator(path)
    torch.testing.assert_close(G2.w_avg, G.w_avg, rtol=0, atol=0)
    assert G2.config.channel_table == G.config.channel_table
    # mod_bias is stored minus one, so float32 round-off separates the two by ~1 ulp
    assert_same_images(G, G2, exact=False)


def test_tensorflow_up_conv_flip_matters(tmp_path):
    """The Conv0_up kernels must be flipped back: loading them unflipped gives other images."""
    G = small_custom_generator()
    good = tmp_path / "good.pkl"
    good.write_bytes(tf_pickle_bytes(G))
    G_flipped = small_custom_generator()
    with torch.no_grad():
        for k in range(0, len(G_flipped.convs), 2):
            G_flipped.convs[k].conv.weight.copy_(G_flipped.convs[k].conv.weight.flip([3, 4]))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(tf_pickle_bytes(G_flipped))
    assert (images(load_generator(bad)) - images(G)).abs().max() > 1e-3
    assert (images(load_generator(good)) - images(G)).abs().max() < 1e-5


def test_tensorflow_conditional_is_refused(tmp_path):
    path = tmp_path / "cond.pkl"
    path.write_bytes(tf_pickle_bytes(tiny_generator(resolution=8), static_kwargs={"label_size": 10}))
    with pytest.raises(CheckpointError, match="class-conditional"):
        load_generator(path)


# ============================================================================ all formats agree


def test_every_format_gives_identical_images(tmp_path):
    G = small_custom_generator(seed=5)
    torch.save({"g_ema": G.state_dict(), "latent_avg": G.w_avg}, tmp_path / "a.pt")
    save_generator(G, tmp_path / "b.safetensors")
    (tmp_path / "d.pkl").write_bytes(nvidia_pickle_bytes(G, tmp_path / "marker"))
    (tmp_path / "e.pkl").write_bytes(tf_pickle_bytes(G))
    reference = images(G, n=3, psi=0.7)
    for name in ("a.pt", "b.safetensors", "d.pkl"):
        torch.testing.assert_close(images(load_generator(tmp_path / name), n=3, psi=0.7), reference, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(images(load_generator(tmp_path / "e.pkl"), n=3, psi=0.7), reference, rtol=1e-5, atol=1e-5)
    # and saving what was loaded from NVIDIA's format gives the same file content as saving G
    save_generator(load_generator(tmp_path / "d.pkl"), tmp_path / "f.safetensors")
    assert_same_images(load_generator(tmp_path / "f.safetensors"), G)
