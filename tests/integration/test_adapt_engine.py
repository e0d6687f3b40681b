"""Mechanics of the adaptation engine on tiny random models: outputs, freezing, resume, errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from fixtures import make_tiny_generator
from nada.adapt.config import AdaptConfig, AdaptConfigError
from nada.adapt.api import adapt
from nada.adapt.engine import AdaptError, Adapter
from nada.adapt.state import read_state
from nada.adapt.layers import (
    LayerSpecError,
    apply_freeze,
    group_rows,
    parameter_names,
    parse_layers,
    scheduled_k,
    select_rows_adaptive,
)
from nada.guidance.errors import GuidanceError


def config(clip_dir, **kw):
    g = dict(clip=[str(clip_dir)], source_text="photo", target_text="sketch")
    g.update(kw.pop("guidance", {}))
    base = dict(iters=4, batch=2, sample_every=2, save_every=2, auto_layer_k=2, auto_layer_batch=2, n_samples=3)
    base.update(kw)
    return AdaptConfig(**base, guidance=g)


def params_of(G):
    return {n: p.detach().clone() for n, p in G.named_parameters()}


# ----------------------------------------------------------------------------- layers


def test_groups_and_parsing():
    assert group_rows("all", 10) == list(range(10))
    assert group_rows("shape", 10) == [0, 1, 2, 3, 4]
    assert group_rows("texture", 10) == [5, 6, 7, 8, 9]
    assert group_rows("no-fine", 10) == [0, 1, 2, 3, 4, 5]
    assert parse_layers("adaptive", 10) == "adaptive"
    assert parse_layers("3, 1,1", 10) == [1, 3]
    with pytest.raises(LayerSpecError, match="out of range"):
        parse_layers("12", 10)
    with pytest.raises(LayerSpecError, match="expected one of"):
        parse_layers("coarse", 10)


def test_rows_map_to_the_modules_that_read_them(tiny_generator):
    G = tiny_generator  # 32 px: num_ws 8
    by_row = {}
    for unit in G.synthesis_layers():
        by_row.setdefault(unit.ws_index, []).append(unit.name)
    assert by_row == {0: ["conv1"], 1: ["to_rgb1", "convs.0"], 2: ["convs.1"], 3: ["to_rgbs.0", "convs.2"],
                      4: ["convs.3"], 5: ["to_rgbs.1", "convs.4"], 6: ["convs.5"], 7: ["to_rgbs.2"]}
    # the row really is what the module reads: perturbing row 2 changes convs.1's output only downstream
    names = parameter_names(G, [2], "full")
    assert names and all(n.startswith("convs.1.") for n in names)
    assert parameter_names(G, [1], "conv") == ["to_rgb1.conv.weight", "convs.0.conv.weight"]
    affine = parameter_names(G, [0], "affine")
    assert affine == ["conv1.conv.modulation.weight", "conv1.conv.modulation.bias", "conv1.noise.weight"]


def test_scheduled_k():
    assert [scheduled_k(s, 5, 10, 2) for s in (0, 9, 10, 25, 100)] == [5, 5, 4, 3, 2]
    assert scheduled_k(1000, 5, 0, 1) == 5


def test_adaptive_selection_matches_reference(tiny_generator):
    G = tiny_generator.double()
    torch.manual_seed(1)
    ws = G.mapping(torch.randn(3, G.z_dim, dtype=torch.float64)).detach()
    target = torch.randn(1, 3, 32, 32, dtype=torch.float64)

    def loss(img):
        return (img - target).pow(2).mean()

    before = params_of(G)
    sel = select_rows_adaptive(G, ws, loss, k=3, iters=2, lr=0.5)
    # straightforward reference: two plain gradient steps on W+, then rank rows by mean |change|
    w = ws.clone().requires_grad_(True)
    for _ in range(2):
        loss(G.synthesis(w, noise_mode="const")).backward()
        with torch.no_grad():
            w -= 0.5 * w.grad
        w.grad = None
    scores = (w.detach() - ws).abs().mean(-1).mean(0)
    assert torch.allclose(torch.tensor(sel.scores, dtype=torch.float64), scores, rtol=1e-9, atol=1e-15)
    assert sel.rows == sorted(torch.topk(scores, 3).indices.tolist())
    # the probe leaves the generator's weights alone
    assert all(torch.equal(before[n], p) for n, p in G.named_parameters())
    # pushing the batch through in chunks gives the same gradient of the batch-mean loss
    chunked = select_rows_adaptive(G, ws, loss, k=3, iters=2, lr=0.5, chunk=2)
    assert torch.allclose(torch.tensor(chunked.scores, dtype=torch.float64), scores, rtol=1e-9, atol=1e-15)


# ----------------------------------------------------------------------------- freezing


def test_freezing_is_exact_and_optimizer_has_no_stale_moments(tiny_clip_dir, tmp_path):
    G = make_tiny_generator()
    cfg = config(tiny_clip_dir, layers="2,5", iters=1, sample_every=0, save_every=0)
    run = Adapter(cfg, None, generator=G, progress=False)
    before = params_of(run.G_train)
    run.train_step()
    trained = set(parameter_names(run.G_train, [2, 5], "full"))
    changed = {n for n, p in run.G_train.named_parameters() if not torch.equal(before[n], p)}
    assert changed, "the chosen layers must actually train"
    assert changed <= trained
    for n, p in run.G_train.named_parameters():
        if n not in trained:
            assert torch.equal(before[n], p), n
            assert p not in run.opt.state
    # the frozen twin and the shared mapping network never move
    assert all(torch.equal(before[n], p) for n, p in run.G_frozen.named_parameters())
    assert all(not n.startswith("style.") for n in changed)


def test_reselection_drops_moments_of_newly_frozen_layers(tiny_clip_dir):
    run = Adapter(config(tiny_clip_dir, layers="1", iters=2), None, generator=make_tiny_generator(), progress=False)
    run.train_step()
    old = [p for n, p in run.G_train.named_parameters() if n in set(parameter_names(run.G_train, [1]))]
    assert all(p in run.opt.state for p in old)
    run._set_rows([6])
    assert not any(p in run.opt.state for p in old)
    assert all(not p.requires_grad for p in old)


def test_adaptive_run_trains_only_selected_rows(tiny_clip_dir):
    run = Adapter(config(tiny_clip_dir, iters=1, auto_layer_k=1), None, generator=make_tiny_generator(), progress=False)
    before = params_of(run.G_train)
    run.train_step()
    assert len(run.rows) == 1 and run.selections[0]["rows"] == run.rows
    allowed = set(parameter_names(run.G_train, run.rows))
    changed = {n for n, p in run.G_train.named_parameters() if not torch.equal(before[n], p)}
    assert changed and changed <= allowed


@pytest.mark.parametrize("scope", ["conv", "affine"])
def test_parameter_scopes(tiny_clip_dir, scope):
    run = Adapter(config(tiny_clip_dir, layers="all", layer_scope=scope), None, generator=make_tiny_generator(), progress=False)
    before = params_of(run.G_train)
    run.train_step()
    changed = {n for n, p in run.G_train.named_parameters() if not torch.equal(before[n], p)}
    assert changed
    if scope == "conv":
        assert all(n.endswith("conv.weight") for n in changed)
    else:
        assert all(".modulation." in n or n.endswith("noise.weight") for n in changed)


# ----------------------------------------------------------------------------- outputs


def test_run_writes_outputs_that_load(tiny_clip_dir, tmp_path):
    from nada import load_generator

    out = tmp_path / "run"
    res = adapt("photo", "sketch", out, generator=make_tiny_generator(), clip=[str(tiny_clip_dir)], iters=4, batch=2,
                sample_every=2, save_every=2, auto_layer_k=2, auto_layer_batch=2, n_samples=3, progress=False)
    for name in ("generator.safetensors", "config.yaml", "metrics.json", "loss.png", "final.png"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000000.png", "step_000002.png", "step_000004.png"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and metrics["steps"] == 4 and len(metrics["history"]) == 4
    assert {"direction", "total"} <= set(metrics["history"][0]) and len(metrics["layer_selections"]) == 4
    G = load_generator(out / "generator.safetensors")
    z = torch.randn(2, G.z_dim)
    ref = res.generator.synthesis(res.generator.mapping(z), noise_mode="const")
    assert torch.equal(G.synthesis(G.mapping(z), noise_mode="const"), ref)
    # the saved config reproduces the run's settings
    cfg = AdaptConfig.load(out / "config.yaml")
    assert cfg.iters == 4 and cfg.guidance.target_text == "sketch"
    from PIL import Image

    with Image.open(out / "final.png") as im:  # two rows (frozen over trained) of three samples
        assert im.width > im.height > 0


def test_rosinality_export_that_cannot_be_made_is_refused_before_writing(tiny_clip_dir, tmp_path):
    # the tiny generator's channel table is none of rosinality's: refused up front, nothing written
    out = tmp_path / "run"
    with pytest.raises(AdaptError, match="--export-rosinality: .*channel table"):
        adapt("photo", "sketch", out, generator=make_tiny_generator(), clip=[str(tiny_clip_dir)], iters=1, batch=1,
              auto_layer_batch=1, n_samples=2, progress=False, export_rosinality=True)
    assert not out.exists()


def test_finished_run_is_not_overwritten(tiny_clip_dir, tmp_path):
    out = tmp_path / "run"
    kw = dict(generator=make_tiny_generator(), clip=[str(tiny_clip_dir)], iters=1, batch=1, auto_layer_batch=1,
              sample_every=0, save_every=0, n_samples=2, progress=False)
    adapt("photo", "sketch", out, **kw)
    stamp = (out / "generator.safetensors").stat().st_mtime_ns
    with pytest.raises(AdaptError, match="already holds a finished run"):
        adapt("photo", "sketch", out, **kw)
    assert (out / "generator.safetensors").stat().st_mtime_ns == stamp
    adapt("photo", "sketch", out, overwrite=True, **kw)
    assert (out / "metrics.json").exists()


def test_bad_input_fails_before_writing(tiny_clip_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(GuidanceError, match="(?i)identical|zero|same"):
        adapt("photo", "photo", out, generator=make_tiny_generator(), clip=[str(tiny_clip_dir)], iters=1, progress=False)
    assert not out.exists()
    with pytest.raises(AdaptConfigError, match="batch"):
        adapt("photo", "sketch", out, generator=make_tiny_generator(), clip=[str(tiny_clip_dir)], batch=0, progress=False)
    with pytest.raises(LayerSpecError):
        adapt("photo", "sketch", out, generator=make_tiny_generator(), clip=[str(tiny_clip_dir)], layers="99", progress=False)
    assert not out.exists()
    with pytest.raises(TypeError, match="unknown option"):
        adapt("photo", "sketch", out, generator=make_tiny_generator(), clip=[str(tiny_clip_dir)], iterations=3)


class NaNAfter:
    """Wraps a Guidance so that its loss turns NaN at a given call."""

    def __init__(self, inner, bad_call):
        self.inner, self.bad_call, self.calls = inner, bad_call, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def loss(self, a, b):
        self.calls += 1
        total, info = self.inner.loss(a, b)
        if self.calls >= self.bad_call:
            total = total * float("nan")
        return total, info


def test_non_finite_loss_stops_and_keeps_last_good_state(tiny_clip_dir, tmp_path):
    from nada.guidance.guidance import Guidance

    cfg = config(tiny_clip_dir, iters=6, save_every=2, layers="all")
    out = tmp_path / "run"
    guidance = NaNAfter(Guidance(cfg.guidance), bad_call=4)
    run = Adapter(cfg, out, generator=make_tiny_generator(), guidance=guidance, progress=False)
    with pytest.raises(AdaptError, match="non-finite at step 3.*state.safetensors"):
        run.run()
    state, _ = read_state(out / "state.safetensors")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["generator"].values())
    assert not (out / "metrics.json").exists()


# ----------------------------------------------------------------------------- resume

RUNNER = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from nada.adapt.config import AdaptConfig
    from nada.adapt.engine import Adapter
    from nada import load_generator
    gen_path, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    cfg = None if resume else AdaptConfig.load(sys.argv[4])
    if resume:
        cfg = AdaptConfig.load(out + "/config.yaml")
    Adapter(cfg, out, generator=load_generator(gen_path), resume=resume, progress=False).run()
    """
)


