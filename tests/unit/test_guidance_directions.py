"""Text side and targets: templates, text directions, zero-direction guard, image-folder direction, auto source."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nada.guidance.clip import load_clip
from nada.guidance.config import GuidanceConfig
from nada.guidance.directions import (
    check_direction,
    domain_text_embedding,
    load_image_folder,
    select_source_text,
)
from nada.guidance.ensemble import ClipEnsemble
from nada.guidance.errors import GuidanceError, ZeroDirectionError
from nada.guidance.guidance import Guidance
from nada.guidance.templates import IMAGENET_TEMPLATES, compose_prompts
from fixtures import make_tiny_clip
from nada.imaging import from_uint8

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return load_clip(make_tiny_clip(tmp_path_factory.mktemp("clip"), seed=1))


@pytest.fixture(scope="module")
def clip16(tmp_path_factory):
    return load_clip(make_tiny_clip(tmp_path_factory.mktemp("clip16"), patch_size=16, seed=2))


def _write_images(folder, n, seed, size=(40, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = []
    for i in range(n):
        a = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"img{i}.png")
        arrays.append(a)
    (folder / "notes.txt").write_text("not an image")
    return arrays


def test_compose_prompts():
    assert compose_prompts("sketch", use_templates=False) == ["sketch"]
    prompts = compose_prompts(" sketch ")
    assert len(prompts) == len(IMAGENET_TEMPLATES) >= 20
    assert prompts[0] == IMAGENET_TEMPLATES[0].format("sketch") and all("sketch" in p for p in prompts)
    assert compose_prompts("dog", ["a {}!", "the {}?"]) == ["a dog!", "the dog?"]
    with pytest.raises(GuidanceError):
        compose_prompts("dog", ["no slot"])
    with pytest.raises(GuidanceError):
        compose_prompts("", None)


def text_direction(clip, source, target, templates=None, use_templates=True):
    """The text direction Guidance.prepare computes: dT = E(target) - E(source), checked non-zero."""
    d = domain_text_embedding(clip, target, templates, use_templates) - domain_text_embedding(clip, source, templates, use_templates)
    return check_direction(d, f"{clip.name}: source {source!r} -> target {target!r}")


def test_text_direction_formula(clip):
    templates = ["a photo of a {}.", "a drawing of the {}.", "art of a {}."]
    d = text_direction(clip, "photo", "sketch", templates)
    src = clip.encode_texts([t.format("photo") for t in templates]).double()
    tgt = clip.encode_texts([t.format("sketch") for t in templates]).double()
    expected = F.normalize(tgt.mean(0), dim=0) - F.normalize(src.mean(0), dim=0)
    assert torch.allclose(d.double(), expected, atol=1e-6)
    bare = text_direction(clip, "photo", "sketch", use_templates=False)
    expected_bare = clip.encode_texts(["sketch"])[0] - clip.encode_texts(["photo"])[0]
    assert torch.allclose(bare, expected_bare, atol=1e-6)
    assert torch.allclose(domain_text_embedding(clip, "dog").norm(), torch.tensor(1.0), atol=1e-6)


def test_identical_source_and_target_raise_before_training(clip):
    with pytest.raises(ZeroDirectionError, match="'photo' -> target 'photo'"):
        text_direction(clip, "photo", "photo")
    # different strings, same tokens (the tokenizer lower-cases): also no direction
    with pytest.raises(ZeroDirectionError, match="zero CLIP direction"):
        text_direction(clip, "a Photo", "a photo", use_templates=False)
    g = Guidance(GuidanceConfig(clip=["tiny"], source_text="dog", target_text="dog"), [clip])
    with pytest.raises(ZeroDirectionError):
        g.prepare()
    with pytest.raises(ZeroDirectionError):  # loss() prepares lazily and must not return NaN instead
        g.loss(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(GuidanceError, match="does not exist"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GuidanceError, match="holds no images"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(GuidanceError, match="cannot read image"):
        load_image_folder(tmp_path / "broken")


def test_image_folder_direction_in_guidance(tmp_path, clip):
    arrays = _write_images(tmp_path / "style", 3, seed=4)
    images = load_image_folder(tmp_path / "style")
    assert len(images) == 3 and images[0].shape == (3, 32, 40)
    frozen = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    calls = []

    def sampler(n):
        calls.append(n)
        return frozen[:n]

    cfg = GuidanceConfig(clip=["tiny"], source_text=None, target_image_dir=str(tmp_path / "style"), source_samples=5)
    g = Guidance(cfg, [clip])
    with pytest.raises(GuidanceError, match="frozen_sampler"):
        g.prepare()
    g.prepare(frozen_sampler=sampler)
    assert calls == [5]
    with torch.no_grad():
        tgt = F.normalize(torch.cat([clip.encode_images(from_uint8(a)[None]) for a in arrays]).mean(0), dim=0)
        src = F.normalize(clip.encode_images(frozen).mean(0), dim=0)
    assert torch.allclose(g.targets[0].direction, tgt - src, atol=1e-5)
    assert torch.allclose(g.targets[0].target, tgt, atol=1e-5)


def test_automatic_source_text_picks_the_best_scoring_caption(clip, clip16):
    frozen = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    candidates = ["a photo of a dog", "a sketch of a cat", "a red car", "a painting of a church"]
    ensemble = ClipEnsemble([clip, clip16], [1.0, 3.0])
    best, scores = select_source_text(ensemble, frozen, candidates, use_templates=False)
    manual = {}
    with torch.no_grad():
        for c in candidates:
            s = 0.0
            for model, w in ((clip, 0.25), (clip16, 0.75)):
                s += w * float((model.encode_images(frozen) @ model.encode_texts([c])[0]).mean())
            manual[c] = s
    assert scores == pytest.approx(manual, abs=1e-5)
    assert best == max(manual, key=manual.get)
    # through Guidance: the choice is reported and used for the direction
    cfg = GuidanceConfig(clip=["a", "b"], source_text=None, auto_source=True, source_candidates=candidates,
                         target_text="a neon star", use_templates=False, source_samples=6)
    g = Guidance(cfg, ensemble)
    info = g.prepare(frozen_sampler=lambda n: frozen[:n])
    assert info["source_text"] == best == g.source_text
    assert info["source_scores"] == pytest.approx(manual, abs=1e-5)
    assert torch.allclose(g.targets[0].direction, text_direction(clip, best, "a neon star", use_templates=False))
    with pytest.raises(GuidanceError, match="at least one candidate"):
        select_source_text(clip, frozen, ["  "])
