"""Downloads against a local HTTP server on 127.0.0.1 (never the internet)."""
from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest
import torch

from nada.generators import registry
from nada.generators.checkpoints import CheckpointError, load_generator, save_generator
from nada.generators.download import cache_dir, download
from nada.generators.stylegan2 import Generator, GeneratorConfig

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB, more than one read chunk


class Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 - http.server API
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        if self.path.startswith("/drop/"):
            # announce the whole file, send half of it, then hang up
            body = self.files[self.path[len("/drop"):]]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "not here")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    Handler.files = {"/weights.bin": PAYLOAD}
    Handler.hits = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NADA_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NADA_OFFLINE", raising=False)
    return tmp_path / "cache"


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_complete_file_with_checksum(server, tmp_path):
    dest = tmp_path / "d" / "weights.bin"
    out = download(f"{server}/weights.bin", dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(), progress=True)
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["weights.bin"]


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    dest = tmp_path / "d" / "weights.bin"
    with pytest.raises(CheckpointError, match="sha256") as info:
        download(f"{server}/weights.bin", dest, sha256="0" * 64, progress=False)
    assert str(dest) in str(info.value)
    assert leftovers(dest.parent) == []


def test_server_dropping_mid_file_leaves_no_partial_file(server, tmp_path):
    dest = tmp_path / "d" / "weights.bin"
    with pytest.raises(CheckpointError) as info:
        download(f"{server}/drop/weights.bin", dest, progress=False)
    message = str(info.value)
    assert f"{server}/drop/weights.bin" in message and str(dest) in message and "\n" not in message
    assert leftovers(dest.parent) == []  # neither the final name nor a temporary file


def test_http_error_and_refused_connection(server, tmp_path):
    with pytest.raises(CheckpointError, match="HTTP 404"):
        download(f"{server}/missing.bin", tmp_path / "x.bin", progress=False)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CheckpointError, match="network error") as info:
        download(f"http://127.0.0.1:{port}/w.bin", tmp_path / "y.bin", progress=False, timeout=5)
    assert "save it as" in str(info.value)
    assert not (tmp_path / "x.bin").exists() and not (tmp_path / "y.bin").exists()


def test_offline_mode_says_what_to_fetch_and_where(server, tmp_path, monkeypatch):
    monkeypatch.setenv("NADA_OFFLINE", "1")
    dest = tmp_path / "z.bin"
    with pytest.raises(CheckpointError) as info:
        download(f"{server}/weights.bin", dest)
    assert f"{server}/weights.bin" in str(info.value) and str(dest) in str(info.value)
    assert Handler.hits == {}  # not even tried


def test_cache_dir_follows_environment(isolated_cache):
    assert cache_dir() == isolated_cache


def _register(monkeypatch, name, url, sha256=None):
    entry = registry.PretrainedCheckpoint(name, url, 8, "nvidia-pkl", "test network", sha256=sha256)
    monkeypatch.setitem(registry.PRETRAINED, name, entry)
    return entry


def test_named_checkpoint_is_downloaded_once_then_cached(server, tmp_path, monkeypatch, isolated_cache):
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(resolution=8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4}))
    G.set_w_avg(torch.randn(8))
    data = save_generator(G, tmp_path / "served.safetensors").read_bytes()
    Handler.files["/net.pkl"] = data
    entry = _register(monkeypatch, "test-net-8", f"{server}/net.pkl", sha256=hashlib.sha256(data).hexdigest())
    G1 = load_generator("test-net-8", progress=False)
    assert entry.cache_path() == isolated_cache / "test-net-8.pkl" and entry.cache_path().read_bytes() == data
    G2 = load_generator("test-net-8", progress=False)
    assert Handler.hits["/net.pkl"] == 1
    ws = torch.randn(1, G.num_ws, G.w_dim)
    with torch.no_grad():
        torch.testing.assert_close(G1.synthesis(ws), G.synthesis(ws), rtol=0, atol=0)
        torch.testing.assert_close(G2.synthesis(ws), G.synthesis(ws), rtol=0, atol=0)


def test_named_checkpoint_offline_error_names_url_and_cache_path(monkeypatch, isolated_cache):
    monkeypatch.setenv("NADA_OFFLINE", "1")
    with pytest.raises(CheckpointError) as info:
        load_generator("ffhq-256")
    message = str(info.value)
    assert registry.PRETRAINED["ffhq-256"].url in message
    assert str(isolated_cache / "ffhq-256.pkl") in message


def test_registry_entries_are_consistent():
    for name, entry in registry.PRETRAINED.items():
        assert entry.name == name and entry.url.startswith("https://") and entry.url.endswith(".pkl")
        assert entry.resolution in (256, 512, 1024) and entry.format in ("nvidia-pkl", "tf-pkl")
    for required in ("ffhq-1024", "ffhq-512", "ffhq-256", "afhqdog-512", "afhqcat-512", "afhqwild-512", "afhqv2-512",
                     "metfaces-1024", "celebahq-256", "lsundog-256", "brecahad-512", "lsuncar", "church-256", "horse-256", "cat-256"):
        assert required in registry.PRETRAINED
    assert "tiny" in registry.BUILTINS and not set(registry.BUILTINS) & set(registry.PRETRAINED)