def test_killed_run_resumes_bit_identically(tiny_clip_dir, tmp_path):
    from nada import load_generator, save_generator

    gen_path = tmp_path / "base.safetensors"
    save_generator(make_tiny_generator(), gen_path)
    cfg = config(tiny_clip_dir, iters=30, save_every=3, sample_every=0, auto_layer_interval=2, auto_layer_falloff=10,
                 auto_layer_k=3, mixing=0.5, guidance=dict(clip_augment=2, lambda_global=0.2))
    cfg_path = tmp_path / "cfg.yaml"
    cfg.save(cfg_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    # uninterrupted reference
    subprocess.run([sys.executable, "-c", RUNNER, str(gen_path), str(tmp_path / "ref"), "0", str(cfg_path)], check=True, env=env)

    # killed with SIGKILL once a checkpoint exists, then resumed
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(gen_path), str(out), "0", str(cfg_path)], env=env)
    state = out / "state.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not state.exists():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert state.exists(), "the run never wrote a checkpoint"
    killed_at = read_state(state)[0]["step"]
    assert 0 < killed_at < 30, "the kill must land mid-run"
    assert not (out / "metrics.json").exists()
    subprocess.run([sys.executable, "-c", RUNNER, str(gen_path), str(out), "1"], check=True, env=env)

    a = load_generator(tmp_path / "ref" / "generator.safetensors").state_dict()
    b = load_generator(out / "generator.safetensors").state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ma = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    mb = json.loads((out / "metrics.json").read_text())
    strip = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert strip(ma["history"]) == strip(mb["history"])
    assert ma["layer_selections"] == mb["layer_selections"]


