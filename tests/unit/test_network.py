"""NADA_OFFLINE is the one switch: it stops generator downloads and CLIP hub downloads alike."""
from __future__ import annotations

import pytest

from nada import network


@pytest.fixture
def online(monkeypatch):
    for v in ("NADA_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def test_nada_offline_stops_both(online, monkeypatch):
    assert not network.offline() and not network.hub_offline()
    monkeypatch.setenv("NADA_OFFLINE", "yes")
    assert network.offline() and network.hub_offline()


def test_hub_switches_stop_only_the_hub(online, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert network.hub_offline() and not network.offline()


def test_clip_loader_refuses_the_hub_when_nada_is_offline(online, monkeypatch, tmp_path):
    from nada.guidance.clip import load_clip
    from nada.guidance.errors import ClipLoadError

    monkeypatch.setenv("NADA_OFFLINE", "1")
    with pytest.raises(ClipLoadError, match="forbids downloading") as info:
        load_clip("someone/no-such-clip", cache_dir=tmp_path)
    assert "\n" not in str(info.value)
