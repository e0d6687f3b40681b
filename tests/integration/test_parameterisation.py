"""The seam for what trains: the network's hooks, FineTune as a Parameterisation, and a toy
StyleSpace parameterisation (defined here only) trained by the real loop without touching it."""
from __future__ import annotations


import pytest
import torch

from fixtures import make_tiny_generator
from nada.adapt.config import AdaptConfig
from nada.adapt.engine import Adapter
from nada.adapt.errors import AdaptError
from nada.adapt.layers import parameter_names
from nada.adapt.parameterisation import Combined, FineTune, HookParameterisation, hooks_installed


def config(clip_dir, **kw):
    g = dict(clip=[str(clip_dir)], source_text="photo", target_text="sketch")
    base = dict(iters=3, batch=2, sample_every=0, save_every=0, auto_layer_k=2, auto_layer_batch=2, n_samples=2)
    base.update(kw)
    return AdaptConfig(**base, guidance=g)


class StyleOffsets(HookParameterisation):
    """Throw-away: a learned offset added to every modulated conv's style vector (StyleSpace)."""

    name = "style-offsets"

    def __init__(self, G_frozen):
        super().__init__(G_frozen)
        convs = [conv for _, conv in G_frozen.modulated_convs()]
        self.offsets = [torch.zeros(c.in_channel, requires_grad=True) for c in convs]
        self.calls = 0

    def parameters(self):
        return self.offsets

    def style_hooks(self):
        self.calls += 1
        return {i: (lambda s, d=d: s + d) for i, d in enumerate(self.offsets)}

    def state_dict(self):
        return {"offsets": [d.detach().clone() for d in self.offsets]}

    def load_state_dict(self, state):
        with torch.no_grad():
            for d, s in zip(self.offsets, state["offsets"]):
                d.copy_(s)

    def bake(self, G):
        # the offset is a bias of each modulation: style = F.linear(...) + (b + d / lr_mul) * lr_mul
        for (_, conv), d in zip(G.modulated_convs(), self.offsets):
            conv.modulation.bias += d / conv.modulation.lr_mul


# ----------------------------------------------------------------------------- the network's hooks


def test_hooks_default_to_none_and_identity_hooks_change_nothing(tiny_generator):
    G = tiny_generator
    convs = [c for _, c in G.modulated_convs()]
    assert len(convs) == len(G.synthesis_layers()) and all(c.style_hook is None and c.weight_hook is None for c in convs)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0)))
    plain = G.synthesis(ws)
    seen = []
    with hooks_installed(G, style={i: (lambda s: s) for i in range(len(convs))},
                         weight={0: (lambda w: seen.append(w.shape) or w)}):
        hooked = G.synthesis(ws)
    assert torch.equal(plain, hooked) and seen == [convs[0].weight.shape[1:]]
    assert all(c.style_hook is None and c.weight_hook is None for c in convs)  # put back after the block
    assert set(G.state_dict()) == set(make_tiny_generator().state_dict())  # hooks are no state


def test_a_style_hook_acts_on_that_conv_only(tiny_generator):
    G = tiny_generator
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)))
    last = len(G.modulated_convs()) - 1  # the last ToRGB: only the final image changes
    with hooks_installed(G, style={last: lambda s: s * 0}):
        img = G.synthesis(ws)
    assert not torch.equal(img, G.synthesis(ws))


# ----------------------------------------------------------------------------- FineTune


def test_finetune_rows_scope_and_stale_moments(tiny_generator):
    p = FineTune(tiny_generator, "1,3", "conv")
    opt = torch.optim.Adam(p.parameters(), lr=0.1)
    p.attach(opt)
    trainable = {n for n, q in p.G_train.named_parameters() if q.requires_grad}
    assert p.rows == [1, 3] and trainable == set(parameter_names(p.G_train, [1, 3], "conv"))
    p.synthesis(tiny_generator.mapping(torch.randn(1, tiny_generator.z_dim))).mean().backward()
    opt.step()
    assert len(opt.state) == len(trainable)
    p.set_rows([3])
    assert len(opt.state) == len(parameter_names(p.G_train, [3], "conv"))
    assert p.G_train is not tiny_generator and p.adapted_generator() is p.G_train