def test_nada_adapt_stays_callable_after_its_submodules_are_imported():
    import importlib

    import nada

    importlib.import_module("nada.adapt.config")  # rebinds nada.adapt to the package
    assert callable(nada.adapt)
    with pytest.raises(TypeError, match="unknown option"):
        nada.adapt("photo", "sketch", not_an_option=1)


# ----------------------------------------------------------------------------- early stop


class ScriptedMargins:
    """Wraps a Guidance so that CLIP's target reading follows a script: check c reads ``shares[c]`` of the samples."""

    def __init__(self, inner, shares):
        self.inner, self.shares, self.checks = inner, list(shares), 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def target_margin(self, images):
        share = self.shares[min(self.checks, len(self.shares) - 1)]
        self.checks += 1
        n = len(images)
        hits = round(share * n)
        return torch.tensor([1.0] * hits + [-1.0] * (n - hits))


def test_early_stop_ends_the_run_once_clip_reads_the_target(tiny_clip_dir, tmp_path):
    from nada import load_generator
    from nada.guidance.guidance import Guidance

    cfg = config(tiny_clip_dir, iters=20, stop_share=0.75, stop_every=3, stop_samples=4, sample_every=0, save_every=0)
    out = tmp_path / "run"
    guidance = ScriptedMargins(Guidance(cfg.guidance), [0.0, 0.5, 0.75, 1.0])
    res = Adapter(cfg, out, generator=make_tiny_generator(), guidance=guidance, progress=False, log=lambda _: None).run()
    assert guidance.checks == 3  # checked at steps 3, 6 and 9, reached at the third
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finished"] and metrics["stopped_early"] and metrics["steps"] == 9
    assert metrics["target_share"] == 0.75
    assert [(h["step"], h["target_share"]) for h in metrics["history"] if "target_share" in h] == [(3, 0.0), (6, 0.5), (9, 0.75)]
    z = torch.randn(2, res.generator.z_dim)
    G = load_generator(out / "generator.safetensors")
    assert torch.equal(G.synthesis(G.mapping(z), noise_mode="const"),
                       res.generator.synthesis(res.generator.mapping(z), noise_mode="const"))
    # resuming a run that stopped early trains nothing more
    before = load_generator(out / "generator.safetensors").state_dict()
    again = Adapter(cfg, out, generator=make_tiny_generator(), guidance=ScriptedMargins(Guidance(cfg.guidance), [0.0]),
                    resume=True, progress=False, log=lambda _: None).run()
    assert again.metrics["steps"] == 9 and again.metrics["stopped_early"]
    after = load_generator(out / "generator.safetensors").state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # reached at the last step: the run simply ends, it did not stop early
    cfg.iters = 9
    guidance = ScriptedMargins(Guidance(cfg.guidance), [0.0, 0.5, 0.75])
    last = Adapter(cfg, None, generator=make_tiny_generator(), guidance=guidance, progress=False).run()
    assert last.metrics["steps"] == 9 and not last.metrics["stopped_early"] and last.metrics["target_share"] == 0.75


