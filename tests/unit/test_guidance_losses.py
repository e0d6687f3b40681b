"""Every loss against a value worked out by hand on tiny tensors; learned weighting stays sane."""
from __future__ import annotations

import math

import pytest
import torch

from nada.guidance import losses as L

torch.set_num_threads(1)


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_directional_loss_by_hand():
    # sample 1: dI = (0.6, -0.2, 0), |dI| = sqrt(0.4), dT along x -> cos = 0.6 / sqrt(0.4)
    # sample 2: dI = (-1, 0, 0) opposite to dT -> cos = -1 -> loss 2
    e_train = t([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    e_frozen = t([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    direction = t([2.0, 0.0, 0.0])  # length does not matter
    expected = ((1 - 0.6 / math.sqrt(0.4)) + 2.0) / 2
    assert L.directional_loss(e_train, e_frozen, direction).item() == pytest.approx(expected, abs=1e-12)


def test_directional_loss_at_zero_image_change_is_finite_and_points_along_the_text():
    e = t([[0.6, 0.8], [1.0, 0.0]]).requires_grad_(True)
    direction = t([0.0, 3.0])
    loss = L.directional_loss(e, e.detach(), direction)
    loss.backward()
    assert loss.item() == 1.0
    # d/de of mean(1 - e . u / eps) = -u / (eps * N), u = unit text direction
    assert torch.allclose(e.grad, t([[0.0, -1.0], [0.0, -1.0]]) / (L.DELTA_EPS * 2))


def test_global_by_hand():
    target = t([0.6, 0.8])
    # cosines 0.6 and 0.8 -> losses 0.4 and 0.2 -> mean 0.3
    g = L.global_loss(t([[1.0, 0.0], [0.0, 2.0]]), target)
    assert g.item() == pytest.approx(0.3, abs=1e-12)


def test_patch_directional_loss_by_hand():
    # one patch, dI along x; part directions x and y -> cos = (1, 0)
    # softmax(1, 0) = (e, 1) / (e + 1); loss = e/(e+1) * 0 + 1/(e+1) * 1 = 1 / (1 + e)
    loss = L.patch_directional_loss(t([[1.0, 0.0]]), t([[0.0, 0.0]]), t([[5.0, 0.0], [0.0, 1.0]]))
    assert loss.item() == pytest.approx(1 / (1 + math.e), abs=1e-12)
    # two patches, the second moving along y: same value by symmetry
    loss2 = L.patch_directional_loss(t([[1.0, 0.0], [0.0, 2.0]]), t([[0.0, 0.0], [0.0, 1.0]]), t([[1.0, 0.0], [0.0, 1.0]]))
    assert loss2.item() == pytest.approx(1 / (1 + math.e), abs=1e-12)


def test_clip_angle_loss_by_hand():
    # cos(e_train, e_frozen) = 0.6, text cosine 0.8 -> (0.6 - 0.8)^2 = 0.04
    assert L.clip_angle_loss(t([[1.0, 0.0]]), t([[0.6, 0.8]]), 0.8).item() == pytest.approx(0.04, abs=1e-12)


def test_manifold_consistency_loss_by_hand():
    # trained pair is orthogonal (cos 0), frozen pair has cos 0.6 -> both off-diagonal diffs -0.6 -> 0.36
    e_train = t([[1.0, 0.0], [0.0, 1.0]])
    e_frozen = t([[1.0, 0.0], [0.6, 0.8]])
    assert L.manifold_consistency_loss(e_train, e_frozen).item() == pytest.approx(0.36, abs=1e-12)
    assert L.manifold_consistency_loss(e_train[:1], e_frozen[:1]).item() == 0.0


def test_gram_and_texture_loss_by_hand():
    tokens = t([[[1.0, 2.0], [3.0, 4.0]]])  # N=1, T=2 tokens, C=2 channels
    # X^T X = [[1+9, 2+12], [2+12, 4+16]] = [[10, 14], [14, 20]]; / T = [[5, 7], [7, 10]]
    assert torch.equal(L.gram_matrix(tokens), t([[[5.0, 7.0], [7.0, 10.0]]]))
    # style Gram differs in one of four entries by 1 -> mean square 0.25; second layer identical -> 0
    style = [t([[5.0, 7.0], [7.0, 9.0]]), t([[5.0, 7.0], [7.0, 10.0]])]
    assert L.texture_loss([tokens, tokens], style).item() == pytest.approx(0.125, abs=1e-12)
    with pytest.raises(ValueError):
        L.texture_loss([tokens], style)


def test_self_similarity_and_structure_loss_against_a_float64_loop():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)
    b = torch.randn(2, 5, 4, generator=g, dtype=torch.float64)

    def ref_sim(x):
        out = torch.zeros(x.shape[0], x.shape[1], x.shape[1], dtype=torch.float64)
        for n in range(x.shape[0]):
            for i in range(x.shape[1]):
                for j in range(x.shape[1]):
                    out[n, i, j] = (x[n, i] @ x[n, j]) / (x[n, i].norm() * x[n, j].norm())
        return out

    assert torch.allclose(L.self_similarity(a), ref_sim(a), atol=1e-12)
    want = ((ref_sim(a) - ref_sim(b)) ** 2).mean()
    assert L.structure_loss([a], [b]).item() == pytest.approx(want.item(), abs=1e-12)
    # two layers: the mean of the per-layer values
    assert L.structure_loss([a, a], [b, a]).item() == pytest.approx(want.item() / 2, abs=1e-12)
    # what each token looks like may change (its length), where it sits among the others may not
    scaled = a * torch.rand(2, 5, 1, generator=g, dtype=torch.float64).add(0.5)
    assert L.structure_loss([scaled], [a]).item() < 1e-24
    moved = a[:, torch.tensor([1, 0, 2, 3, 4])]
    assert L.structure_loss([moved], [a]).item() > 1e-3
    with pytest.raises(ValueError):
        L.structure_loss([a], [])


def test_l2_and_perceptual_by_hand():
    a = t([[[[0.0, 0.0]]]])
    b = t([[[[1.0, 3.0]]]])
    assert L.l2_loss(a, b).item() == pytest.approx((1 + 9) / 2, abs=1e-12)
    # channel vectors (3, 4) -> (0.6, 0.8) and (0, 2) -> (0, 1): squared distance 0.36 + 0.04 = 0.4
    fa = t([3.0, 4.0]).view(1, 2, 1, 1)
    fb = t([0.0, 2.0]).view(1, 2, 1, 1)
    assert L.perceptual_loss([fa], [fb]).item() == pytest.approx(0.4, abs=1e-9)
    assert L.perceptual_loss([fa, fa], [fb, fa]).item() == pytest.approx(0.4, abs=1e-9)


def test_learned_weights_formula_and_initial_values():
    lw = L.LearnedLossWeights(["direction", "l2"], {"direction": 1.0, "l2": 4.0})
    w = lw.weights()
    assert w["direction"] == pytest.approx(1.0, rel=1e-5) and w["l2"] == pytest.approx(4.0, rel=1e-5)
    s = lw.log_vars().detach()
    losses = {"direction": torch.tensor(0.5), "l2": torch.tensor(0.1)}
    expected = math.exp(-s[0]) * 0.5 + s[0] + math.exp(-s[1]) * 0.1 + s[1]
    assert lw(losses).item() == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(KeyError):
        lw({"direction": torch.tensor(1.0)})


def test_learned_weights_converge_to_inverse_loss():
    # For constant losses the optimum of exp(-s) L + s is s = log L, i.e. weight 1 / L.
    lw = L.LearnedLossWeights(["a", "b"])
    opt = torch.optim.Adam(lw.parameters(), lr=0.05)
    for _ in range(1500):
        opt.zero_grad()
        lw({"a": torch.tensor(0.5), "b": torch.tensor(2.0)}).backward()
        opt.step()
    w = lw.weights()
    assert w["a"] == pytest.approx(2.0, rel=0.02) and w["b"] == pytest.approx(0.5, rel=0.02)


def test_learned_weights_stay_finite_and_positive_when_losses_vanish_or_explode():
    torch.manual_seed(0)
    lw = L.LearnedLossWeights(["zero", "tiny", "huge", "noisy"], min_log_var=-6.0, max_log_var=6.0)
    opt = torch.optim.Adam(lw.parameters(), lr=0.1)
    for step in range(3000):
        opt.zero_grad()
        losses = {
            "zero": torch.tensor(0.0),  # like the L2 term when both generators agree
            "tiny": torch.tensor(1e-12),
            "huge": torch.tensor(1e9),
            "noisy": torch.rand(()) * 3,
        }
        total = lw(losses)
        assert torch.isfinite(total)
        total.backward()
        opt.step()
        if step % 500 == 0 or step == 2999:
            for v in lw.weights().values():
                assert math.isfinite(v) and v > 0
    w = lw.weights()
    assert w["zero"] <= math.exp(6.0) * (1 + 1e-5) and w["huge"] >= math.exp(-6.0) * (1 - 1e-5)
    assert w["zero"] > 100 and w["huge"] < 0.01  # they did move towards their bounds


def test_attribute_keep_loss_by_hand():
    # two alternatives along x and y, scale 2: frozen e = x -> logits (2, 0); trained e = y -> (0, 2)
    alts = t([[1.0, 0.0], [0.0, 1.0]])
    p = 1 / (1 + math.exp(-2.0))  # softmax of (2, 0): (p, 1 - p)
    kl = p * math.log(p / (1 - p)) + (1 - p) * math.log((1 - p) / p)
    got = L.attribute_keep_loss(t([[0.0, 1.0]]), t([[1.0, 0.0]]), alts, 2.0)
    assert got.item() == pytest.approx(kl, abs=1e-12)
    # same reading -> zero, whatever the length of the embeddings (they are normalised)
    assert L.attribute_keep_loss(t([[3.0, 0.0]]), t([[1.0, 0.0]]), alts, 2.0).item() == pytest.approx(0.0, abs=1e-12)
    # a brute-force reference on random float64 embeddings
    g = torch.Generator().manual_seed(0)
    e_tr, e_fr, a = (torch.randn(4, 6, generator=g, dtype=torch.float64) for _ in range(3))
    a = a / a.norm(dim=-1, keepdim=True)
    ref = 0.0
    for i in range(4):
        pt = torch.softmax(7.0 * (e_tr[i] / e_tr[i].norm()) @ a.T, -1)
        pf = torch.softmax(7.0 * (e_fr[i] / e_fr[i].norm()) @ a.T, -1)
        ref += float((pf * (pf / pt).log()).sum()) / 4
    assert L.attribute_keep_loss(e_tr, e_fr, a, 7.0).item() == pytest.approx(ref, rel=1e-10)


def test_read_source_direction_by_hand():
    # two sources along x and y, target along z; a frozen image along x reads as source 0
    sources = t([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = t([0.0, 0.0, 1.0])
    p = 1 / (1 + math.exp(-50.0))  # softmax of (50, 0) at scale 50
    got = L.read_source_direction(t([[2.0, 0.0, 0.0], [0.0, 0.5, 0.0]]), target, sources, 50.0)
    assert torch.allclose(got[0], t([-p, -(1 - p), 1.0]), atol=1e-12)
    assert torch.allclose(got[1], t([-(1 - p), -p, 1.0]), atol=1e-12)
    # against a per-sample loop in float64
    g = torch.Generator().manual_seed(1)
    e_fr = torch.randn(5, 6, generator=g, dtype=torch.float64)
    s = torch.randn(3, 6, generator=g, dtype=torch.float64)
    s = s / s.norm(dim=-1, keepdim=True)
    tgt = torch.randn(6, generator=g, dtype=torch.float64)
    for i in range(5):
        w = torch.softmax(4.0 * (e_fr[i] / e_fr[i].norm()) @ s.T, -1)
        ref = tgt - sum(w[k] * s[k] for k in range(3))
        assert torch.allclose(L.read_source_direction(e_fr, tgt, s, 4.0)[i], ref, atol=1e-12)
