"""The step-wise Trainer, its callbacks, the Checkpointer and the RunDir; and no import cycles."""
from __future__ import annotations

import copy

import pytest
import torch

from fixtures import make_tiny_generator
from nada.adapt.callbacks import EarlyStop
from nada.adapt.checkpoint import Checkpointer
from nada.adapt.config import AdaptConfig
from nada.adapt.engine import Adapter
from nada.adapt.errors import AdaptError, resolve_device
from nada.adapt.parameterisation import FineTune
from nada.adapt.rundir import RunDir
from nada.adapt.trainer import Callback, StepResult, Trainer
from nada.errors import RunError


def config(clip_dir, **kw):
    g = dict(clip=[str(clip_dir)], source_text="photo", target_text="sketch")
    base = dict(iters=4, batch=2, sample_every=0, save_every=0, auto_layer_k=2, auto_layer_batch=2, n_samples=2,
                auto_layer_interval=2)
    base.update(kw)
    return AdaptConfig(**base, guidance=g)


def build(cfg, callbacks=()):
    """A Trainer assembled by hand, as a web UI or a notebook would."""
    from nada.guidance.guidance import Guidance

    G = make_tiny_generator()
    G.compute_w_avg()
    G_frozen = copy.deepcopy(G).eval().requires_grad_(False)
    guidance = Guidance(cfg.guidance)
    guidance.prepare()
    return Trainer(cfg, G_frozen, FineTune.from_config(cfg, G_frozen), guidance, callbacks=callbacks)


def weights(G):
    return {k: v.clone() for k, v in G.state_dict().items()}


def test_step_returns_what_happened(tiny_clip_dir):
    t = build(config(tiny_clip_dir))
    results = [t.step() for _ in range(3)]
    assert [r.step for r in results] == [1, 2, 3] and t.iteration == 3
    assert all(isinstance(r, StepResult) and "total" in r.losses and not r.stopped for r in results)
    assert [r.selection is not None for r in results] == [True, False, True]  # adaptive choice every 2 steps
    assert results[0].rows == results[0].selection["rows"] and len(results[0].rows) == 2
    assert [h["step"] for h in t.history] == [1, 2, 3] and len(t.selections) == 2


def test_stepping_by_hand_equals_the_adapter_run(tiny_clip_dir):
    cfg = config(tiny_clip_dir, mixing=0.9)
    t = build(cfg)
    while not t.finished:
        t.step()
    run = Adapter(cfg, None, generator=make_tiny_generator(), progress=False)
    res = run.run()
    a, b = weights(t.param.adapted_generator()), weights(res.generator)
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda h: [{k: v for k, v in e.items() if k != "time_s"} for e in h]
    assert strip(t.history) == strip(res.metrics["history"]) and t.selections == res.metrics["layer_selections"]


def test_callbacks_are_told_in_order_and_can_stop_a_run(tiny_clip_dir):
    events = []

    class Spy(Callback):
        def __init__(self, name):
            self.name = name

        def on_start(self, trainer):
            events.append((self.name, "start", trainer.iteration))

        def in_step(self, trainer, result):
            events.append((self.name, "in", result.step))

        def on_step(self, trainer, result):
            events.append((self.name, "step", result.step))

        def on_end(self, trainer):
            events.append((self.name, "end", trainer.iteration))

    class StopAt2(Callback):
        def in_step(self, trainer, result):
            result.stopped = result.step == 2

    t = build(config(tiny_clip_dir), callbacks=[Spy("a"), StopAt2(), Spy("b")])
    t.run()
    assert t.iteration == 2
    assert events == [("a", "start", 0), ("b", "start", 0),
                      ("a", "in", 1), ("b", "in", 1), ("a", "step", 1), ("b", "step", 1),
                      ("a", "in", 2), ("b", "in", 2), ("a", "step", 2), ("b", "step", 2),
                      ("a", "end", 2), ("b", "end", 2)]


def test_early_stop_is_a_callback(tiny_clip_dir):
    cfg = config(tiny_clip_dir, stop_share=0.01, stop_every=1, stop_patience=1, stop_samples=4, iters=6)
    t = build(cfg)
    stop = EarlyStop(cfg, {}, log=lambda _: None)
    t.callbacks.append(stop)
    stop.target_share = lambda trainer: 1.0  # CLIP reads every check sample as the target
    t.run(before_step=lambda: None)
    assert [h["target_share"] for h in t.history] == [1.0, 1.0] and t.iteration == 2  # reached at 1, patience 1
    assert stop.reached_step(t.history) == 1 and t.finished  # a resumed run would stay stopped


def test_checkpointer_resumes_bit_for_bit(tiny_clip_dir, tmp_path):
    cfg = config(tiny_clip_dir, mixing=0.9, iters=5)
    straight = build(cfg)
    straight.run()
    first = build(cfg)
    for _ in range(3):
        first.step()
    Checkpointer(tmp_path / "state.safetensors", first, cfg).save()
    torch.manual_seed(999)  # the global RNG state is part of the checkpoint
    second = build(cfg)
    ck = Checkpointer(tmp_path / "state.safetensors", second, cfg)
    ck.load()
    assert ck.saved_step == 3 and second.iteration == 3
    second.run()
    a, b = weights(straight.param.G_train), weights(second.param.G_train)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(AdaptError, match="written by a run with"):
        Checkpointer(tmp_path / "state.safetensors", build(config(tiny_clip_dir, lr=0.5)), config(tiny_clip_dir, lr=0.5)).load()


def test_undo_rolls_a_step_back_before_it_changes_weights(tiny_clip_dir):
    t = build(config(tiny_clip_dir))
    gen_state = t.gen.get_state()
    t.begin_step()
    t.latents(2, 0.0)
    assert t.undo_step() and torch.equal(t.gen.get_state(), gen_state)
    t.begin_step()
    t.train_step()
    assert not t.undo_step()  # weights changed: cannot be undone


def test_rundir_refuses_and_cleans(tmp_path, tiny_clip_dir):
    from nada._io import TMP_SUFFIX

    cfg = config(tiny_clip_dir)
    out = tmp_path / "run"
    out.mkdir()
    leftover = out / f".metrics.json.abcd1234{TMP_SUFFIX}"  # a killed writer's temporary file
    leftover.write_text("half")
    rd = RunDir(out, cfg)
    rd.check()
    rd.open(resume=lambda: pytest.fail("not a resume"))
    assert (out / "config.yaml").exists() and not leftover.exists()
    with pytest.raises(AdaptError, match="in use by another nada run"):
        RunDir(out, cfg, overwrite=True).check()
    rd.close()
    (out / "metrics.json").write_text("{}")
    with pytest.raises(AdaptError, match="already holds a finished run"):
        RunDir(out, cfg).check()
    RunDir(out, cfg, overwrite=True).check()
    with pytest.raises(AdaptError, match="no saved training state"):
        RunDir(out, cfg, resume=True).check()
    assert issubclass(AdaptError, RunError)


def test_auto_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
