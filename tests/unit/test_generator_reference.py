"""Numerical checks of the generator against straightforward float64 references.

The references are written from rosinality's formulation and the state dict alone: an explicit
modulated + demodulated weight per sample, one ``F.conv2d`` per sample, transposed convolution
spelled out as zero insertion + full padding + flipped kernel, and the FIR filter as an explicit
zero-insertion up-sampling followed by a padded true convolution. The whole-network reference is
our stand-in for "reproduces rosinality's ``g([z], randomize_noise=False)``".
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nada.generators.stylegan2 import Generator, GeneratorConfig, ModulatedConv2d

TAPS = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
FIR = torch.outer(TAPS, TAPS) / TAPS.sum() ** 2


# ----------------------------------------------------------------------------- reference pieces


def ref_fir(x: torch.Tensor, kernel: torch.Tensor, pad0: int, pad1: int) -> torch.Tensor:
    """Pad (pad0 before, pad1 after, both axes) and convolve every channel with ``kernel`` (true convolution)."""
    c = x.shape[1]
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    k = kernel.flip([0, 1]).to(x)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def ref_zero_insert(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = x.new_zeros(x.shape[0], x.shape[1], *size)
    out[:, :, ::2, ::2] = x
    return out


def ref_style(mod_w: torch.Tensor, mod_b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return w @ (mod_w / math.sqrt(mod_w.shape[1])).t() + mod_b


def ref_modconv(x, weight, mod_w, mod_b, w, demodulate=True, upsample=False):
    """x (N, in, H, W); weight (out, in, k, k) raw parameter; w (N, style_dim). Loops over samples."""
    n = x.shape[0]
    out_c, in_c, k, _ = weight.shape
    styles = ref_style(mod_w, mod_b, w)
    outs = []
    for i in range(n):
        wi = weight / math.sqrt(in_c * k * k) * styles[i].view(1, in_c, 1, 1)
        if demodulate:
            wi = wi / torch.sqrt(wi.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xi = x[i : i + 1]
        if upsample:
            h, wd = xi.shape[-2:]
            z = F.pad(ref_zero_insert(xi, (2 * h - 1, 2 * wd - 1)), [k - 1] * 4)
            y = F.conv2d(z, wi.flip([2, 3]))  # == conv_transpose2d(stride 2) with the unflipped kernel
            y = ref_fir(y, FIR * 4, 1, 1)
        else:
            y = F.conv2d(xi, wi, padding=k // 2)
        outs.append(y)
    return torch.cat(outs)


def ref_lrelu(x, bias):
    return F.leaky_relu(x + bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)


def ref_upsample_rgb(x):
    h, w = x.shape[-2:]
    return ref_fir(ref_zero_insert(x, (2 * h, 2 * w)), FIR * 4, 2, 1)


def ref_mapping(sd, z, n_mlp, lr_mul=0.01):
    x = z / torch.sqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        W, b = sd[f"style.{i}.weight"], sd[f"style.{i}.bias"]
        x = F.leaky_relu(x @ (W * lr_mul / math.sqrt(W.shape[1])).t() + b * lr_mul, 0.2) * math.sqrt(2)
    return x


def ref_synthesis(sd, latent, n_blocks):
    """rosinality's forward with randomize_noise=False; latent (N, n_latent, D)."""
    def styled(name, x, w, noise_key, up):
        y = ref_modconv(x, sd[f"{name}.conv.weight"][0], sd[f"{name}.conv.modulation.weight"],
                        sd[f"{name}.conv.modulation.bias"], w, upsample=up)
        y = y + sd[f"{name}.noise.weight"] * sd[noise_key]
        return ref_lrelu(y, sd[f"{name}.activate.bias"])

    def to_rgb(name, x, w, skip):
        y = ref_modconv(x, sd[f"{name}.conv.weight"][0], sd[f"{name}.conv.modulation.weight"],
                        sd[f"{name}.conv.modulation.bias"], w, demodulate=False)
        y = y + sd[f"{name}.bias"]
        return y if skip is None else y + ref_upsample_rgb(skip)

    n = latent.shape[0]
    x = sd["input.input"].repeat(n, 1, 1, 1)
    x = styled("conv1", x, latent[:, 0], "noises.noise_0", False)
    skip = to_rgb("to_rgb1", x, latent[:, 1], None)
    i = 1
    for k in range(n_blocks):
        x = styled(f"convs.{2 * k}", x, latent[:, i], f"noises.noise_{2 * k + 1}", True)
        x = styled(f"convs.{2 * k + 1}", x, latent[:, i + 1], f"noises.noise_{2 * k + 2}", False)
        skip = to_rgb(f"to_rgbs.{k}", x, latent[:, i + 2], skip)
        i += 2
    return skip


# ----------------------------------------------------------------------------- fixtures


