"""File output that survives crashes, full disks and concurrent runs.

* :func:`atomic_path` / :func:`atomic_write_bytes`: a crash never leaves a half-written file
  under the final name; the result has the permissions a plain ``open()`` would give (the
  umask), and is on disk (fsync of file and directory) once the call returns.
* :func:`remove_stale_temporaries`: the ``.<name>.*.tmp`` files a killed writer left behind.
* :class:`DirectoryLock`: one writer per run directory (``fcntl.flock``; the kernel drops the
  lock of a process that dies, so a stale lock never blocks anybody).
* :func:`check_output_dir` / :func:`prepare_output_dir`: an output directory checked before
  any work starts, and the one-line explanations of what went wrong (:func:`describe_os_error`).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .errors import OutputError as _OutputErrorBase

if TYPE_CHECKING:
    import torch

TMP_SUFFIX = ".tmp"
# mkstemp's names: "." + final name + "." + 8 random characters + ".tmp"
_TMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


class OutputError(_OutputErrorBase):
    """An output path that cannot be used, or a write that failed; ``str()`` is one line."""

    def __init__(self, err: int, message: str):
        super().__init__(err, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def current_umask() -> int:
    """The process umask, read without changing it where the kernel allows (thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def fsync_directory(directory: str | os.PathLike) -> None:
    """Flush a directory entry (a rename, a new file) to disk; a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some file systems cannot fsync a directory
        if e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EROFS):
            raise
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_OS_ERROR_IN_TEXT = re.compile(r"\(os error (\d+)\)")


def _as_os_error(exc: BaseException, path: Path) -> OSError | None:
    """The OSError hidden in a writer's own exception (safetensors' Rust errors, torch's zip writer)."""
    if isinstance(exc, OSError):
        return None
    text = str(exc)
    m = _OS_ERROR_IN_TEXT.search(text)
    if m:
        code = int(m.group(1))
        return OSError(code, os.strerror(code), str(path))
    if "No space left on device" in text:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    if "write failed" in text or "file write" in text:  # torch.save's PytorchStreamWriter: no errno
        try:
            st = os.statvfs(path.parent)
            if st.f_bavail * st.f_frsize < 1 << 20:
                return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        except OSError:
            pass
        return OSError(errno.EIO, os.strerror(errno.EIO), str(path))
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same directory; rename it onto ``path`` on success.

    The rename is atomic on POSIX because source and destination share a file system. Once
    the writer is done, the file gets the permissions a plain ``open()`` would give under the
    current umask (the writer may have replaced the file, so this happens after it), is
    fsynced, renamed, and the directory is fsynced, so a power cut leaves either the old or the
    new file. On any exception the temporary file is removed and ``path`` is left untouched;
    a writer's own error that hides an OS error (safetensors reports a full disk as
    ``... (os error 28)``) is raised as that :class:`OSError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from e
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            # mkstemp creates the file 0600, and a writer may replace it: give the result the
            # permissions a plain open() would, once the writer is done
            os.chmod(tmp_path, 0o666 & ~current_umask())
            _fsync_file(tmp_path)
            os.replace(tmp_path, path)
        except BaseException as exc:
            hidden = _as_os_error(exc, path)
            if hidden is not None:
                raise hidden from exc
            # name the file being written; errors that are not about the file (a failed download,
            # URLError, carries no errno) pass unchanged
            if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, str(tmp_path)):
                raise OSError(exc.errno, exc.strerror, str(path)) from exc
            raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is one of :func:`atomic_path`'s temporary files (``.<name>.XXXXXXXX.tmp``)."""
    return bool(_TMP_NAME.match(name))


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed writer left in ``directory``; returns what was removed.

    Only call this while holding the directory's :class:`DirectoryLock` (a live writer's
    temporary file looks the same).
    """
    removed = []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if is_temporary_name(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


# ------------------------------------------------------------------------------ describing errors

_ERRNO_TEXT = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.ENAMETOOLONG: "the path is longer than the system allows",
    errno.EEXIST: "a file of that name exists",
    errno.EISDIR: "it is a directory",
    errno.EIO: "an input/output error",
    errno.ENOENT: "no such file or directory",
}
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def describe_os_error(exc: OSError) -> str:
    """``exc`` in a few words: what went wrong and where (one line)."""
    what = _ERRNO_TEXT.get(exc.errno) or (exc.strerror or str(exc)).lower()
    where = exc.filename if exc.filename is not None else None
    text = " ".join(f"{what} ({where})".split()) if where else what
    return text


# ------------------------------------------------------------------------------ output directories


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _path_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_PATH_MAX")
    except (OSError, ValueError):
        return 4096


def check_output_dir(path: str | os.PathLike, what: str = "--out") -> None:
    """Refuse, without writing anything, an output directory that cannot be created or written.

    A file in its place or above it, a name or path longer than the system allows, a parent
    without search or write permission, a read-only file system: each raises
    :class:`OutputError` with one line naming ``what`` (the option), the path and the reason.
    (Permission bits do not stop root; :func:`prepare_output_dir` probes for real.)
    """
    path = Path(path)
    label = f"{what} {path}"
    absolute = Path(os.path.abspath(path))
    # the nearest existing ancestor, and what is in the way
    probe = absolute
    missing: list[str] = []
    while True:
        try:
            st = os.stat(probe)
        except FileNotFoundError:
            missing.append(probe.name)
            if probe.parent == probe:
                break
            probe = probe.parent
            continue
        except NotADirectoryError:
            # some ancestor is a file: find it for the message
            blocker = next((p for p in reversed(absolute.parents) if p.is_file()), None)
            raise OutputError(errno.ENOTDIR, f"{label}: expected a directory path; found that {blocker or 'a part of it'} "
                                             f"is a file") from None
        except PermissionError:
            raise OutputError(errno.EACCES, f"{label}: expected a directory you can reach; found no search permission on "
                                            f"{_first_unsearchable(absolute) or probe.parent}") from None
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                longest = max(absolute.parts, key=lambda n: len(os.fsencode(n)))
                if len(os.fsencode(longest)) > 255:
                    raise OutputError(e.errno, f"{label}: expected names of at most 255 bytes; found one of "
                                               f"{len(os.fsencode(longest))} bytes ({longest[:24]}...)") from None
                raise OutputError(e.errno, _too_long(label, absolute)) from None
            raise OutputError(e.errno or errno.EIO, f"{label}: cannot use it: {describe_os_error(e)}") from None
        break
    import stat as stat_mod

    if not stat_mod.S_ISDIR(st.st_mode):
        if probe == absolute:
            raise OutputError(errno.EEXIST, f"{label}: expected a directory; found a file of that name")
        raise OutputError(errno.ENOTDIR, f"{label}: expected a directory path; found that {probe} is a file")
    name_max, path_max = _name_max(probe), _path_max(probe)
    for name in missing:
        if len(os.fsencode(name)) > name_max:
            raise OutputError(errno.ENAMETOOLONG, f"{label}: expected names of at most {name_max} bytes; found one of "
                                                  f"{len(os.fsencode(name))} bytes ({name[:24]}...)")
    # room for our own file names below it (samples/step_000000.png, temporaries)
    if len(os.fsencode(str(absolute))) + 64 > path_max:
        raise OutputError(errno.ENAMETOOLONG, _too_long(label, absolute, path_max))
    need = os.W_OK | os.X_OK
    if not os.access(probe, need):
        reason = _why_not_writable(probe)
        raise OutputError(reason[0], f"{label}: expected a writable directory; found {reason[1]}")


def _too_long(label: str, absolute: Path, path_max: int | None = None) -> str:
    limit = f" (at most {path_max} bytes with the names written below it)" if path_max else ""
    return f"{label}: expected a shorter path{limit}; found {len(os.fsencode(str(absolute)))} bytes"


def _first_unsearchable(path: Path) -> Path | None:
    for p in reversed(path.parents):
        if p.exists() and not os.access(p, os.X_OK):
            return p
    return None


def _why_not_writable(directory: Path) -> tuple[int, str]:
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return errno.EROFS, f"{directory} on a read-only file system"
    except OSError:
        pass
    if not os.access(directory, os.X_OK):
        return errno.EACCES, f"no search permission on {directory}"
    return errno.EACCES, f"no write permission on {directory}"


def prepare_output_dir(path: str | os.PathLike, what: str = "--out") -> list[Path]:
    """Create ``path`` (and missing parents) and prove it writable by creating and removing a
    temporary file. Returns the directories it created (deepest last), so a caller that gives
    up can remove them again (:func:`remove_created_dirs`). Raises :class:`OutputError`."""
    path = Path(path)
    check_output_dir(path, what)
    created: list[Path] = []
    for p in reversed([path, *path.parents]):
        if p.exists():
            continue
        try:
            p.mkdir()
            created.append(p)
        except FileExistsError:
            if not p.is_dir():
                remove_created_dirs(created)
                raise OutputError(errno.EEXIST, f"{what} {path}: expected a directory; found that {p} is a file") from None
        except OSError as e:
            remove_created_dirs(created)
            raise OutputError(e.errno or errno.EIO, f"{what} {path}: cannot create it: {describe_os_error(e)}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=TMP_SUFFIX, dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        remove_created_dirs(created)
        raise OutputError(e.errno or errno.EIO, f"{what} {path}: expected a writable directory; cannot write there: "
                                                f"{describe_os_error(e)}") from None
    return created


def remove_created_dirs(created: list[Path]) -> None:
    """Remove directories made by :func:`prepare_output_dir` again, deepest first, if still empty."""
    for p in reversed(created):
        with contextlib.suppress(OSError):
            p.rmdir()


# ------------------------------------------------------------------------------ run-directory lock

LOCK_NAME = ".nada.lock"


class LockedError(OutputError):
    """Another live process holds the directory's lock."""


class DirectoryLock:
    """An exclusive ``fcntl.flock`` on ``DIR/.nada.lock``, held while a run writes to ``DIR``.

    The file holds the owner's PID and command for the refusal message. The kernel releases
    the lock when its process exits, however it exits, so a lock left by a killed run is
    simply taken over. Released locks delete their file; the inode check after locking makes
    that safe against a concurrent taker.
    """

    def __init__(self, directory: str | os.PathLike, what: str = "a nada run"):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.what = what
        self._fd: int | None = None
        self.unsupported = False  # the file system cannot lock; nothing is held

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "DirectoryLock":
        import fcntl

        if self._fd is not None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                os.close(fd)
                raise LockedError(errno.EBUSY, f"{self.directory} is in use by another nada run ({owner}); wait for it "
                                               f"to finish or stop it, or choose another directory") from None
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
                    # a file system without flock (some network mounts): run unguarded rather than not at all
                    self.unsupported = True
                    with contextlib.suppress(OSError):
                        os.unlink(self.path)
                    return self
                raise
            except BaseException:
                os.close(fd)
                raise
            # the file may have been released and deleted between our open and our lock
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        import sys

        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n".encode("utf-8", "replace"))
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still locked by us: nobody can be inside
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - a forgotten lock dies with its object
        with contextlib.suppress(Exception):
            self.release()


def _read_owner(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 512).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "pid unknown"


def lock_holder(directory: str | os.PathLike) -> str | None:
    """Who holds ``directory``'s lock right now (``"pid 123: ..."``), or None; writes nothing."""
    import fcntl

    path = Path(directory) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_owner(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def tensors_sha256(tensors: "dict[str, torch.Tensor]") -> str:
    """sha256 over names, dtypes, shapes and bytes of ``tensors`` in sorted-name order.

    The checksum our own files (generators, training states) carry in their metadata, so a
    flipped bit anywhere in the weights is caught on load.
    """
    import hashlib

    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}\0{str(t.dtype)}\0{tuple(t.shape)}\0".encode())
        # a flat byte view of any dtype (bfloat16 has no numpy twin)
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
