"""CLIP models from Hugging Face ``transformers`` behind one small interface.

Images are preprocessed in torch (resize, centre crop, CLIP mean/std) rather than by the
library's PIL/NumPy image processor, so the embedding is differentiable with respect to
the generator's pixels. The steps and their parameters follow the model's own
``preprocessor_config.json``, so an image already at the input size gets exactly the
embedding that ``CLIPModel.get_image_features`` gives on the processor's output.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..imaging import resize as _resize
from .errors import ClipLoadError

__all__ = [
    "CLIP_ALIASES",
    "ClipLoadError",
    "ClipModel",
    "ImagePreprocessing",
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "clip_processor_config",
    "hub_offline",
    "load_clip",
    "resolve_clip_name",
]

# The reference implementation names models the way OpenAI's `clip` package does.
CLIP_ALIASES = {
    "ViT-B/32": "openai/clip-vit-base-patch32",
    "ViT-B/16": "openai/clip-vit-base-patch16",
    "ViT-L/14": "openai/clip-vit-large-patch14",
    "ViT-L/14@336px": "openai/clip-vit-large-patch14-336",
}

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# the largest resize or crop side a preprocessor_config.json may ask for (ViT-L/14@336px uses 336)
MAX_IMAGE_SIDE = 4096


def resolve_clip_name(name: str) -> str:
    """Map a reference-style alias (``ViT-B/32``) to its hub id and a name a plug-in registered
    (the built-in world's ``toyworld-clip-p16``) to its directory; other names pass through."""
    name = name.strip()
    if name in CLIP_ALIASES:
        return CLIP_ALIASES[name]
    from .. import plugins

    path = plugins.clip_path(name)
    return str(path) if path is not None else name


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (:func:`nada.network.hub_offline`:
    ``NADA_OFFLINE`` or the hub's own switches)."""
    from ..network import hub_offline as offline

    return offline()


@dataclass(frozen=True)
class ImagePreprocessing:
    """CLIP's image pipeline, in torch: resize, centre crop, [0, 1] range, mean/std.

    ``shortest_edge`` resizes so the shorter side has that length (aspect kept, the longer
    side truncated to an integer as the library does); ``resize_hw`` resizes to an exact
    (height, width) instead. Resampling is bicubic with antialiasing, torch's counterpart
    of PIL's bicubic filter that the library uses.
    """

    crop_hw: tuple[int, int]
    shortest_edge: int | None = None
    resize_hw: tuple[int, int] | None = None
    do_resize: bool = True
    do_center_crop: bool = True
    do_normalize: bool = True
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD

    @classmethod
    def default(cls, image_size: int) -> "ImagePreprocessing":
        return cls(crop_hw=(image_size, image_size), shortest_edge=image_size)

    @classmethod
    def from_processor_config(
        cls, cfg: dict[str, Any], image_size: int, where: str = "preprocessor_config.json"
    ) -> "ImagePreprocessing":
        """Read the fields of a ``preprocessor_config.json``; absent fields take CLIP's defaults.

        Sizes must be whole numbers from 1 to :data:`MAX_IMAGE_SIDE`, the means finite and the
        standard deviations finite and positive; anything else is one :class:`ClipLoadError`
        line that starts with ``where``.
        """

        def side(value: Any, what: str) -> int:
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value != int(value)):
                raise ClipLoadError(f"{where}: {what} must be a whole number of pixels, found {value!r}")
            if not 1 <= int(value) <= MAX_IMAGE_SIDE:
                raise ClipLoadError(
                    f"{where}: {what} must be between 1 and {MAX_IMAGE_SIDE} pixels, found {int(value)}"
                )
            return int(value)

        def hw(value: Any, what: str) -> tuple[int, int]:
            if isinstance(value, dict) and "height" in value and "width" in value:
                return (side(value["height"], f"{what} height"), side(value["width"], f"{what} width"))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return (side(value, what), side(value, what))
            raise ClipLoadError(f"{where}: cannot read {what}={value!r}")

        size = cfg.get("size", image_size)
        shortest = resize_hw = None
        # An int size meant "shortest edge" in CLIP's original feature extractor.
        if isinstance(size, (int, float)) and not isinstance(size, bool):
            shortest = side(size, "size")
        elif isinstance(size, dict) and "shortest_edge" in size:
            shortest = side(size["shortest_edge"], "size shortest_edge")
        else:
            resize_hw = hw(size, "size")
        crop = hw(cfg.get("crop_size", image_size), "crop_size")
        mean = _floats(cfg.get("image_mean", OPENAI_CLIP_MEAN), "image_mean", where)
        std = _floats(cfg.get("image_std", OPENAI_CLIP_STD), "image_std", where)
        if len(mean) != 3 or len(std) != 3:
            raise ClipLoadError(f"{where}: need 3 means and 3 positive stds, got {mean} / {std}")
        if not all(math.isfinite(v) for v in mean):
            raise ClipLoadError(f"{where}: image_mean must be finite numbers, found {list(mean)}")
        if not all(math.isfinite(v) and v > 0 for v in std):
            raise ClipLoadError(f"{where}: image_std must be finite positive numbers, found {list(std)}")
        return cls(
            crop_hw=crop,
            shortest_edge=shortest,
            resize_hw=resize_hw,
            do_resize=bool(cfg.get("do_resize", True)),
            do_center_crop=bool(cfg.get("do_center_crop", True)),
            do_normalize=bool(cfg.get("do_normalize", True)),
            mean=mean,  # type: ignore[arg-type]
            std=std,  # type: ignore[arg-type]
        )

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        """Size of the pixel values produced for an input of ``height`` x ``width``."""
        if self.do_center_crop:
            return self.crop_hw
        return self._resized_hw(height, width)

    def _resized_hw(self, height: int, width: int) -> tuple[int, int]:
        if not self.do_resize:
            return (height, width)
        if self.resize_hw is not None:
            return self.resize_hw
        assert self.shortest_edge is not None
        s = self.shortest_edge
        if height <= width:
            return (s, int(s * width / height))
        return (int(s * height / width), s)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 3, h, w) CLIP pixel values (float32, differentiable)."""
        x = (images.float() + 1.0) * 0.5  # the processor's rescale: pixels in [0, 1]
        h, w = x.shape[-2:]
        rh, rw = self._resized_hw(h, w)
        if (rh, rw) != (h, w):
            x = _resize(x, (rh, rw), antialias=True)
        if self.do_center_crop:
            x = _center_crop(x, self.crop_hw)
        if self.do_normalize:
            mean = x.new_tensor(self.mean).view(1, 3, 1, 1)
            std = x.new_tensor(self.std).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x


def _floats(value: Any, what: str, where: str) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) for v in value):
        raise ClipLoadError(f"{where}: {what} must be a list of 3 numbers, found {value!r}")
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ClipLoadError(f"{where}: {what} must be a list of 3 numbers, found {value!r}") from exc


def clip_processor_config(image_size: int, image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
                          image_std: Sequence[float] = OPENAI_CLIP_STD) -> dict:
    """``preprocessor_config.json`` of a CLIP with square input ``image_size``: resize, centre crop, mean/std."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [float(v) for v in image_mean],
        "image_std": [float(v) for v in image_std],
        "do_convert_rgb": True,
    }