def make_generator(seed=0, resolution=16, style_dim=24, n_mlp=3):
    torch.manual_seed(seed)
    channels = {4: 12, 8: 10, 16: 8, 32: 6}
    G = Generator(GeneratorConfig(resolution=resolution, style_dim=style_dim, n_mlp=n_mlp,
                                  channels={r: c for r, c in channels.items() if r <= resolution}))
    with torch.no_grad():  # non-zero biases and noise strengths so every term is exercised
        for name, p in G.named_parameters():
            if name.endswith("activate.bias") or name.endswith("noise.weight") or name.endswith("to_rgb1.bias") or (
                    name.startswith("to_rgbs") and name.endswith(".bias")) or name.startswith("style") and name.endswith("bias"):
                p.copy_(torch.randn_like(p) * 0.3)
            elif name.endswith("modulation.bias"):
                p.copy_(1 + torch.randn_like(p) * 0.3)
    return G.eval()


def sd64(G):
    return {k: v.detach().double() for k, v in G.state_dict().items()}


# ----------------------------------------------------------------------------- modulated convolution


@pytest.mark.parametrize("kernel_size,demodulate,upsample", [
    (3, True, False), (3, True, True), (3, False, False), (3, False, True),
    (1, False, False), (1, True, False),  # 1x1 without demodulation is ToRGB
])
def test_modulated_conv_matches_per_sample_reference(kernel_size, demodulate, upsample):
    torch.manual_seed(1)
    conv = ModulatedConv2d(5, 7, kernel_size, style_dim=6, demodulate=demodulate, upsample=upsample).double()
    with torch.no_grad():
        conv.modulation.bias.copy_(1 + 0.5 * torch.randn(5, dtype=torch.float64))
    x = torch.randn(3, 5, 6, 6, dtype=torch.float64)
    w = torch.randn(3, 6, dtype=torch.float64)
    ours = conv(x, w)
    ref = ref_modconv(x, conv.weight[0].detach(), conv.modulation.weight.detach(), conv.modulation.bias.detach(),
                      w, demodulate=demodulate, upsample=upsample)
    assert ours.shape == ref.shape == (3, 7, 12 if upsample else 6, 12 if upsample else 6)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_modulated_conv_samples_are_independent():
    """Each sample uses its own style: changing sample 1's style leaves sample 0 unchanged."""
    torch.manual_seed(2)
    conv = ModulatedConv2d(4, 4, 3, style_dim=4).double()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    w = torch.randn(2, 4, dtype=torch.float64)
    w2 = w.clone()
    w2[1] += 1.0
    a, b = conv(x, w), conv(x, w2)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert not torch.allclose(a[1], b[1])


# ----------------------------------------------------------------------------- whole generator


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_generator_matches_reference_for_z(resolution):
    G = make_generator(resolution=resolution)
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        ours = G.synthesis(G.mapping(z), noise_mode="const")
    sd = sd64(G)
    w = ref_mapping(sd, z.double(), G.config.n_mlp)
    ref = ref_synthesis(sd, w[:, None].repeat(1, G.num_ws, 1), len(G.to_rgbs))
    assert ours.shape == (3, 3, resolution, resolution)
    assert (ours.double() - ref).abs().max().item() < 1e-4
    # and the float64 copy of the module agrees to round-off
    G64 = G.double()
    with torch.no_grad():
        torch.testing.assert_close(G64.synthesis(G64.mapping(z.double()), noise_mode="const"), ref, rtol=1e-9, atol=1e-9)


def test_generator_matches_reference_for_w_plus():
    G = make_generator(resolution=16)
    ws = torch.randn(2, G.num_ws, G.w_dim)  # every row different: checks which layer reads which row
    with torch.no_grad():
        ours = G.synthesis(ws, noise_mode="const")
    ref = ref_synthesis(sd64(G), ws.double(), len(G.to_rgbs))
    assert (ours.double() - ref).abs().max().item() < 1e-4
    # swapping two rows must change the image (the order matters and is the reference's)
    swapped = ws.clone()
    swapped[:, [2, 3]] = ws[:, [3, 2]]
    with torch.no_grad():
        assert (G.synthesis(swapped, noise_mode="const") - ours).abs().max().item() > 1e-3


def test_generator_matches_reference_with_truncation():
    G = make_generator(resolution=16)
    latent = torch.randn(G.w_dim)
    G.set_w_avg(latent)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        ours = G.synthesis(G.mapping(z, truncation_psi=0.7), noise_mode="const")
    sd = sd64(G)
    w = ref_mapping(sd, z.double(), G.config.n_mlp)
    w = latent.double() + 0.7 * (w - latent.double())
    ref = ref_synthesis(sd, w[:, None].repeat(1, G.num_ws, 1), len(G.to_rgbs))
    assert (ours.double() - ref).abs().max().item() < 1e-4


def test_noise_modes():
    G = make_generator(resolution=8)
    ws = torch.randn(2, G.num_ws, G.w_dim)
    with torch.no_grad():
        const_a = G.synthesis(ws, noise_mode="const")
        const_b = G.synthesis(ws, noise_mode="const")
        rand = G.synthesis(ws, noise_mode="random")
        none = G.synthesis(ws, noise_mode="none")
        zero_noise = G.synthesis(ws, noise=[torch.zeros_like(n) for n in G.noise_buffers()])
    torch.testing.assert_close(const_a, const_b, rtol=0, atol=0)
    assert not torch.allclose(const_a, rand)
    torch.testing.assert_close(none, zero_noise, rtol=0, atol=0)
