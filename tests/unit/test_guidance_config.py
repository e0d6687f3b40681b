"""GuidanceConfig: YAML/JSON round trips, unknown keys, type and range errors; CLIP spec parsing."""
from __future__ import annotations

import pytest

from nada.guidance.config import GuidanceConfig
from nada.guidance.ensemble import parse_clip_spec
from nada.guidance.errors import GuidanceError


def _full_config() -> GuidanceConfig:
    return GuidanceConfig(
        clip=["ViT-B/32:1", "ViT-B/16:0.5"],
        source_text=None,
        target_text="a sketch",
        auto_source=True,
        source_candidates=["a photo", "a painting"],
        use_templates=False,
        templates=["a {} here."],
        lambda_direction=0.8,
        lambda_global=0.2,
        lambda_patch=0.1,
        lambda_angle=0.05,
        lambda_manifold=0.3,
        lambda_l2=1.5,
        learned_weights=True,
        clip_augment=4,
        patch_count=3,
        patch_size=0.25,
        texture_layers=[2, -1],
        seed=7,
    )


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_round_trip_through_files(tmp_path, suffix):
    cfg = _full_config()
    path = tmp_path / f"guidance{suffix}"
    cfg.save(path)
    again = GuidanceConfig.load(path)
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


def test_yaml_written_by_hand_is_coerced(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("clip: ViT-B/32\ntarget_text: sketch\nlambda_l2: 1\ntexture_layers: [1, 2]\n")
    cfg = GuidanceConfig.load(path)
    assert cfg.clip == ["ViT-B/32"] and cfg.lambda_l2 == 1.0 and isinstance(cfg.lambda_l2, float)
    cfg.check_ready()


def test_unknown_keys_are_named(tmp_path):
    with pytest.raises(GuidanceError, match=r"unknown guidance config key\(s\) 'lamda_l2', 'target'"):
        GuidanceConfig.from_dict({"target": "sketch", "lamda_l2": 1.0})
    path = tmp_path / "bad.json"
    path.write_text('{"clip_augmentation": 3}')
    with pytest.raises(GuidanceError, match="clip_augmentation"):
        GuidanceConfig.load(path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lambda_global": "a lot"}, "lambda_global must be a number"),
        ({"clip_augment": 2.5}, "clip_augment must be an integer"),
        ({"use_templates": "yes"}, "use_templates must be true/false"),
        ({"clip_augment": -1}, "clip_augment must be >= 0"),
        ({"lambda_l2": -0.1}, "lambda_l2 must be a finite number >= 0"),
        ({"lambda_direction": 0.0}, "every loss weight is 0"),
        ({"patch_size": 1.5}, "patch_size must be in"),
        ({"clip": []}, "at least one CLIP"),
        ({"clip": ["ViT-B/32:-1"]}, "weight must be a positive number"),
        ({"clip_dtype": "int8"}, "clip_dtype must be one of"),
        ({"templates": ["no placeholder"]}, "exactly one"),
        ({"target_text": "  "}, "target_text is empty"),
    ],
)
def test_bad_values_raise_one_line_errors(kwargs, message):
    with pytest.raises(GuidanceError, match=message) as err:
        GuidanceConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_check_ready():
    GuidanceConfig(target_text="sketch").check_ready()
    GuidanceConfig(target_image_dir="styles", source_text=None).check_ready()
    cases = [
        (GuidanceConfig(), "set target_text"),
        (GuidanceConfig(target_text="x", target_image_dir="d"), "not both"),
        (GuidanceConfig(target_text="x", source_text=None), "needs a source_text"),
        (GuidanceConfig(target_text="x", source_text=None, auto_source=True), "source_candidates"),
        (GuidanceConfig(target_text="x", lambda_texture=1.0), "style_images"),
    ]
    for cfg, message in cases:
        with pytest.raises(GuidanceError, match=message):
            cfg.check_ready()


def test_file_name_and_content_errors(tmp_path):
    with pytest.raises(GuidanceError, match=r"\.yaml, \.yml or \.json"):
        GuidanceConfig().save(tmp_path / "g.txt")
    with pytest.raises(GuidanceError, match="cannot read"):
        GuidanceConfig.load(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("clip: [unclosed\n")
    with pytest.raises(GuidanceError, match="not valid YAML"):
        GuidanceConfig.load(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(GuidanceError, match="must be a mapping"):
        GuidanceConfig.load(tmp_path / "list.yaml")


def test_parse_clip_spec():
    assert parse_clip_spec("ViT-B/32") == ("ViT-B/32", 1.0)
    assert parse_clip_spec("ViT-B/16:0.5") == ("ViT-B/16", 0.5)
    assert parse_clip_spec(" openai/clip-vit-base-patch32:2 ") == ("openai/clip-vit-base-patch32", 2.0)
    assert parse_clip_spec("ViT-L/14@336px") == ("ViT-L/14@336px", 1.0)
    assert parse_clip_spec("/models/my:clip") == ("/models/my:clip", 1.0)  # non-numeric suffix is part of the name
    for bad in ("", "ViT-B/32:0", "ViT-B/32:nan", "ViT-B/32:-2"):
        with pytest.raises(GuidanceError):
            parse_clip_spec(bad)
