"""One hypernetwork for many domains (--param hyper): identity at the start, only its weights train,
every domain is trained, the file gives each trained text's domain exactly, unseen texts are embedded
by the file's CLIPs, resume is bit-identical, and the CLI trains, samples and refuses bad input."""
from __future__ import annotations

import json

import pytest
import torch

from fixtures import RaiseAt, make_tiny_generator
from nada.adapt.config import AdaptConfig, AdaptConfigError
from nada.adapt.engine import Adapter
from nada.adapt.state import STATE_FILE, read_state
from nada.cli import main
from nada.domains.domain import DomainError, HyperDomain, apply_domains, load_domain, load_domains
from nada.domains.hypernet import text_input

TEXTS = ["sketch", "watercolor", "painting"]


def config(clip_dir, use_templates=True, **kw):
    g = dict(clip=[str(clip_dir)], source_text="photo", target_text=TEXTS[0], use_templates=use_templates)
    base = dict(iters=6, batch=4, sample_every=0, save_every=2, n_samples=3, param="hyper", targets=TEXTS,
                lr=0.01, hyper_width=16)
    base.update(kw)
    return AdaptConfig(**base, guidance=g)


def adapter(cfg, out=None, at=None, resume=False):
    from nada.guidance.guidance import Guidance

    if not resume:
        torch.manual_seed(1234)
    g = Guidance(cfg.guidance)
    g = RaiseAt(g, at, KeyboardInterrupt()) if at is not None else g
    return Adapter(cfg, out, generator=make_tiny_generator(), guidance=g, resume=resume, progress=False,
                   log=lambda _: None)


def ws_of(G, n=4, seed=0):
    return G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)))


def test_config_needs_hyper_for_several_targets_and_fills_targets(tiny_clip_dir):
    with pytest.raises(AdaptConfigError, match="need --param hyper"):
        config(tiny_clip_dir, param="modulation")
    cfg = config(tiny_clip_dir, targets=[])
    assert cfg.targets == ["sketch"]
    with pytest.raises(AdaptConfigError, match="each target text once"):
        config(tiny_clip_dir, targets=["sketch", "sketch"])
    with pytest.raises(AdaptConfigError, match="stop-share"):
        config(tiny_clip_dir, stop_share=0.5)
    assert config(tiny_clip_dir).guidance.target_text == "sketch"


def test_at_the_start_every_domain_is_the_base_exactly(tiny_clip_dir):
    run = adapter(config(tiny_clip_dir))
    ws = ws_of(run.G_frozen, 6)
    from nada.domains.parameterisations import run_synthesis, space_hooks

    G = run.G_frozen
    base = G.synthesis(ws, noise_mode="const")
    with torch.no_grad():
        for k in range(3):
            hooks = space_hooks(G, run.param.vectors(k))
            assert torch.equal(run_synthesis(G, hooks, ws, noise_mode="const"), base)
        # the grid draws each domain's samples as one batch: equal up to batched float rounding
        assert torch.allclose(run.param.synthesis(ws), base, atol=1e-5)
    assert all(v.abs().sum() == 0 for k in range(3) for v in run.param.vectors(k).values())


def test_a_step_trains_only_the_network_and_every_domain_moves(tiny_clip_dir):
    run = adapter(config(tiny_clip_dir))
    base = {k: v.clone() for k, v in run.G_frozen.state_dict().items()}
    for _ in range(3):
        run.train_step()
    assert all(torch.equal(base[k], v) for k, v in run.G_frozen.state_dict().items())
    vectors = [run.param.domain_tensors(k) for k in range(3)]
    for v in vectors:
        assert any(t.abs().sum() > 0 for t in v.values())
    # different texts, different domains
    assert any(not torch.equal(vectors[0][k], vectors[1][k]) for k in vectors[0])


def test_samples_are_split_over_domains_in_turn(tiny_clip_dir):
    run = adapter(config(tiny_clip_dir))
    assert run.param.assignment(4, 0).tolist() == [0, 1, 2, 0]
    assert run.param.assignment(4, 1).tolist() == [1, 2, 0, 1]
    for _ in range(2):
        run.train_step()
    ws = ws_of(run.G_frozen, 3)
    with torch.no_grad():
        mixed = run.param.synthesis(ws)
        for k in range(3):  # sample k of a grid is drawn in domain k, through the plain modulation hooks
            one = apply_domains(run.G_frozen, [load_like(run.param, k)], allow_other_base=True).synthesis(ws[k:k + 1], noise_mode="const")
            assert torch.allclose(mixed[k:k + 1], one, atol=1e-6)


def load_like(param, k):
    from nada.domains.domain import Domain

    return Domain("modulation", param.domain_tensors(k))


def test_cross_domain_loss_matches_a_direct_computation(tiny_clip_dir):
    run = adapter(config(tiny_clip_dir))
    param = run.param
    images = torch.rand(4, 3, 32, 32, dtype=torch.float64) * 2 - 1
    domains = torch.tensor([0, 1, 2, 0])
    clip = param.clips[0]
    got = param.cross_domain_loss(images.float(), domains)
    e = clip.encode_images(images.float()).double()
    t = torch.stack([param.targets[k][0].target for k in range(3)]).double()
    values = []
    for i in range(4):
        for j in range(i + 1, 4):
            if domains[i] != domains[j]:
                a, b = e[i] - e[j], t[domains[i]] - t[domains[j]]
                values.append(1 - (a @ b) / (a.norm() * b.norm()))
    assert abs(float(got) - float(torch.stack(values).mean())) < 1e-5


