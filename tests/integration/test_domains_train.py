"""Domains trained by the real loop: --param modulation/stylespace runs write domain.safetensors (and no
generator), the frozen base never changes, resume is bit-identical, and the CLI samples and bakes them."""
from __future__ import annotations

import json

import pytest
import torch

from fixtures import RaiseAt, make_tiny_generator
from nada.adapt.config import AdaptConfig
from nada.adapt.engine import Adapter
from nada.adapt.state import STATE_FILE, read_state
from nada.cli import main
from nada.domains.domain import base_fingerprint, load_domain


def config(clip_dir, **kw):
    g = dict(clip=[str(clip_dir)], source_text="photo", target_text="sketch")
    base = dict(iters=6, batch=2, sample_every=0, save_every=2, n_samples=2, mixing=0.5, param="modulation", lr=0.05)
    base.update(kw)
    return AdaptConfig(**base, guidance=g)




def run(cfg, out, at=None, resume=False):
    from nada.guidance.guidance import Guidance

    if not resume:
        torch.manual_seed(1234)
    g = Guidance(cfg.guidance)
    g = RaiseAt(g, at, KeyboardInterrupt()) if at is not None else g
    return Adapter(cfg, out, generator=make_tiny_generator(), guidance=g, resume=resume, progress=False,
                   log=lambda _: None)


@pytest.mark.parametrize("param", ["modulation", "stylespace", "stylespace+", "affine+"])
def test_a_domain_run_writes_a_domain_file_and_changes_only_its_vectors(tiny_clip_dir, tmp_path, param):
    cfg = config(tiny_clip_dir, param=param)
    out = tmp_path / "run"
    adapter = run(cfg, out)
    before = {k: v.clone() for k, v in adapter.G_frozen.state_dict().items()}
    result = adapter.run()
    assert all(torch.equal(before[k], v) for k, v in adapter.G_frozen.state_dict().items())
    assert (out / "domain.safetensors").exists() and not (out / "generator.safetensors").exists()
    d = load_domain(out / "domain.safetensors")
    assert d.param == param and set(d.vectors) == set(adapter.param.vectors)
    assert d.base_fingerprint == base_fingerprint(make_tiny_generator())
    assert d.meta["source_text"] == "photo" and d.meta["target_text"] == "sketch" and d.meta["steps"] == "6"
    assert json.loads(d.meta["clips"]) == [str(tiny_clip_dir)]
    assert any(v.abs().sum() > 0 for v in d.vectors.values())
    ws = adapter.G_frozen.mapping(torch.randn(2, adapter.G_frozen.z_dim, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        assert torch.equal(d.apply(make_tiny_generator()).synthesis(ws), adapter.param.synthesis(ws))
        assert torch.allclose(result.generator.synthesis(ws), adapter.param.synthesis(ws), atol=1e-5)


@pytest.mark.parametrize("at", [2, 4])
def test_modulation_resume_is_bit_identical(tiny_clip_dir, tmp_path, at):
    cfg = config(tiny_clip_dir)
    ref = tmp_path / "ref"
    run(cfg, ref).run()
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, at=at).run()
    state, _ = read_state(out / STATE_FILE)
    assert state["step"] == at - 1
    run(cfg, out, resume=True).run()
    a, b = load_domain(ref / "domain.safetensors").vectors, load_domain(out / "domain.safetensors").vectors
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha = json.loads((ref / "metrics.json").read_text())["history"]
    hb = json.loads((out / "metrics.json").read_text())["history"]
    strip = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert strip(ha) == strip(hb)


def test_cli_adapt_sample_and_bake(tiny_clip_dir, tmp_path, capsys):
    from nada import load_generator, save_generator

    base = tmp_path / "base.safetensors"
    save_generator(make_tiny_generator(), base)
    out = tmp_path / "run"
    assert main(["adapt", "--generator", str(base), "--clip", str(tiny_clip_dir), "--source", "photo", "--target",
                 "sketch", "--out", str(out), "--param", "modulation", "--iters", "3", "--batch", "2",
                 "--sample-every", "0", "--n-samples", "2", "--no-progress"]) == 0
    dom = out / "domain.safetensors"
    assert (tmp_path / "run" / "config.yaml").read_text().count("param: modulation") == 1
    common = ["--generator", str(base), "--n", "3", "--device", "cpu"]
    assert main(["sample", *common, "--out", str(tmp_path / "plain")]) == 0
    assert main(["sample", *common, "--out", str(tmp_path / "zero"), "--domain", f"{dom}:0"]) == 0
    assert main(["sample", *common, "--out", str(tmp_path / "full"), "--domain", str(dom)]) == 0
    assert main(["sample", *common, "--out", str(tmp_path / "mix"), "--domain", f"{dom}:0.5", "--domain",
                 f"{dom}:0.5"]) == 0
    for i in range(3):
        name = f"00000{i}.png"
        assert (tmp_path / "zero" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    assert (tmp_path / "full" / "000000.png").read_bytes() != (tmp_path / "plain" / "000000.png").read_bytes()
    baked = tmp_path / "baked.safetensors"
    assert main(["bake", "--generator", str(base), "--domain", str(dom), "--out", str(baked)]) == 0
    G, B = load_generator(base), load_generator(baked)
    view = load_domain(dom).apply(G)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        assert torch.allclose(B.synthesis(ws), view.synthesis(ws), atol=1e-5)
    capsys.readouterr()
    other = tmp_path / "other.safetensors"
    save_generator(make_tiny_generator(seed=3), other)
    assert main(["sample", "--generator", str(other), "--n", "1", "--out", str(tmp_path / "o"), "--domain", str(dom)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--allow-other-base" in err
    assert main(["sample", "--generator", str(other), "--n", "1", "--out", str(tmp_path / "o"), "--domain", str(dom),
                 "--allow-other-base"]) == 0
    # the adapt line names the file a domain run writes
    assert main(["adapt", "--resume", str(out), "--no-progress"]) == 0
    assert "domain.safetensors" in capsys.readouterr().out
    # nada evaluate measures the generator with the domains applied; strength 0 is the base
    def evaluate(*extra):
        capsys.readouterr()
        assert main(["evaluate", "--generator", str(base), "--target", "sketch", "--clip", str(tiny_clip_dir),
                     "--n", "4", "--device", "cpu", "--no-progress", "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    plain, zero, full = evaluate(), evaluate("--domain", f"{dom}:0"), evaluate("--domain", str(dom))
    assert zero["quality"] == plain["quality"] and zero["diversity"] == plain["diversity"]
    assert full["quality"] != plain["quality"]
