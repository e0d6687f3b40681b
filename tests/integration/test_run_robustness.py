"""Runs that survive: Ctrl-C, full disks, out of memory, bad output paths, concurrent runs, foreign or
damaged training states, leftover temporaries, permissions and fsync of every output."""
from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fixtures import RaiseAt, make_tiny_generator
from nada._io import (
    LOCK_NAME,
    DirectoryLock,
    LockedError,
    OutputError,
    atomic_path,
    atomic_write_text,
    check_output_dir,
    is_temporary_name,
    lock_holder,
    remove_stale_temporaries,
)
from nada.adapt.config import AdaptConfig
from nada.adapt.engine import AdaptError, Adapter
from nada.adapt.state import OLD_STATE_FILE, STATE_FILE, flatten, read_header, read_state, unflatten
from nada.cli import main

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def config(clip_dir, **kw):
    g = dict(clip=[str(clip_dir)], source_text="photo", target_text="sketch")
    g.update(kw.pop("guidance", {}))
    base = dict(iters=6, batch=2, sample_every=2, save_every=2, auto_layer_k=2, auto_layer_batch=2, n_samples=2,
                auto_layer_interval=2, mixing=0.5)
    base.update(kw)
    return AdaptConfig(**base, guidance=g)




def guidance_for(cfg, at=None, exc=None):
    from nada.guidance.guidance import Guidance

    g = Guidance(cfg.guidance)
    return RaiseAt(g, at, exc) if at is not None else g


def fresh_run(cfg, out, guidance=None, **kw):
    torch.manual_seed(1234)  # the global RNG the same for every fresh run of a comparison
    return Adapter(cfg, out, generator=make_tiny_generator(), guidance=guidance or guidance_for(cfg), progress=False,
                   log=lambda _: None, **kw)


def resume_run(cfg, out):
    return Adapter(cfg, out, generator=make_tiny_generator(), guidance=guidance_for(cfg), resume=True, progress=False,
                   log=lambda _: None)


def weights(out):
    from nada import load_generator

    return load_generator(Path(out) / "generator.safetensors").state_dict()


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    bad = [k for k in a if not torch.equal(a[k], b[k])]
    assert not bad, f"differ: {bad[:5]}"


def same_history(out_a, out_b):
    ma = json.loads((Path(out_a) / "metrics.json").read_text())
    mb = json.loads((Path(out_b) / "metrics.json").read_text())
    strip = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    return strip(ma["history"]) == strip(mb["history"]) and ma["layer_selections"] == mb["layer_selections"]


def tree(root):
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else None


@pytest.fixture(scope="module")
def reference(tiny_clip_dir, tmp_path_factory):
    """An uninterrupted run of ``config(tiny_clip_dir)``."""
    out = tmp_path_factory.mktemp("ref") / "run"
    cfg = config(tiny_clip_dir)
    fresh_run(cfg, out).run()
    return out


# ----------------------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize("at", [3, 4])  # step 3 selects layers (interval 2) before the loss; step 4 does not
def test_interrupt_inside_a_step_resumes_bit_identically(tiny_clip_dir, tmp_path, reference, at):
    cfg = config(tiny_clip_dir)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fresh_run(cfg, out, guidance=guidance_for(cfg, at, KeyboardInterrupt())).run()
    state, meta = read_state(out / STATE_FILE)
    assert state["step"] == at - 1 and meta["step"] == str(at - 1)  # the last finished step, not the one in progress
    assert len(state["history"]) == at - 1 and [s["step"] for s in state["selections"]] == list(range(0, at - 1, 2))
    assert not (out / "metrics.json").exists()
    resume_run(cfg, out).run()
    assert_same_weights(weights(reference), weights(out))
    assert same_history(reference, out)


