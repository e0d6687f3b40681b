"""Atomic output: all or nothing, with ordinary permissions."""
from __future__ import annotations

import os

import pytest

from nada._io import atomic_path, atomic_write_text


def test_atomic_write_respects_umask_and_replaces(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "a.txt"
        atomic_write_text(path, "one")
        atomic_write_text(path, "two")
    finally:
        os.umask(old)
    assert path.read_text() == "two"
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_failure_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