def test_stop_patience_trains_on_after_the_share_is_first_reached(tiny_clip_dir, tmp_path):
    from nada.guidance.guidance import Guidance

    cfg = config(tiny_clip_dir, iters=20, stop_share=0.75, stop_every=3, stop_samples=4, stop_patience=4,
                 sample_every=0, save_every=0)
    out = tmp_path / "run"
    # reached at step 6; the share then dips below stop_share, which does not reset the patience
    guidance = ScriptedMargins(Guidance(cfg.guidance), [0.25, 0.75, 0.5, 1.0])
    lines: list[str] = []
    res = Adapter(cfg, out, generator=make_tiny_generator(), guidance=guidance, progress=False, log=lines.append).run()
    assert res.metrics["steps"] == 10 and res.metrics["stopped_early"]
    assert res.metrics["target_reached_step"] == 6 and res.metrics["target_share"] == 0.5
    assert [(h["step"], h["target_share"]) for h in res.metrics["history"] if "target_share" in h] == [
        (3, 0.25), (6, 0.75), (9, 0.5)]
    assert any("at step 6" in line and "stopping at step 10" in line for line in lines)
    again = Adapter(cfg, out, generator=make_tiny_generator(), guidance=ScriptedMargins(Guidance(cfg.guidance), [0.0]),
                    resume=True, progress=False, log=lambda _: None).run()
    assert again.metrics["steps"] == 10 and guidance.checks == 3
    with pytest.raises(AdaptConfigError, match="stop_patience"):
        config(tiny_clip_dir, stop_patience=-1)