RUNNER = textwrap.dedent(
    """
    import sys, time, torch
    from pathlib import Path
    torch.set_num_threads(1)
    from nada.adapt.config import AdaptConfig
    from nada.adapt.engine import Adapter
    from nada.guidance.guidance import Guidance
    from nada import load_generator

    gen_path, out, mode, slow_call, marker = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    cfg = AdaptConfig.load(sys.argv[6] if mode == "fresh" else out + "/config.yaml")

    class Slow:
        def __init__(self, inner):
            self.inner, self.calls = inner, 0
        def __getattr__(self, name):
            return getattr(self.inner, name)
        def loss(self, a, b):
            self.calls += 1
            if self.calls == slow_call:  # inside the step: announce it, then take a while
                Path(marker).write_text("in step")
                time.sleep(4)
            return self.inner.loss(a, b)

    try:
        Adapter(cfg, out, generator=load_generator(gen_path), guidance=Slow(Guidance(cfg.guidance)),
                resume=mode == "resume", progress=False).run()
    except KeyboardInterrupt:
        sys.exit(130)
    """
)


@pytest.fixture
def runner(tiny_clip_dir, tmp_path):
    from nada import save_generator

    gen_path = tmp_path / "base.safetensors"
    save_generator(make_tiny_generator(), gen_path)
    cfg_path = tmp_path / "cfg.yaml"
    config(tiny_clip_dir, iters=8, sample_every=0, save_every=2, guidance=dict(clip_augment=2)).save(cfg_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}

    def start(out, mode="fresh", slow_call=0, marker=None, **kw):
        argv = [sys.executable, "-c", RUNNER, str(gen_path), str(out), mode, str(slow_call), str(marker or tmp_path / "m"),
                str(cfg_path)]
        # a shell without job control starts background jobs with SIGINT ignored, and children inherit it:
        # give the child the default disposition, as a terminal would, so the test does not depend on how
        # pytest itself was started
        return subprocess.Popen(argv, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)

    return start