def _center_crop(x: torch.Tensor, crop_hw: tuple[int, int]) -> torch.Tensor:
    """Crop the centre (offsets rounded down, as the library does); zero-pad if too small."""
    ch, cw = crop_hw
    h, w = x.shape[-2:]
    if h < ch or w < cw:
        # The library pads with black (0 in [0, 1] space) around the image, centred.
        top, left = (max(ch - h, 0) + 1) // 2, (max(cw - w, 0) + 1) // 2
        x = F.pad(x, (left, max(cw - w, 0) - left, top, max(ch - h, 0) - top))
        h, w = x.shape[-2:]
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top : top + ch, left : left + cw]


def _embedding(out: Any) -> torch.Tensor:
    """Projected features from ``get_*_features``: a tensor in transformers 4.x, a ModelOutput in 5.x."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"unexpected CLIP feature output of type {type(out).__name__}")


class ClipModel:
    """A frozen CLIP: differentiable ``encode_images`` and cached ``encode_texts``.

    Both return L2-normalised float32 embeddings, whatever dtype the model runs in.
    """

    def __init__(self, model: Any, tokenizer: Any = None, preprocessing: ImagePreprocessing | None = None, name: str = "clip"):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        vision = model.config.vision_config
        self.preprocessing = preprocessing or ImagePreprocessing.default(vision.image_size)
        if self.preprocessing.output_hw(vision.image_size, vision.image_size) != (vision.image_size, vision.image_size):
            raise ClipLoadError(
                f"{name}: preprocessing produces {self.preprocessing.output_hw(vision.image_size, vision.image_size)} "
                f"pixels but the vision model expects {vision.image_size}x{vision.image_size}"
            )
        model.eval()
        model.requires_grad_(False)
        self._text_cache: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"ClipModel({self.name!r}, input_size={self.input_size}, device={self.device}, dtype={self.dtype})"

    @property
    def input_size(self) -> int:
        return int(self.model.config.vision_config.image_size)

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def logit_scale(self) -> float:
        """The temperature CLIP was trained with, ``exp(logit_scale)``; 100 for OpenAI's models."""
        value = getattr(self.model, "logit_scale", None)
        return float(value.detach().float().exp()) if isinstance(value, torch.Tensor) else 100.0

    @property
    def num_vision_layers(self) -> int:
        return int(self.model.config.vision_config.num_hidden_layers)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | str | None = None) -> "ClipModel":
        dev = torch.device(device) if device is not None else self.device
        dt = _resolve_dtype(dtype, dev) if dtype is not None else self.dtype
        self.model.to(device=dev, dtype=dt)
        self._text_cache.clear()
        return self

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        return self.preprocessing(images.to(self.device)).to(self.dtype)

    def encode_images(self, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1], any size -> (N, D) unit embeddings; gradients reach ``images``.

        ``batch_size`` pushes the images through in pieces of that many (bounded memory; the
        result is the same as one pass).
        """
        if batch_size is not None and len(images) > batch_size:
            return torch.cat([self.encode_images(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
        out = self.model.get_image_features(pixel_values=self.preprocess(images))
        return F.normalize(_embedding(out).float(), dim=-1)

    def encode_images_with_hidden(
        self, images: torch.Tensor, layers: Sequence[int]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Embeddings plus the vision tower's hidden states at ``layers``.

        Index 0 is the token embedding, index ``i`` the output of encoder layer ``i``;
        negative indices count from the last layer. Each hidden state is (N, T, C) float32,
        class token first.
        """
        n_states = self.num_vision_layers + 1
        for i in layers:
            if not -n_states <= i < n_states:
                raise ValueError(f"{self.name}: hidden layer {i} out of range for a {self.num_vision_layers}-layer vision tower")
        out = self.model.vision_model(pixel_values=self.preprocess(images), output_hidden_states=True)
        emb = self.model.visual_projection(out.pooler_output)
        hidden = [out.hidden_states[i].float() for i in layers]
        return F.normalize(emb.float(), dim=-1), hidden

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` that this CLIP's tokenizer reads as its unknown token (in order, once each).

        Byte-level BPE tokenizers (the real CLIPs) have none; a word-level one, like the
        built-in CLIPs', maps every word outside its vocabulary to one unknown token, so two
        texts that differ only in such words embed identically.
        """
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if self.tokenizer is None or unk is None:
            return []
        try:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            pieces = [text[a:b] for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]) if i == unk]
        except (NotImplementedError, TypeError, ValueError, KeyError):  # slow tokenizers give no offsets
            pieces = [w for w in text.split() if unk in self.tokenizer(w, add_special_tokens=False)["input_ids"]]
        return list(dict.fromkeys(pieces))

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), D) unit embeddings, computed once per distinct string and cached."""
        if isinstance(texts, str):
            texts = [texts]
        if len(texts) == 0:
            raise ValueError(f"{self.name}: encode_texts needs at least one text")
        if self.tokenizer is None:
            raise ValueError(f"{self.name}: this CLIP was built without a tokenizer, so it cannot encode text")
        missing = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if missing:
            max_len = int(self.model.config.text_config.max_position_embeddings)
            tok_max = getattr(self.tokenizer, "model_max_length", max_len) or max_len
            batch = self.tokenizer(
                missing, padding=True, truncation=True, max_length=min(max_len, int(tok_max)), return_tensors="pt"
            )
            out = self.model.get_text_features(
                input_ids=batch["input_ids"].to(self.device), attention_mask=batch["attention_mask"].to(self.device)
            )
            emb = F.normalize(_embedding(out).float(), dim=-1)
            for text, e in zip(missing, emb):
                self._text_cache[text] = e
        return torch.stack([self._text_cache[t] for t in texts])


def _resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
                 "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
        if dtype.lower() not in names:
            raise ValueError(f"unknown CLIP dtype {dtype!r}; use float32, float16 or bfloat16")
        dtype = names[dtype.lower()]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"unsupported CLIP dtype {dtype}; use float32, float16 or bfloat16")
    if dtype == torch.float16 and device.type != "cuda":
        raise ValueError("float16 CLIP needs a CUDA device; use float32 (or bfloat16) on CPU")
    return dtype


def _looks_like_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and not name.startswith((".", "~")) and not _looks_like_path(name)


def _looks_like_path(name: str) -> bool:
    """A name meant as a file or directory: never tried as a hub id.

    Hub ids have at most one '/', so two separators, a leading '/', '.' or '~', a backslash,
    a drive letter or a checkpoint file suffix mark a path.
    """
    from .openai_clip import OPENAI_FILE_SUFFIXES

    return (
        name.startswith(("/", ".", "~"))
        or "\\" in name
        or name.count("/") >= 2
        or bool(re.match(r"^[A-Za-z]:[\\/]", name))
        or name.lower().endswith(OPENAI_FILE_SUFFIXES)
    )


def _missing_model_message(name: str, repo: str, offline: bool, reason: str) -> str:
    where = "is not in the local Hugging Face cache and offline mode (NADA_OFFLINE or HF_HUB_OFFLINE) forbids downloading it" if offline else (
        "is not in the local Hugging Face cache and could not be downloaded"
    )
    alias = f" ({name})" if name != repo else ""
    openai = ""
    if name in CLIP_ALIASES:
        from .openai_clip import openai_clip_dir, openai_file_name

        openai = (f" OpenAI's own file for {name} would also do: put {openai_file_name(name)} (what clip.load('{name}') "
                  f"downloads) in {openai_clip_dir()} or pass its path.")
    return (
        f"CLIP model '{repo}'{alias} {where} [{reason}]. "
        f"On a machine with network run `hf download {repo}` (older huggingface_hub: `huggingface-cli download {repo}`) "
        f"and copy its cache directory (~/.cache/huggingface/hub, or $HF_HOME/hub) to this machine, "
        f"or save it there with CLIPModel.from_pretrained('{repo}').save_pretrained(DIR) plus the tokenizer and "
        f"preprocessor_config.json, and pass DIR instead of the name.{openai}"
    )


def _short_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' logging (load reports, warnings) while a CLIP loads; our errors say what matters."""
    from transformers.utils import logging as hf_logging

    # a per-tensor "Loading weights" bar for every model load drowns our own progress output
    hf_logging.disable_progress_bar()
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


_DIR_EXPECTED = (
    "expected a CLIP model directory (config.json, the weights model.safetensors or pytorch_model.bin, the tokenizer "
    "files vocab.json+merges.txt or tokenizer.json, optionally preprocessor_config.json)"
)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def _check_directory(path: Path) -> None:
    """Refuse, in one line, a directory that cannot hold a CLIP, before the library reads any of it."""
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError as exc:
        raise ClipLoadError(f"'{path}': cannot list the directory [{_short_reason(exc)}]") from exc
    shown = (", ".join(names[:6]) + (", ..." if len(names) > 6 else "")) if names else "it is empty"

    def has(name: str) -> bool:
        return (path / name).is_file()

    if not has("config.json"):
        hint = ""
        if {"snapshots", "refs"} <= set(names):
            hint = "; this looks like a Hugging Face cache entry: pass one of its snapshots/<commit> directories"
        elif any(n.lower().endswith((".pt", ".pth")) for n in names):
            hint = "; an OpenAI CLIP file (.pt) is passed as the file itself, not its directory"
        raise ClipLoadError(f"'{path}': {_DIR_EXPECTED}; found no config.json (contents: {shown}){hint}")
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClipLoadError(f"'{path}': {_DIR_EXPECTED}; config.json is not readable JSON [{_short_reason(exc)}]") from exc
    if not isinstance(cfg, dict):
        raise ClipLoadError(f"'{path}': {_DIR_EXPECTED}; config.json holds a {type(cfg).__name__}, not an object")
    if cfg.get("model_type", "clip") != "clip":
        raise ClipLoadError(f"'{path}': {_DIR_EXPECTED}; config.json describes a '{cfg.get('model_type')}' model, not 'clip'")
    if not any(has(n) for n in _WEIGHT_FILES):
        raise ClipLoadError(f"'{path}': {_DIR_EXPECTED}; found no weights (model.safetensors or pytorch_model.bin) (contents: {shown})")
    if not (has("tokenizer.json") or (has("vocab.json") and has("merges.txt"))):
        raise ClipLoadError(
            f"'{path}': {_DIR_EXPECTED}; found no tokenizer files (vocab.json+merges.txt or tokenizer.json) (contents: {shown})"
        )


def _check_loading_info(info: dict, source: str) -> None:
    """Strict loading: the library fills missing tensors with random values and skips mismatched ones."""
    mismatched = list(info.get("mismatched_keys") or [])
    missing = sorted(info.get("missing_keys") or [])
    errors = list(info.get("error_msgs") or [])
    if mismatched:
        first = sorted(mismatched, key=str)[0]
        if isinstance(first, (tuple, list)) and len(first) == 3:  # (name, shape in the file, shape config.json needs)
            desc = f"{first[0]} is {tuple(first[1])} in the weights, config.json needs {tuple(first[2])}"
        else:
            desc = str(first)
        raise ClipLoadError(
            f"'{source}': the weights do not fit config.json: {len(mismatched)} tensor(s) have another shape, e.g. {desc}"
        )
    if missing:
        more = ", ..." if len(missing) > 3 else ""
        raise ClipLoadError(
            f"'{source}': the weights lack {len(missing)} tensor(s) that config.json describes, e.g. "
            f"[{', '.join(missing[:3])}{more}] (the library would fill them with random values)"
        )
    if errors:
        raise ClipLoadError(f"'{source}': the weights could not be loaded [{' '.join(str(errors[0]).split())[:200]}]")


def _check_finite(model: Any, where: str) -> None:
    for key, t in model.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ClipLoadError(f"'{where}': weight '{key}' holds NaN or infinite values; the model files are damaged")


def _load_parts(source: str, local_only: bool, cache_dir: str | None) -> tuple[Any, Any, dict | None, str]:
    from transformers import AutoTokenizer, CLIPModel

    kwargs: dict[str, Any] = {"local_files_only": local_only}
    if cache_dir is not None:
        kwargs["cache_dir"] = cache_dir
    with _quiet_transformers():
        model, info = CLIPModel.from_pretrained(source, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
        _check_loading_info(info, source)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    cfg, where = _read_processor_config(source, local_only, cache_dir)
    return model, tokenizer, cfg, where


def _read_processor_config(source: str, local_only: bool, cache_dir: str | None) -> tuple[dict | None, str]:
    path = Path(source) / "preprocessor_config.json"
    if not Path(source).is_dir():
        try:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(source, "preprocessor_config.json", cache_dir=cache_dir, local_files_only=local_only))
        except Exception:
            return None, str(path)  # optional: CLIP's defaults apply
    if not path.is_file():
        return None, str(path)
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClipLoadError(f"cannot read {path}: {_short_reason(exc)}") from exc
    if not isinstance(cfg, dict):
        raise ClipLoadError(f"{path} is not a JSON object")
    return cfg, str(path)


def _locate(name: str) -> tuple[str, str]:
    """Where a CLIP name points: ``("file", path)``, ``("dir", path)`` or ``("hub", repo id)``.

    Reference aliases (``ViT-B/32``) prefer OpenAI's cached file (``~/.cache/clip/ViT-B-32.pt``,
    or ``$NADA_OPENAI_CLIP_DIR``) over the hub; built-in names are package directories; an
    existing file or directory is never taken for a hub id, and a name that looks like a path
    but does not exist is refused here rather than sent to the hub.
    """
    from .openai_clip import OPENAI_RESNET_NAMES, openai_cached_file, openai_clip_dir

    if not name:
        raise ClipLoadError("empty CLIP name; give an alias (ViT-B/32), a hub id, a directory or an OpenAI CLIP file")
    if name in CLIP_ALIASES:
        cached = openai_cached_file(name)
        return ("file", str(cached)) if cached is not None else ("hub", CLIP_ALIASES[name])
    if name in OPENAI_RESNET_NAMES:
        raise ClipLoadError(
            f"CLIP '{name}' is one of OpenAI's ResNet CLIPs, which transformers.CLIPModel cannot represent; "
            f"use a ViT CLIP ({', '.join(CLIP_ALIASES)})"
        )
    from .. import plugins

    registered = plugins.clip_path(name)
    if registered is not None:
        return ("dir" if registered.is_dir() else "file"), str(registered)
    path = Path(name).expanduser()
    if path.is_dir():
        return "dir", str(path)
    if path.is_file():
        return "file", str(path)
    if path.exists():
        raise ClipLoadError(f"'{path}': expected a CLIP model directory or an OpenAI CLIP file; found something that is neither")
    if _looks_like_path(name):
        if "/" not in name and "\\" not in name:  # a bare file name: OpenAI's cache directory is tried too
            cached = openai_clip_dir() / name
            if cached.is_file():
                return "file", str(cached)
        raise ClipLoadError(
            f"CLIP file or directory '{path}' does not exist (no such file or directory); give an existing OpenAI CLIP file "
            f"or model directory, an alias ({', '.join(CLIP_ALIASES)}) or a hub id like 'owner/name'"
        )
    if name.startswith("ViT-"):
        raise ClipLoadError(
            f"unknown CLIP alias '{name}'; known aliases: {', '.join(CLIP_ALIASES)} (or give a hub id, a directory or an OpenAI CLIP file)"
        )
    if not _looks_like_hub_id(name):
        raise ClipLoadError(
            f"CLIP model directory '{name}' does not exist (and it is not a hub id like 'owner/name', an alias or an OpenAI CLIP file)"
        )
    return "hub", name


def _load_openai_file(path: str) -> tuple[Any, Any, ImagePreprocessing]:
    from .openai_clip import OPENAI_VOCAB_SIZE, build_openai_clip, openai_tokenizer, read_openai_clip_file

    with _quiet_transformers():
        tensors = read_openai_clip_file(path)
        model = build_openai_clip(tensors, where=path)
        del tensors
        text = model.config.text_config
        # OpenAI's tokenizer fits only a model with its vocabulary; a smaller (test) model gets ids directly
        tokenizer = openai_tokenizer(int(text.max_position_embeddings)) if text.vocab_size == OPENAI_VOCAB_SIZE else None
    return model, tokenizer, ImagePreprocessing.default(int(model.config.vision_config.image_size))


def load_clip(
    name_or_path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> ClipModel:
    """Load a frozen CLIP by hub id, reference alias (``ViT-B/32``), local directory or OpenAI CLIP file.

    * An OpenAI ``clip`` file (``ViT-B-32.pt``: TorchScript archive or state dict) is read
      without running any of its code and converted to ``transformers.CLIPModel``
      (:mod:`nada.guidance.openai_clip`); an alias loads OpenAI's cached file
      ``~/.cache/clip/ViT-B-32.pt`` when it is there (``$NADA_OPENAI_CLIP_DIR`` overrides the
      directory).
    * A directory must hold config.json, the weights and the tokenizer files; it is checked
      before the library reads it.
    * Otherwise the name is a hub id: the local cache is tried first, so a cached model never
      touches the network; the hub is contacted only when the model is missing and
      ``HF_HUB_OFFLINE`` is not set.

    Any failure raises one single-line :class:`ClipLoadError` that says what was expected,
    what was found and, for hub models, what to download and how. ``dtype`` may be float16
    on CUDA only.
    """
    name = str(name_or_path).strip()
    dev = torch.device(device)
    dt = _resolve_dtype(dtype, dev)
    cache = str(cache_dir) if cache_dir is not None else None
    kind, source = _locate(name)

    if kind == "file":
        model, tokenizer, pre = _load_openai_file(source)
    else:
        if kind == "dir":
            _check_directory(Path(source))
            try:
                model, tokenizer, proc_cfg, proc_where = _load_parts(source, True, cache)
            except ClipLoadError:
                raise
            except Exception as exc:
                raise ClipLoadError(f"'{source}': {_DIR_EXPECTED}; the library could not load it [{_short_reason(exc)}]") from exc
        else:
            repo = source
            offline = hub_offline()
            try:
                model, tokenizer, proc_cfg, proc_where = _load_parts(repo, True, cache)
            except ClipLoadError:
                raise
            except Exception as exc:
                if offline:
                    raise ClipLoadError(_missing_model_message(name, repo, True, _short_reason(exc))) from exc
                try:
                    model, tokenizer, proc_cfg, proc_where = _load_parts(repo, False, cache)
                except ClipLoadError:
                    raise
                except Exception as exc2:
                    raise ClipLoadError(_missing_model_message(name, repo, False, _short_reason(exc2))) from exc2
        _check_finite(model, source)
        image_size = int(model.config.vision_config.image_size)
        pre = (ImagePreprocessing.from_processor_config(proc_cfg, image_size, where=proc_where) if proc_cfg
               else ImagePreprocessing.default(image_size))
    model.to(device=dev, dtype=dt)
    return ClipModel(model, tokenizer, pre, name=name)