def test_content_edits_can_train_past_the_stop(tiny_clip_dir):
    from nada.guidance.guidance import Guidance

    colour = dict(source_text="a red circle", target_text="a blue circle", source_group=["red,green,blue"])
    kw = dict(iters=8, stop_share=0.5, stop_every=2, stop_samples=2, sample_every=0, save_every=0, guidance=colour)
    lines: list[str] = []
    cfg = config(tiny_clip_dir, stop_content_edits=False, **kw)
    guidance = ScriptedMargins(Guidance(cfg.guidance), [1.0])
    res = Adapter(cfg, None, generator=make_tiny_generator(), guidance=guidance, progress=False, log=lines.append).run()
    assert res.metrics["content_edit"] and guidance.checks == 0 and res.metrics["steps"] == 8
    assert not res.metrics["stopped_early"] and res.metrics["target_share"] is None
    assert any("content edit" in line and "no early stop" in line for line in lines)
    # the default stops content edits too; a style edit stops with the option off
    cfg = config(tiny_clip_dir, **kw)
    res = Adapter(cfg, None, generator=make_tiny_generator(), guidance=ScriptedMargins(Guidance(cfg.guidance), [1.0]),
                  progress=False).run()
    assert res.metrics["content_edit"] and res.metrics["stopped_early"] and res.metrics["steps"] == 2
    cfg = config(tiny_clip_dir, stop_content_edits=False, **{**kw, "guidance": dict(source_group=["red,green,blue"])})
    res = Adapter(cfg, None, generator=make_tiny_generator(), guidance=ScriptedMargins(Guidance(cfg.guidance), [1.0]),
                  progress=False).run()
    assert not res.metrics["content_edit"] and res.metrics["stopped_early"] and res.metrics["steps"] == 2
    with pytest.raises(AdaptConfigError, match="stop_content_edits"):
        config(tiny_clip_dir, stop_content_edits="no")


class NeverReached(ScriptedMargins):
    """Reads with the real CLIPs, but no sample ever counts as the target, so the run never stops."""

    def target_margin(self, images):
        self.checks += 1
        self.real = self.inner.target_margin(images)
        return -self.real.abs() - 1


def test_checking_the_target_share_does_not_change_the_run(tiny_clip_dir):
    from nada.guidance.guidance import Guidance

    kw = dict(iters=6, layers="all", sample_every=0, save_every=0, guidance=dict(clip_augment=2))
    plain = Adapter(config(tiny_clip_dir, **kw), None, generator=make_tiny_generator(), progress=False).run()
    cfg = config(tiny_clip_dir, stop_share=1.0, stop_every=2, stop_samples=3, **kw)
    guidance = NeverReached(Guidance(cfg.guidance), [])
    checked = Adapter(cfg, None, generator=make_tiny_generator(), guidance=guidance, progress=False).run()
    assert guidance.checks == 3 and guidance.real.shape == (3,) and torch.isfinite(guidance.real).all()
    assert [h["target_share"] for h in checked.metrics["history"] if "target_share" in h] == [0.0, 0.0, 0.0]
    assert checked.metrics["steps"] == 6 and not checked.metrics["stopped_early"]
    a, b = plain.generator.state_dict(), checked.generator.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not plain.metrics["stopped_early"] and plain.metrics["target_share"] is None


def test_stop_share_must_be_a_share(tiny_clip_dir):
    with pytest.raises(AdaptConfigError, match="stop_share"):
        config(tiny_clip_dir, stop_share=1.5)
    with pytest.raises(AdaptConfigError, match="stop_every"):
        config(tiny_clip_dir, stop_every=0)
