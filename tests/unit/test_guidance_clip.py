"""CLIP backend: preprocessing parity with transformers' processor, text encoding, freezing, loading errors."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nada.guidance.clip import (
    ClipLoadError,
    ImagePreprocessing,
    _embedding,
    load_clip,
    resolve_clip_name,
)
from fixtures import make_tiny_clip
from nada.imaging import from_uint8

torch.set_num_threads(1)

MEAN = (0.5, 0.4, 0.3)  # not CLIP's: proves the values are read from preprocessor_config.json
STD = (0.2, 0.25, 0.3)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tinyclip"), patch_size=8, image_size=32, seed=3, image_mean=MEAN, image_std=STD)


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_clip(clip_dir)


def _processor(clip_dir):
    # CLIPImageProcessor falls back to its PIL/NumPy backend when torchvision is absent.
    try:
        from transformers import CLIPImageProcessor

        return CLIPImageProcessor.from_pretrained(clip_dir)
    except ImportError:  # pragma: no cover - depends on the transformers build
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        return CLIPImageProcessorPil.from_pretrained(clip_dir)


def _reference(clip, processor, arrays):
    pv = processor(images=[Image.fromarray(a) for a in arrays], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref = F.normalize(_embedding(clip.model.get_image_features(pixel_values=pv)).float(), dim=-1)
    return pv, ref


@pytest.mark.parametrize("shape", [(32, 32), (32, 49), (47, 32)])  # odd margins test the crop rounding
def test_encode_images_matches_processor_and_get_image_features(clip, clip_dir, shape):
    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, size=(3, *shape, 3), dtype=np.uint8)
    pv, ref = _reference(clip, _processor(clip_dir), arrays)
    images = from_uint8(arrays)
    ours_pv = clip.preprocess(images)
    assert ours_pv.shape == pv.shape == (3, 3, 32, 32)
    assert torch.allclose(ours_pv, pv.float(), atol=1e-5)
    with torch.no_grad():
        ours = clip.encode_images(images)
    assert torch.allclose(ours, ref, atol=1e-4)
    assert torch.allclose(ours.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_encode_images_resized_input_close_to_processor(clip, clip_dir):
    # PIL resamples 8-bit images (rounded, overshoot clipped), we resample floats: the pixel
    # values agree to about one 8-bit level, which shows the same filter and geometry.
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    arrays = np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)  # 64x64 images, downscaled to 32
    pv, ref = _reference(clip, _processor(clip_dir), arrays)
    images = from_uint8(arrays)
    level = 1 / (255 * min(STD))  # one 8-bit step in normalised units
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    ours = clip.preprocess(images)
    # PIL clips bicubic overshoot to 0..255 and rounds to 8 bits after each of its two passes
    clipped = ((ours * std + mean).clamp(0, 1) - mean) / std
    diff = (clipped - pv).abs()
    assert diff.mean() < 0.3 * level and diff.max() < 2.5 * level
    assert (ours - pv).abs().mean() < 0.5 * level
    with torch.no_grad():
        cos = (clip.encode_images(images) * ref).sum(-1)
    assert cos.min() > 0.99


def test_preprocessing_reads_processor_config_variants():
    p = ImagePreprocessing.from_processor_config({"size": 40, "crop_size": 32}, image_size=32)
    assert p.shortest_edge == 40 and p.crop_hw == (32, 32)
    assert p.output_hw(50, 80) == (32, 32)
    assert p._resized_hw(50, 80) == (40, 64)  # shorter side -> 40, longer truncated: int(40 * 80 / 50)
    p2 = ImagePreprocessing.from_processor_config({"size": {"height": 32, "width": 32}, "do_center_crop": False}, 32)
    assert p2.resize_hw == (32, 32) and p2.output_hw(50, 80) == (32, 32)
    with pytest.raises(ClipLoadError, match="3 means"):
        ImagePreprocessing.from_processor_config({"image_mean": [0.5, 0.5]}, 32)


def test_centre_crop_pads_small_images_like_the_library():
    p = ImagePreprocessing(crop_hw=(4, 4), do_resize=False, do_normalize=False)
    img = torch.ones(1, 3, 2, 2)  # [-1, 1] value 1 -> 1.0 in [0, 1]
    out = p(img)
    assert out.shape == (1, 3, 4, 4)
    assert torch.equal(out[0, 0, 1:3, 1:3], torch.ones(2, 2)) and out[0, 0].sum() == 4


def test_encode_texts_cached_normalised_and_pooled_at_eos(clip):
    calls = []
    original = clip.model.get_text_features

    def counting(**kw):
        calls.append(kw["input_ids"].shape[0])
        return original(**kw)

    clip.model.get_text_features = counting
    try:
        clip._text_cache.clear()
        a = clip.encode_texts(["a photo", "a red circle in a sketch of a square"])
        b = clip.encode_texts(["a photo"])
        c = clip.encode_texts(["a photo", "sketch"])
    finally:
        clip.model.get_text_features = original
    assert calls == [2, 1]  # second call fully cached, third encodes only "sketch"
    assert torch.allclose(a.norm(dim=-1), torch.ones(2), atol=1e-5)
    # "a photo" was padded to the longer text in the first batch and encoded alone in none:
    # equal embeddings mean pooling happens at the eos token, not at the last position.
    clip._text_cache.clear()
    alone = clip.encode_texts(["a photo"])
    assert torch.allclose(a[0], alone[0], atol=1e-5) and torch.equal(b[0], a[0]) and torch.equal(c[0], a[0])
    ids = clip.tokenizer(["a photo"], return_tensors="pt")
    with torch.no_grad():
        manual = F.normalize(_embedding(clip.model.get_text_features(input_ids=ids["input_ids"])), dim=-1)
    assert torch.allclose(alone, manual, atol=1e-5)


def test_clip_is_frozen_and_differentiable_in_the_image(clip):
    assert not clip.model.training
    assert all(not p.requires_grad for p in clip.model.parameters())
    x = (torch.rand(2, 3, 40, 40) * 2 - 1).requires_grad_(True)
    clip.encode_images(x)[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.model.parameters())


def test_hidden_states_and_projection_agree_with_encode_images(clip):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        emb, hidden = clip.encode_images_with_hidden(x, [0, -1])
        assert torch.allclose(emb, clip.encode_images(x), atol=1e-5)
    assert [h.shape for h in hidden] == [(2, 17, 32), (2, 17, 32)]  # (32/8)^2 patches + class token
    with pytest.raises(ValueError, match="out of range"):
        clip.encode_images_with_hidden(x, [5])


def test_missing_hub_model_offline_gives_one_clear_error(tmp_path):
    with pytest.raises(ClipLoadError) as err:
        load_clip("ViT-B/32", cache_dir=tmp_path / "empty-cache")
    msg = str(err.value)
    assert "openai/clip-vit-base-patch32" in msg and "(ViT-B/32)" in msg
    assert "offline mode (NADA_OFFLINE or HF_HUB_OFFLINE)" in msg
    assert "hf download openai/clip-vit-base-patch32" in msg and "huggingface-cli download" in msg
    assert "\n" not in msg


def test_missing_or_broken_local_directory(tmp_path):
    with pytest.raises(ClipLoadError, match="does not exist"):
        load_clip(str(tmp_path / "no" / "such" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipLoadError, match="expected a CLIP model directory .*; found no config.json \\(contents: it is empty\\)"):
        load_clip(tmp_path / "empty")


def test_aliases_and_dtype_checks(clip_dir):
    assert resolve_clip_name("ViT-B/16") == "openai/clip-vit-base-patch16"
    assert resolve_clip_name("ViT-L/14") == "openai/clip-vit-large-patch14"
    assert resolve_clip_name("laion/CLIP-ViT-B-32-laion2B-s34B-b79K") == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    with pytest.raises(ValueError, match="CUDA"):
        load_clip(clip_dir, dtype="float16")
    with pytest.raises(ValueError, match="unknown CLIP dtype"):
        load_clip(clip_dir, dtype="int8")


def test_bfloat16_runs_and_returns_float32_unit_embeddings(clip_dir):
    c = load_clip(clip_dir, dtype=torch.bfloat16)
    assert c.dtype == torch.bfloat16
    e = c.encode_images(torch.zeros(1, 3, 32, 32))
    t = c.encode_texts(["a photo"])
    assert e.dtype == t.dtype == torch.float32
    assert torch.allclose(e.norm(dim=-1), torch.ones(1), atol=1e-5)


def test_unknown_alias_lists_the_known_ones():
    with pytest.raises(ClipLoadError, match="known aliases: ViT-B/32, ViT-B/16"):
        load_clip("ViT-B/33")


def test_cached_hub_model_loads_offline_with_its_preprocessor_config(tmp_path, clip_dir):
    # Lay the tiny model out as the Hugging Face cache stores a download of "someone/tiny-clip".
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--someone--tiny-clip"
    (repo / "snapshots" / commit).mkdir(parents=True)
    for f in clip_dir.iterdir():
        shutil.copy(f, repo / "snapshots" / commit / f.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    c = load_clip("someone/tiny-clip", cache_dir=tmp_path / "cache")
    assert c.name == "someone/tiny-clip" and c.input_size == 32
    assert c.preprocessing.mean == pytest.approx(MEAN) and c.preprocessing.std == pytest.approx(STD)
    assert c.encode_texts(["a photo"]).shape == (1, 32)


# ----------------------------------------------------------------------------- broken directories: one line, no library output


@pytest.fixture
def dir_copy(clip_dir, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(clip_dir, d)
    return d


@pytest.fixture
def chatty_transformers():
    """transformers at its default verbosity (the test session runs it at 'error')."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    yield
    hf_logging.set_verbosity(level)


