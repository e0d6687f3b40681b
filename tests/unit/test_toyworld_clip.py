"""The shipped built-in CLIPs load like hub models and read style, shape and colour zero-shot."""
from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import torch.nn.functional as F

from nada.toyworld.assets import BUILTIN_CLIPS, builtin_clip_paths
from nada.toyworld.captions import zero_shot_prompts
from nada.toyworld.clip_train import CLIP_MEAN, CLIP_STD, multi_positive_infonce, normalise
from nada.toyworld.renderer import render_batch

CLIP_DIRS = list(BUILTIN_CLIPS.items())
MIN_ACCURACY = {"style": 0.95, "shape": 0.75, "colour": 0.95}


@pytest.fixture(scope="module")
def fresh_renders():
    # a seed no training run used
    return render_batch(60, seed=987_654)


def _load_with_transformers(path):
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    return model, tok


def _emb(out):
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def test_builtin_clip_paths_exist_and_are_small():
    paths = builtin_clip_paths()
    assert len(paths) == 2
    for p in paths:
        for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"):
            assert (p / f).is_file(), p / f
        assert (p / "model.safetensors").stat().st_size <= 6 * 2**20
    patch = {json.loads((p / "config.json").read_text())["vision_config"]["patch_size"] for p in paths}
    assert len(patch) == 2  # two different patch sizes


@pytest.mark.parametrize("name,path", CLIP_DIRS)
def test_zero_shot_on_fresh_renders(name, path, fresh_renders):
    images, labels = fresh_renders
    model, tok = _load_with_transformers(path)
    proc = json.loads((path / "preprocessor_config.json").read_text())
    assert proc["image_mean"] == pytest.approx(list(CLIP_MEAN)) and proc["image_std"] == pytest.approx(list(CLIP_STD))
    assert proc["crop_size"] == {"height": 64, "width": 64}
    with torch.no_grad():
        img = F.normalize(_emb(model.get_image_features(pixel_values=normalise(images))), dim=-1)
        for attr in ("style", "shape", "colour"):
            prompts = zero_shot_prompts(attr)
            enc = tok([p for cls in prompts for p in cls], padding=True, return_tensors="pt")
            txt = F.normalize(_emb(model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])), dim=-1)
            txt = F.normalize(txt.view(len(prompts), len(prompts[0]), -1).mean(1), dim=-1)
            acc = ((img @ txt.T).argmax(1) == labels[attr]).float().mean().item()
            # shape is the weak attribute of these small CLIPs (about 0.9 held out, see docs/toyworld.md)
            assert acc >= MIN_ACCURACY[attr], f"{name}: {attr} zero-shot accuracy {acc:.2f}"


@pytest.mark.parametrize("name,path", CLIP_DIRS)
def test_loads_through_nada_load_clip(name, path, fresh_renders):
    load_clip = pytest.importorskip("nada.guidance.clip").load_clip
    clip = load_clip(path)
    model, tok = _load_with_transformers(path)
    images, labels = fresh_renders
    with torch.no_grad():
        direct = F.normalize(_emb(model.get_image_features(pixel_values=normalise(images))), dim=-1)
        via = clip.encode_images(images)
        # the library's preprocessing of a 64x64 image is exactly the training normalisation
        assert torch.allclose(via, direct, atol=1e-5)
        prompts = zero_shot_prompts("style")
        txt = clip.encode_texts([p[0] for p in prompts])
    acc = ((via @ txt.T).argmax(1) == labels["style"]).float().mean().item()
    assert acc >= 0.9, f"{name}: style accuracy through load_clip {acc:.2f}"


def test_multi_positive_infonce_reduces_to_clip_loss():
    torch.manual_seed(0)
    logits = torch.randn(6, 6, dtype=torch.float64)
    eye = torch.eye(6, dtype=torch.bool)
    target = torch.arange(6)
    ref = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    assert torch.allclose(multi_positive_infonce(logits, eye), ref)
    # two positives in a row: that row's target is split evenly between them
    pos = eye.clone()
    pos[0, 1] = True
    row0 = -(0.5 * F.log_softmax(logits[0], 0)[0] + 0.5 * F.log_softmax(logits[0], 0)[1])
    rows = torch.stack([row0] + [-F.log_softmax(logits[i], 0)[i] for i in range(1, 6)]).mean()
    col1 = -(0.5 * F.log_softmax(logits[:, 1], 0)[0] + 0.5 * F.log_softmax(logits[:, 1], 0)[1])
    cols = torch.stack([-F.log_softmax(logits[:, 0], 0)[0], col1] + [-F.log_softmax(logits[:, j], 0)[j] for j in range(2, 6)]).mean()
    assert torch.allclose(multi_positive_infonce(logits, pos), (rows + cols) / 2)


def test_style_weights_parse_and_normalise():
    from nada.toyworld.clip_train import parse_style_weights, style_probabilities
    from nada.toyworld.renderer import STYLES

    w = parse_style_weights(["pixel art=3", "neon = 0.5"])
    assert w == {"pixel art": 3.0, "neon": 0.5}
    p = style_probabilities(w)
    expect = torch.tensor([1, 1, 3, 0.5, 1], dtype=torch.float64) / 6.5
    assert torch.allclose(p, expect)
    assert torch.allclose(style_probabilities(None), torch.full((len(STYLES),), 0.2, dtype=torch.float64))
    for bad in (["pixel art"], ["=2"], ["neon=x"]):
        with pytest.raises(ValueError):
            parse_style_weights(bad)
    for bad in ({"crayon": 1.0}, {s: 0.0 for s in STYLES}, {"neon": -1.0}, {"neon": float("nan")}):
        with pytest.raises(ValueError):
            style_probabilities(bad)


def test_draw_batch_follows_pool_order_and_style_weights():
    from nada.toyworld.clip_train import draw_batch, style_probabilities
    from nada.toyworld.renderer import STYLES

    n_scenes, group = 30, 4
    pool_size = n_scenes * len(STYLES) * group
    gen = torch.Generator().manual_seed(0)
    only_pixel = style_probabilities({s: (1.0 if s == "pixel art" else 0.0) for s in STYLES})
    idx = draw_batch(pool_size, 64, group, only_pixel, gen)
    assert idx.shape == (64,)
    # index = (scene * styles + style) * group + shape
    assert ((idx // group) % len(STYLES) == STYLES.index("pixel art")).all()
    assert (idx % group == torch.arange(group).repeat(16)).all()
    assert int(idx.max()) < pool_size
    # weighted draw: pixel art at weight 4 of 8 is about half of 4000 groups
    idx = draw_batch(pool_size, 4000 * group, group, style_probabilities({"pixel art": 4.0}), gen)
    share = ((idx[::group] // group) % len(STYLES) == STYLES.index("pixel art")).double().mean().item()
    assert abs(share - 0.5) < 0.05
    # unweighted draw keeps the shipped phases' random stream
    a = draw_batch(pool_size, 32, group, None, torch.Generator().manual_seed(3))
    first = torch.randint(0, pool_size // group, (8,), generator=torch.Generator().manual_seed(3)) * group
    assert torch.equal(a, (first[:, None] + torch.arange(group)).reshape(-1))