def test_the_file_gives_each_trained_domain_and_guesses_others(tiny_clip_dir, tmp_path):
    out = tmp_path / "run"
    run = adapter(config(tiny_clip_dir), out)
    run.run()
    hyper = load_domain(out / "domain.safetensors")
    assert isinstance(hyper, HyperDomain) and hyper.texts == TEXTS
    assert json.loads(hyper.meta["clips"]) == [str(tiny_clip_dir)]
    G = make_tiny_generator()
    ws = ws_of(G, 2)
    for k, text in enumerate(TEXTS):
        d = hyper.domain(text)
        assert d.param == "modulation" and d.meta["target_text"] == text
        assert all(torch.equal(d.vectors[key], v) for key, v in run.param.domain_tensors(k).items())
        # the stored input is what the file's CLIPs give for the text
        assert torch.allclose(hyper.input_for(text), hyper.input_for(text, clips=run.param.clips), atol=1e-6)
    guess = hyper.domain("cartoon")  # never trained: the CLIPs named in the file embed it
    assert guess.meta["trained"] == "false" and any(v.abs().sum() > 0 for v in guess.vectors.values())
    with torch.no_grad():
        a = apply_domains(G, load_domains([str(out / "domain.safetensors")], text="watercolor")).synthesis(ws)
        b = apply_domains(G, [hyper.domain("watercolor")]).synthesis(ws)
        assert torch.equal(a, b) and not torch.equal(a, G.synthesis(ws, noise_mode="const"))
    with pytest.raises(DomainError, match="hypernetwork"):
        apply_domains(G, [hyper])
    with pytest.raises(DomainError, match="--text picks"):
        load_domains([], text="sketch")


def test_text_input_is_the_unit_direction_per_clip(tiny_clip_dir):
    cfg = config(tiny_clip_dir, use_templates=False)
    run = adapter(cfg)
    x = text_input(run.param.clips, "sketch", "photo", None, False)
    assert x.shape == run.param.inputs[0].shape and abs(float(x.norm()) - 1.0) < 1e-5
    assert torch.allclose(x, run.param.inputs[0].cpu(), atol=1e-6)


@pytest.mark.parametrize("call", [5, 9])
def test_hyper_resume_is_bit_identical(tiny_clip_dir, tmp_path, call):
    # batch 4 over 3 domains: three guidance calls per step; call 5 is inside step 2, call 9 ends step 3
    cfg = config(tiny_clip_dir)
    ref = tmp_path / "ref"
    adapter(cfg, ref).run()
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        adapter(cfg, out, at=call).run()
    state, _ = read_state(out / STATE_FILE)
    assert state["step"] == (call - 1) // 3
    adapter(cfg, out, resume=True).run()
    a, b = load_domain(ref / "domain.safetensors"), load_domain(out / "domain.safetensors")
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_damaged_hyper_metadata_is_refused_in_one_line(tiny_clip_dir, tmp_path):
    from safetensors.torch import load_file

    from nada.domains.domain import _write

    out = tmp_path / "run"
    adapter(config(tiny_clip_dir), out).run()
    path = out / "domain.safetensors"
    hyper = load_domain(path)
    tensors = load_file(str(path))
    bad = tmp_path / "bad.safetensors"
    _write(bad, "hyper", tensors, {**hyper.meta, "layout": json.dumps([["modulation/conv1", 3]])})
    with pytest.raises(DomainError, match="do not fit its layout"):
        load_domain(bad)
    _write(bad, "hyper", tensors, {k: v for k, v in hyper.meta.items() if k != "targets"})
    with pytest.raises(DomainError, match="metadata is incomplete"):
        load_domain(bad)


def test_cli_trains_several_targets_and_samples_one(tiny_clip_dir, tmp_path, capsys):
    from nada import save_generator

    base = tmp_path / "base.safetensors"
    save_generator(make_tiny_generator(), base)
    out = tmp_path / "run"
    rc = main(["adapt", "--generator", str(base), "--clip", str(tiny_clip_dir), "--source", "photo",
               "--target", "sketch", "--target", "watercolor", "--param", "hyper", "--iters", "2", "--batch", "2",
               "--hyper-width", "8", "--out", str(out), "--no-progress", "--sample-every", "0"])
    assert rc == 0
    cfg = (out / "config.yaml").read_text()
    assert "targets:" in cfg and "watercolor" in cfg and "param: hyper" in cfg
    samples = tmp_path / "samples"
    assert main(["sample", "--generator", str(base), "--domain", str(out / "domain.safetensors"), "--text", "watercolor",
                 "--n", "2", "--out", str(samples)]) == 0
    assert len(list(samples.glob("*.png"))) == 3  # two images and the grid
    capsys.readouterr()
    assert main(["sample", "--generator", str(base), "--domain", str(out / "domain.safetensors"), "--n", "2",
                 "--out", str(tmp_path / "none")]) == 2
    assert "--text" in capsys.readouterr().err and not (tmp_path / "none").exists()
    assert main(["sample", "--generator", str(base), "--text", "sketch", "--n", "2", "--out", str(tmp_path / "none")]) == 2
    assert main(["adapt", "--generator", str(base), "--clip", str(tiny_clip_dir), "--source", "photo",
                 "--target", "sketch", "--target", "watercolor", "--iters", "2", "--out", str(tmp_path / "r2")]) == 2
    assert "need --param hyper" in capsys.readouterr().err and not (tmp_path / "r2").exists()