def wait_for(path, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None and not Path(path).exists():
        time.sleep(0.01)
    assert Path(path).exists(), "the child never reached the step"


def test_sigint_in_a_step_finishes_it_saves_and_resumes_bit_identically(runner, tmp_path):
    assert runner(tmp_path / "ref").wait() == 0
    out, marker = tmp_path / "run", tmp_path / "in_step"
    proc = runner(out, slow_call=5, marker=marker, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(marker, proc)
    proc.send_signal(signal.SIGINT)
    err, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "finishing step 5" in err and "interrupted after step 5" in err
    assert int(read_header(out / STATE_FILE)["step"]) == 5  # the step in progress finished, then was saved
    assert runner(out, mode="resume").wait() == 0
    assert_same_weights(weights(tmp_path / "ref"), weights(out))
    assert same_history(tmp_path / "ref", out)


def test_second_sigint_stops_at_once_and_keeps_the_saved_state(runner, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "in_step"
    proc = runner(out, slow_call=5, marker=marker, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(marker, proc)
    before = (out / STATE_FILE).read_bytes()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    err, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopped at once" in err and "step 4" in err
    assert (out / STATE_FILE).read_bytes() == before  # the state of step 4, untouched
    assert not [p for p in out.iterdir() if is_temporary_name(p.name)]


# ----------------------------------------------------------------------------- full disk, out of memory


def enospc_for(monkeypatch, name, after=0, hidden=False):
    """Make safetensors writes of ``name`` fail as on a full disk, after ``after`` successful ones."""
    import safetensors.torch

    real = safetensors.torch.save_file
    calls = {"n": 0}

    def save_file(tensors, filename, metadata=None):
        if Path(filename).name.startswith(f".{name}."):
            calls["n"] += 1
            if calls["n"] > after:
                if hidden:  # what safetensors itself raises
                    raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    return calls


def test_full_disk_at_a_checkpoint_keeps_the_last_state_and_resume_completes(tiny_clip_dir, tmp_path, reference,
                                                                           monkeypatch):
    cfg = config(tiny_clip_dir)
    out = tmp_path / "run"
    enospc_for(monkeypatch, STATE_FILE, after=1)  # the state of step 2 is written, that of step 4 is not
    with pytest.raises(AdaptError) as err:
        fresh_run(cfg, out).run()
    msg = str(err.value)
    assert "\n" not in msg
    assert "no space left on the device while writing" in msg and str(out / STATE_FILE) in msg
    assert "kept: the training state at step 2" in msg and f"nada adapt --resume {out}" in msg
    assert int(read_header(out / STATE_FILE)["step"]) == 2
    assert not [p for p in out.iterdir() if is_temporary_name(p.name)] and not (out / LOCK_NAME).exists()
    monkeypatch.undo()  # space freed
    resume_run(cfg, out).run()
    assert_same_weights(weights(reference), weights(out))


def test_full_disk_for_the_final_generator_is_one_line_from_the_cli(tiny_clip_dir, tmp_path, monkeypatch, capsys):
    from nada import save_generator

    base = tmp_path / "base.safetensors"
    save_generator(make_tiny_generator(), base)
    out = tmp_path / "run"
    argv = ["adapt", "--generator", str(base), "--clip", str(tiny_clip_dir), "--source", "photo", "--target", "sketch",
            "--out", str(out), "--iters", "2", "--batch", "1", "--auto-layer-batch", "1", "--n-samples", "2",
            "--sample-every", "0", "--no-progress"]
    enospc_for(monkeypatch, "generator.safetensors", hidden=True)  # safetensors' own error type, errno in its text
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nada: error: no space left on the device while writing")
    assert "generator.safetensors" in err and "kept: the training state at step 2" in err and "--resume" in err
    monkeypatch.undo()
    assert main(["adapt", "--resume", str(out), "--no-progress"]) == 0
    assert (out / "metrics.json").is_file()


def test_full_disk_before_any_state_says_so(tiny_clip_dir, tmp_path, monkeypatch):
    from PIL import Image

    cfg = config(tiny_clip_dir, save_every=0)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(AdaptError, match=r"no space left .*step_000000.png; nothing resumable was kept .*run the same "
                                         r"command again"):
        fresh_run(cfg, tmp_path / "run").run()


@pytest.mark.parametrize("exc, words", [(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "GPU memory"),
                                        (MemoryError(), "out of memory")])
def test_out_of_memory_in_a_step_saves_the_last_finished_step(tiny_clip_dir, tmp_path, reference, exc, words):
    cfg = config(tiny_clip_dir)
    out = tmp_path / "run"
    with pytest.raises(AdaptError) as err:
        fresh_run(cfg, out, guidance=guidance_for(cfg, 4, exc)).run()
    msg = str(err.value)
    assert words in msg and "at step 4" in msg and "kept: the training state at step 3" in msg and "--resume" in msg
    resume_run(cfg, out).run()
    assert_same_weights(weights(reference), weights(out))


# ----------------------------------------------------------------------------- output paths


@pytest.mark.parametrize("case, message", [
    ("file", "expected a directory; found a file"),
    ("below_file", "is a file"),
    ("long_name", "at most 255 bytes"),
    ("long_path", "shorter path"),
])
def test_impossible_out_is_refused_in_one_line_before_loading(tmp_path, capsys, case, message):
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "below_file": tmp_path / "f" / "run", "long_name": tmp_path / ("a" * 300),
           "long_path": tmp_path.joinpath(*["b" * 200] * 22)}[case]
    before = tree(tmp_path)
    # a generator that does not exist: the path is refused first, before any loading
    assert main(["adapt", "--generator", str(tmp_path / "missing.pt"), "--source", "photo", "--target", "sketch",
                 "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nada: error: --out") and err.count("\n") == 1 and message in err
    assert main(["sample", "--generator", "tiny", "--out", str(out), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nada: error: --out") and err.count("\n") == 1 and message in err
    assert tree(tmp_path) == before


@pytest.mark.skipif(IS_ROOT, reason="permission bits do not stop root")
@pytest.mark.parametrize("mode, message", [(0o500, "no write permission"), (0o600, "no search permission")])
def test_unwritable_or_unsearchable_parent_is_refused(tmp_path, capsys, mode, message):
    parent = tmp_path / "p"
    parent.mkdir()
    parent.chmod(mode)
    try:
        assert main(["sample", "--generator", "tiny", "--out", str(parent / "s"), "--n", "2"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    finally:
        parent.chmod(0o700)
    assert list(parent.iterdir()) == []


def test_a_directory_that_refuses_writes_is_refused_before_training(tiny_clip_dir, tmp_path, monkeypatch):
    # as a read-only mount would (chmod cannot show it to root): the write probe fails, nothing stays behind
    import tempfile

    import nada._io

    real = tempfile.mkstemp

    def mkstemp(*a, **k):
        if str(k.get("prefix", "")).startswith(".write-probe"):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*a, **k)

    monkeypatch.setattr(nada._io.tempfile, "mkstemp", mkstemp)
    run = fresh_run(config(tiny_clip_dir), tmp_path / "a" / "run")
    with pytest.raises(AdaptError, match="expected a writable directory; cannot write there: the file system is read-only"):
        run.run()
    assert not (tmp_path / "a").exists()


def test_check_output_dir_accepts_good_paths(tmp_path):
    check_output_dir(tmp_path)
    check_output_dir(tmp_path / "new" / "deeper")
    with pytest.raises(OutputError, match="found a file"):
        (tmp_path / "f").write_text("")
        check_output_dir(tmp_path / "f")


# ----------------------------------------------------------------------------- one run per directory


def test_directory_lock_excludes_a_second_holder_and_names_the_first(tmp_path):
    a = DirectoryLock(tmp_path).acquire()
    assert lock_holder(tmp_path).startswith(f"pid {os.getpid()}")
    with pytest.raises(LockedError, match=f"in use by another nada run \\(pid {os.getpid()}"):
        DirectoryLock(tmp_path).acquire()
    a.release()
    assert not (tmp_path / LOCK_NAME).exists() and lock_holder(tmp_path) is None
    with DirectoryLock(tmp_path):
        pass


HOLDER = "import sys, time; from nada._io import DirectoryLock; lock = DirectoryLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)"


def test_second_run_into_a_busy_directory_is_refused_and_a_dead_holder_is_not_an_obstacle(tiny_clip_dir, tmp_path, capsys):
    from nada import save_generator

    base = tmp_path / "base.safetensors"
    save_generator(make_tiny_generator(), base)
    out = tmp_path / "run"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        argv = ["adapt", "--generator", str(base), "--clip", str(tiny_clip_dir), "--source", "photo", "--target",
                "sketch", "--out", str(out), "--iters", "2", "--batch", "1", "--auto-layer-batch", "1", "--n-samples",
                "2", "--sample-every", "0", "--no-progress"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"in use by another nada run (pid {holder.pid}" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing of ours
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel dropped the dead process's lock: its file is left, but no obstacle
    assert (out / LOCK_NAME).exists() and lock_holder(out) is None
    assert main(argv) == 0
    assert (out / "metrics.json").is_file() and not (out / LOCK_NAME).exists()


def test_lock_taken_between_construction_and_run_is_noticed(tiny_clip_dir, tmp_path):
    out = tmp_path / "run"
    run = fresh_run(config(tiny_clip_dir, iters=2), out)  # passes its checks: nobody holds the directory yet
    out.mkdir()
    with DirectoryLock(out):
        with pytest.raises(AdaptError, match="in use by another nada run"):
            run.run()
        with pytest.raises(AdaptError, match="in use by another nada run"):  # refused at construction too
            fresh_run(config(tiny_clip_dir, iters=2), out)
    assert sorted(p.name for p in out.iterdir()) == []


# ----------------------------------------------------------------------------- training states


def test_flatten_round_trips_structure_exactly():
    state = {"a": (1, 2.5, None), "opt": {0: {"step": torch.tensor(3.0), "m": torch.ones(2)}, 7: {}},
             "groups": [{"betas": (0.0, 0.99), "lr": 0.1 + 0.2, "params": [0, 7], "foreach": None, "flag": False}],
             "__odd": "x", "nested": [[torch.arange(3, dtype=torch.uint8)]], "big": 2**62 + 1, "tiny": 5e-324}
    skeleton, tensors = flatten(state)
    back = unflatten(json.loads(json.dumps(skeleton)), tensors)
    assert back["a"] == (1, 2.5, None) and isinstance(back["a"], tuple)
    assert list(back["opt"]) == [0, 7] and torch.equal(back["opt"][0]["m"], torch.ones(2))
    assert back["groups"][0]["lr"] == 0.1 + 0.2 and back["groups"][0]["betas"] == (0.0, 0.99)
    assert back["__odd"] == "x" and back["big"] == 2**62 + 1 and back["tiny"] == 5e-324
    assert torch.equal(back["nested"][0][0], torch.arange(3, dtype=torch.uint8))
    assert sorted(tensors) == ["nested/0/0", "opt/0/m", "opt/0/step"]


@pytest.fixture
def unfinished(tiny_clip_dir, tmp_path):
    """A run interrupted after step 2 (its state of step 2 on disk)."""
    cfg = config(tiny_clip_dir)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fresh_run(cfg, out, guidance=guidance_for(cfg, 3, KeyboardInterrupt())).run()
    return cfg, out


def test_state_of_another_run_is_refused_with_the_difference(unfinished, tiny_clip_dir, tmp_path, capsys):
    cfg, out = unfinished
    other = config(tiny_clip_dir, lr=0.003, iters=9)
    with pytest.raises(AdaptError) as err:
        resume_run(other, out)
    msg = str(err.value)
    assert f"{out / STATE_FILE} was written by a run with iters=6, lr=0.002; this run has iters=9, lr=0.003" in msg
    # from the command line: another run's config.yaml next to this state
    other.save(out / "config.yaml")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["adapt", "--resume", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was written by a run with iters=6, lr=0.002" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_options_that_do_not_change_a_step_may_change_on_resume(unfinished, tiny_clip_dir, reference):
    cfg, out = unfinished
    changed = config(tiny_clip_dir, save_every=1, sample_every=0, n_samples=3, auto_layer_chunk=0)
    resume_run(changed, out).run()
    assert_same_weights(weights(reference), weights(out))


@pytest.mark.parametrize("where, message", [
    ("tensor", "its tensors do not match their checksum"),
    ("header", "metadata checksum does not match|damaged"),
])
def test_bit_flipped_state_is_refused(unfinished, where, message):
    cfg, out = unfinished
    path = out / STATE_FILE
    data = bytearray(path.read_bytes())
    header_len = int.from_bytes(data[:8], "little")
    pos = len(data) - 10 if where == "tensor" else 8 + header_len // 2
    data[pos] ^= 0x04
    path.write_bytes(bytes(data))
    with pytest.raises(AdaptError, match=message) as err:
        resume_run(cfg, out).run()
    assert "\n" not in str(err.value)


def test_foreign_and_older_states_are_refused_in_one_line(unfinished, tmp_path):
    cfg, out = unfinished
    state = out / STATE_FILE
    from nada import save_generator

    save_generator(make_tiny_generator(), state)  # a safetensors file, but a generator
    with pytest.raises(AdaptError, match="expected a nada training state; found a safetensors file of another kind"):
        resume_run(cfg, out)
    state.write_bytes(os.urandom(200))
    with pytest.raises(AdaptError, match="expected a nada training state; found an unreadable or damaged file"):
        resume_run(cfg, out)
    state.unlink()
    torch.save({"version": 1, "step": 2}, out / OLD_STATE_FILE)
    with pytest.raises(AdaptError, match="written by an older nada"):
        resume_run(cfg, out)
    with pytest.raises(AdaptError, match="written by an older nada.*--overwrite"):
        fresh_run(cfg, out)
    fresh_run(config(cfg.guidance.clip[0], iters=1), out, overwrite=True).run()
    assert not (out / OLD_STATE_FILE).exists() and (out / STATE_FILE).exists()


def test_loading_a_state_never_unpickles(unfinished, reference, monkeypatch):
    cfg, out = unfinished
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")

    def no_pickles(*a, **k):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", no_pickles)
    resume_run(cfg, out).run()
    assert_same_weights(weights(reference), weights(out))


# ----------------------------------------------------------------------------- leftovers, permissions, fsync


def test_leftover_temporaries_are_removed_on_start_and_resume(unfinished, tiny_clip_dir, tmp_path):
    cfg, out = unfinished
    junk = [out / ".state.safetensors.abcd1234.tmp", out / "samples" / ".step_000004.png.x_y9Zq12.tmp"]
    keep = [out / ".hidden", out / "notes.tmp", out / ".state.safetensors.tmp"]
    for p in junk + keep:
        p.write_text("x")
    resume_run(cfg, out).run()
    assert not any(p.exists() for p in junk) and all(p.exists() for p in keep)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".config.yaml.qwertyui.tmp").write_text("x")
    fresh_run(config(tiny_clip_dir, iters=1), fresh).run()
    assert not (fresh / ".config.yaml.qwertyui.tmp").exists()
    assert remove_stale_temporaries(tmp_path / "nothing-here") == []


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_output_follows_the_umask(tiny_clip_dir, tmp_path, umask):
    old = os.umask(umask)
    try:
        out = tmp_path / "run"
        fresh_run(config(tiny_clip_dir, iters=2, save_every=1), out).run()
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"generator.safetensors", STATE_FILE, "config.yaml", "metrics.json", "final.png"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p.name


def test_atomic_path_fixes_mode_after_a_writer_that_replaces_the_file(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.unlink()  # as safetensors does: a brand-new file, created 0600
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, b"data")
            os.close(fd)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o644


def test_atomic_write_fsyncs_the_file_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(a, b):
        events.append(("replace", str(b)))
        return real_replace(a, b)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_text(tmp_path / "a.txt", "hello")
    assert [e[0] for e in events] == ["fsync", "replace", "fsync"]
    assert Path(events[0][1]).name.startswith(".a.txt.") and events[1][1] == str(tmp_path / "a.txt")
    assert events[2][1] == str(tmp_path)


def test_writer_errors_that_hide_a_full_disk_become_oserror(tmp_path):
    with pytest.raises(OSError) as err:
        with atomic_path(tmp_path / "g.safetensors"):
            raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "g.safetensors")
    with pytest.raises(OSError) as err:
        with atomic_path(tmp_path / "p.png") as tmp:
            with open(tmp, "wb"):
                raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.filename == str(tmp_path / "p.png")  # named by the file meant, not the temporary
    assert list(tmp_path.iterdir()) == []


def test_sample_full_disk_is_one_line_saying_what_was_written(tmp_path, monkeypatch, capsys):
    import nada.sampling

    real = nada.sampling.save_image
    calls = {"n": 0}

    def save_image(image, path, upscale=1):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(image, path, upscale)

    monkeypatch.setattr(nada.sampling, "save_image", save_image)
    out = tmp_path / "s"
    assert main(["sample", "--generator", "tiny", "--out", str(out), "--n", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"no space left on the device while writing {out / '000002.png'}; 2 of 5 images were written" in err
    calls["n"] = 2  # the very first write fails: a directory we created is removed again
    assert main(["sample", "--generator", "tiny", "--out", str(tmp_path / "u"), "--n", "5"]) == 2
    assert "nothing was written" in capsys.readouterr().err and not (tmp_path / "u").exists()