def _refused(path, capfd, match):
    capfd.readouterr()
    with pytest.raises(ClipLoadError) as err:
        load_clip(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    assert re.search(match, msg), msg
    out, errs = capfd.readouterr()
    assert out == "" and errs == "", (out + errs)[:500]
    return msg


def test_directory_without_config_is_refused_quietly(dir_copy, capfd, chatty_transformers):
    (dir_copy / "config.json").unlink()
    _refused(dir_copy, capfd, r"expected a CLIP model directory .*found no config.json \(contents: model.safetensors")


def test_directory_without_tokenizer_files_is_refused(dir_copy, capfd, chatty_transformers):
    (dir_copy / "tokenizer.json").unlink()
    _refused(dir_copy, capfd, r"no tokenizer files \(vocab.json\+merges.txt or tokenizer.json\)")


def test_directory_without_weights_or_with_another_model_is_refused(dir_copy, capfd, chatty_transformers):
    cfg = json.loads((dir_copy / "config.json").read_text())
    (dir_copy / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    _refused(dir_copy, capfd, r"config.json describes a 'bert' model")
    (dir_copy / "config.json").write_text(json.dumps(cfg))
    (dir_copy / "model.safetensors").unlink()
    _refused(dir_copy, capfd, r"found no weights")


def test_hf_cache_entry_and_openai_file_directories_get_a_hint(tmp_path, capfd):
    (tmp_path / "models--x--y" / "snapshots").mkdir(parents=True)
    (tmp_path / "models--x--y" / "refs").mkdir()
    _refused(tmp_path / "models--x--y", capfd, r"Hugging Face cache entry: pass one of its snapshots/<commit>")
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "ViT-B-32.pt").write_bytes(b"")
    _refused(tmp_path / "clip", capfd, r"passed as the file itself")


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.pop("text_model.final_layer_norm.bias"), r"lack 1 tensor\(s\) .* e\.g\. \[text_model.final_layer_norm.bias\]"),
    (lambda sd: sd.__setitem__("visual_projection.weight", torch.zeros(5, 32)), 
     r"1 tensor\(s\) have another shape, e\.g\. visual_projection.weight is \(5, 32\) in the weights, config.json needs \(32, 32\)"),
    (lambda sd: sd["vision_model.pre_layrnorm.weight"].__setitem__(3, float("nan")),
     r"weight 'vision_model.pre_layrnorm.weight' holds NaN or infinite values"),
    (lambda sd: sd["logit_scale"].fill_(float("inf")), r"weight 'logit_scale' holds NaN or infinite values"),
])
def test_directory_with_bad_weights_is_refused(dir_copy, capfd, chatty_transformers, edit, match):
    from safetensors.torch import load_file, save_file

    sd = load_file(str(dir_copy / "model.safetensors"))
    edit(sd)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(dir_copy / "model.safetensors"), metadata={"format": "pt"})
    _refused(dir_copy, capfd, match)


