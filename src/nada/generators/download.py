"""Fetching checkpoint files into the cache directory.

Downloads stream into a temporary file next to the destination and are renamed onto it only
when complete (and, if a checksum is known, verified), so an interrupted download never
leaves a partial file under the final name. Without network access the error says which URL
to fetch and where to put the file.
"""
from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .._io import atomic_path
from ..network import offline
from .errors import CheckpointError

CHUNK_BYTES = 1 << 20


def cache_dir() -> Path:
    """``$NADA_CACHE``, or ``~/.cache/nada``."""
    env = os.environ.get("NADA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nada"


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str | None = None,
             progress: bool = True, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically; return ``dest``.

    Raises CheckpointError (naming the URL and ``dest``) when offline (:func:`nada.network.offline`), on
    any network or HTTP failure, on a short read, or on a checksum mismatch.
    """
    dest = Path(dest)
    manual = f"fetch that URL yourself and save it as {dest}"
    if offline():
        raise CheckpointError(f"cannot download {url}: NADA_OFFLINE is set; {manual}")
    try:
        with atomic_path(dest) as tmp:
            _stream(url, tmp, progress, timeout, dest.name)
            if sha256 is not None:
                found = sha256_of(tmp)
                if found != sha256.lower():
                    raise CheckpointError(
                        f"downloaded {url} has sha256 {found}, expected {sha256.lower()}; "
                        f"the file was discarded; {manual}")
    except CheckpointError:
        raise
    except (OSError, ValueError) as e:  # URLError/HTTPError are OSErrors; _stream turns HTTP protocol errors into OSError
        raise CheckpointError(f"cannot download {url} ({_reason(e)}); {manual}") from None
    if progress:
        print(f"downloaded {url} to {dest}", file=sys.stderr)
    return dest


def _stream(url: str, tmp: Path, progress: bool, timeout: float, label: str) -> None:
    import http.client  # local: only needed here

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            total = response.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                      disable=not progress, file=sys.stderr, leave=False) as bar:
                while True:
                    block = response.read(CHUNK_BYTES)
                    if not block:
                        break
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            if total is not None and received != total:
                raise OSError(f"connection closed after {received} of {total} bytes")
    except http.client.HTTPException as e:  # IncompleteRead, RemoteDisconnected, ...
        raise OSError(f"{type(e).__name__}: {e}") from None


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"network error: {e.reason}"
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text