def test_finetune_state_round_trips_and_refuses_another_generator(tiny_generator):
    a = FineTune(tiny_generator, "all")
    with torch.no_grad():
        a.G_train.conv1.conv.weight.add_(1)
    b = FineTune(tiny_generator, "adaptive")
    b.attach(torch.optim.Adam(b.parameters()))
    b.load_state_dict(a.state_dict())
    assert b.rows == a.rows and torch.equal(b.G_train.conv1.conv.weight, a.G_train.conv1.conv.weight)
    other = FineTune(make_tiny_generator(resolution=16), "all")
    with pytest.raises(AdaptError, match="does not fit this generator"):
        other.load_state_dict(a.state_dict())


def test_finetunes_combine_by_adding_their_deltas(tiny_generator):
    a, b = FineTune(tiny_generator, "all"), FineTune(tiny_generator, "all")
    with torch.no_grad():
        a.G_train.conv1.conv.weight.add_(0.5)
        b.G_train.conv1.conv.weight.add_(0.25)
        b.G_train.to_rgb1.bias.add_(1.0)
    both = a.combine([b])
    base = tiny_generator
    assert torch.allclose(both.G_train.conv1.conv.weight, base.conv1.conv.weight + 0.75)
    assert torch.allclose(both.G_train.to_rgb1.bias, base.to_rgb1.bias + 1.0)
    with pytest.raises(NotImplementedError):
        a.combine([StyleOffsets(base)])


# ----------------------------------------------------------------------------- a new parameterisation, no loop change


def test_a_toy_style_parameterisation_trains_through_the_unchanged_loop(tiny_clip_dir, tmp_path):
    cfg = config(tiny_clip_dir, lr=0.05)
    G = make_tiny_generator()
    frozen_before = {n: p.detach().clone() for n, p in G.named_parameters()}
    run = Adapter(cfg, tmp_path / "run", generator=G, progress=False, log=lambda _: None, parameterisation=StyleOffsets)
    res = run.run()
    toy = run.param
    assert isinstance(toy, StyleOffsets) and toy.calls > 0
    assert any(d.abs().sum() > 0 for d in toy.offsets)  # the offsets learned
    assert all(torch.equal(frozen_before[n], p) for n, p in run.G_frozen.named_parameters())  # nothing else did
    assert res.metrics["steps"] == cfg.iters and (tmp_path / "run" / "generator.safetensors").exists()
    # the saved generator bakes the offsets in: it draws what the hooks drew
    ws = run.G_frozen.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        assert torch.allclose(res.generator.synthesis(ws), toy.synthesis(ws), atol=1e-5)


def test_hook_parameterisations_combine_by_composing_hooks(tiny_generator):
    G = tiny_generator
    a, b = StyleOffsets(G), StyleOffsets(G)
    with torch.no_grad():
        a.offsets[0].fill_(0.5)
        b.offsets[0].fill_(0.25)
        b.offsets[-1].fill_(-1.0)
    both = a.combine([b])
    assert isinstance(both, Combined) and len(both.parameters()) == 2 * len(a.offsets)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        one = StyleOffsets(G)
        one.offsets[0].fill_(0.75)
        one.offsets[-1].fill_(-1.0)
        expected = one.synthesis(ws)
        assert not torch.allclose(a.synthesis(ws), expected, atol=1e-3)
        assert torch.allclose(both.synthesis(ws), expected, atol=1e-6)
        # nested installs compose the same way
        with hooks_installed(G, style=a.style_hooks()):
            assert torch.allclose(b.synthesis(ws), expected, atol=1e-6)
        assert torch.allclose(both.adapted_generator().synthesis(ws), expected, atol=1e-5)
    state = both.state_dict()
    again = StyleOffsets(G).combine([StyleOffsets(G)])
    again.load_state_dict(state)
    assert torch.equal(again.parts[1].offsets[-1], b.offsets[-1])
    with pytest.raises(NotImplementedError):
        a.combine([FineTune(G)])