@pytest.mark.parametrize("change, match", [
    ({"size": {"shortest_edge": 10**6}}, r"size shortest_edge must be between 1 and 4096 pixels, found 1000000"),
    ({"size": 10**6}, r"size must be between 1 and 4096 pixels"),
    ({"crop_size": {"height": 10**6, "width": 32}}, r"crop_size height must be between 1 and 4096"),
    ({"crop_size": 0}, r"crop_size must be between 1 and 4096 pixels, found 0"),
    ({"size": {"shortest_edge": 32.5}}, r"must be a whole number of pixels, found 32.5"),
    ({"image_std": [0.2, float("nan"), 0.3]}, r"image_std must be finite positive numbers"),
    ({"image_std": [0.2, 0.0, 0.3]}, r"image_std must be finite positive numbers"),
    ({"image_std": [0.2, -0.1, 0.3]}, r"image_std must be finite positive numbers"),
    ({"image_mean": [0.5, float("inf"), 0.3]}, r"image_mean must be finite numbers"),
    ({"image_mean": "grey"}, r"image_mean must be a list of 3 numbers"),
    ({"crop_size": 16}, r"preprocessing produces \(16, 16\) pixels but the vision model expects 32x32"),
])
def test_preprocessor_config_is_validated_at_load(dir_copy, capfd, change, match):
    cfg = json.loads((dir_copy / "preprocessor_config.json").read_text())
    (dir_copy / "preprocessor_config.json").write_text(json.dumps({**cfg, **change}))
    msg = _refused(dir_copy, capfd, match)
    if "preprocessing produces" not in match:  # that check is the model's, the others name the file
        assert str(dir_copy / "preprocessor_config.json") in msg


def test_directory_weights_with_mismatched_shapes_print_nothing(dir_copy, capfd, chatty_transformers):
    cfg = json.loads((dir_copy / "config.json").read_text())
    cfg["text_config"]["num_hidden_layers"] = 3  # weights hold 2 layers: the library would invent the third
    (dir_copy / "config.json").write_text(json.dumps(cfg))
    _refused(dir_copy, capfd, r"lack \d+ tensor\(s\) that config.json describes, e\.g\. \[text_model.encoder.layers.2")
