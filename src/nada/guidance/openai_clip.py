"""OpenAI ``clip`` files (``~/.cache/clip/ViT-B-32.pt``, ...) as ``transformers`` CLIP models.

OpenAI's ``clip`` package, which every StyleGAN-NADA-era tool loads CLIP through, keeps its
models as TorchScript archives (the default download) or plain ``torch.save`` state dicts.
Here their tensors are read without running any code from the file
(:func:`nada.generators.safe_torch.read_state_dict`; a ``.safetensors`` file through the
``safetensors`` library), the configuration is inferred from the tensor shapes the way
``clip.model.build_model`` infers it, and the weights are renamed to the layout of
``transformers.CLIPModel`` and loaded with strict semantics: every tensor used, none missing,
every shape checked first.

Only the vision-transformer CLIPs (ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px) can be
represented by ``transformers.CLIPModel``; the ResNet ones (RN50, ...) are refused.

The tokenizer is OpenAI's byte-level BPE, built from ``bpe_simple_vocab_16e6.txt.gz`` (vendored
in ``assets/``, MIT licence) exactly as ``clip.simple_tokenizer.SimpleTokenizer`` builds its
vocabulary, as a ``transformers.CLIPTokenizer``.
"""
from __future__ import annotations

import functools
import gzip
import html
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import ClipLoadError

__all__ = [
    "OPENAI_CLIP_DIR_ENV",
    "OPENAI_FILE_NAMES",
    "OPENAI_FILE_SUFFIXES",
    "OPENAI_RESNET_NAMES",
    "OPENAI_VOCAB_SIZE",
    "bpe_vocabulary",
    "build_openai_clip",
    "describe_tensors",
    "openai_cached_file",
    "openai_clip_config",
    "openai_clip_dir",
    "openai_file_name",
    "openai_to_hf_state_dict",
    "openai_tokenizer",
    "read_openai_clip_file",
]

OPENAI_CLIP_DIR_ENV = "NADA_OPENAI_CLIP_DIR"
# file suffixes that make a name a path rather than a hub id or alias
OPENAI_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
# OpenAI's ResNet CLIPs: transformers.CLIPModel has no ResNet vision tower
OPENAI_RESNET_NAMES = ("RN50", "RN101", "RN50x4", "RN50x16", "RN50x64")

BPE_FILE = Path(__file__).with_name("assets") / "bpe_simple_vocab_16e6.txt.gz"
# OpenAI's SimpleTokenizer: 256 byte symbols, the same with "</w>", 48894 merges, two specials
N_MERGES = 49152 - 256 - 2
OPENAI_VOCAB_SIZE = 2 * 256 + N_MERGES + 2  # 49408
SOT, EOT = "<|startoftext|>", "<|endoftext|>"

# extra entries of a TorchScript archive's state dict that OpenAI's build_model deletes
_SCALAR_KEYS = ("input_resolution", "context_length", "vocab_size")
_EXPECTED = "expected an OpenAI CLIP file (TorchScript archive or state dict of a ViT CLIP, as saved by OpenAI's clip package)"
_MAX_SIDE = 4096  # largest input side accepted (ViT-L/14@336px has 336)

_BLOCK = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.")
# the causal mask OpenAI's blocks keep as a plain tensor attribute: in a TorchScript archive's
# module tree, not in a state dict; rebuilt by transformers, so only its shape is checked
_ATTN_MASK = re.compile(r"^(visual\.)?transformer\.resblocks\.\d+\.attn_mask$")


# ----------------------------------------------------------------------------- where files live


def openai_clip_dir() -> Path:
    """Where OpenAI's ``clip.load`` keeps its downloads: ``~/.cache/clip``, or ``$NADA_OPENAI_CLIP_DIR``."""
    env = os.environ.get(OPENAI_CLIP_DIR_ENV, "").strip()
    return Path(env).expanduser() if env else Path(os.path.expanduser("~/.cache/clip"))


# the names clip.load saves its downloads under (the last part of each URL in clip.clip._MODELS)
OPENAI_FILE_NAMES = {
    "ViT-B/32": "ViT-B-32.pt",
    "ViT-B/16": "ViT-B-16.pt",
    "ViT-L/14": "ViT-L-14.pt",
    "ViT-L/14@336px": "ViT-L-14-336px.pt",
}


def openai_file_name(alias: str) -> str:
    """``ViT-B/32`` -> ``ViT-B-32.pt``, ``ViT-L/14@336px`` -> ``ViT-L-14-336px.pt``: the name
    ``clip.load`` saves a model's download under."""
    return OPENAI_FILE_NAMES.get(alias) or alias.replace("/", "-").replace("@", "-") + ".pt"


def openai_cached_file(alias: str) -> Path | None:
    """OpenAI's cached file for ``alias`` if it is there, else None."""
    path = openai_clip_dir() / openai_file_name(alias)
    return path if path.is_file() else None


# ----------------------------------------------------------------------------- reading tensors


def read_openai_clip_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an OpenAI CLIP file by their ``state_dict`` names, without running its code.

    TorchScript archives and ``torch.save`` files go through nada's restricted reader, which
    never unpickles anything but tensors and plain containers and never reads the archive's
    ``code/``; a ``.safetensors`` file through ``safetensors``. Any failure is one
    :class:`ClipLoadError` line.
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file

            tensors = load_file(str(path), device="cpu")
        except Exception as exc:
            raise ClipLoadError(f"{path}: {_EXPECTED}; cannot read it as safetensors [{_short(exc)}]") from exc
        return dict(tensors)
    try:
        from ..generators.safe_torch import read_state_dict
    except ImportError as exc:  # pragma: no cover - only before the reader exists
        raise ClipLoadError(f"{path}: reading OpenAI CLIP files needs nada.generators.safe_torch, missing from this build") from exc
    from ..generators.errors import CheckpointError

    try:
        tensors = read_state_dict(path, allow_script=True)
    except CheckpointError as exc:
        msg = _short(exc, with_type=False)
        msg = msg[len(f"{path}: "):] if msg.startswith(f"{path}: ") else msg  # the reader names the path too
        if re.search(r"\b[gG]_ema\b", msg):
            msg += " (a StyleGAN2 checkpoint, not a CLIP)"
        raise ClipLoadError(f"{path}: {_EXPECTED}; {msg}") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise ClipLoadError(f"{path}: {_EXPECTED}; cannot read it [{_short(exc)}]") from exc
    if not isinstance(tensors, Mapping):  # pragma: no cover - the reader's contract
        raise ClipLoadError(f"{path}: {_EXPECTED}; found a {type(tensors).__name__}")
    return dict(tensors)


def describe_tensors(sd: Mapping[str, Any]) -> str:
    """What a state dict that is not an OpenAI ViT CLIP looks like, in a few words."""
    keys = list(sd)
    if not keys:
        return "no tensors"
    if any(k.startswith("visual.layer1.") for k in keys):
        return "a ResNet CLIP (RN50-style, visual.layer1.*), which transformers.CLIPModel cannot represent; use a ViT CLIP"
    if any(k.startswith(("text_model.", "vision_model.")) for k in keys):
        return ("the weights of a transformers CLIPModel (text_model.*/vision_model.*); pass the directory that holds "
                "them with config.json and the tokenizer files instead")
    stylegan = ("g_ema.", "g.", "generator.", "synthesis.", "mapping.", "style.", "convs.", "to_rgbs.", "G_ema.", "D.", "d.")
    if any(k.startswith(stylegan) for k in keys) or "latent_avg" in keys:
        return f"a StyleGAN2 generator or GAN checkpoint ({len(keys)} tensors, keys like {_sample(keys)})"
    return f"{len(keys)} tensors with keys like {_sample(keys)}"


def _sample(keys: list[str], n: int = 4) -> str:
    shown = ", ".join(keys[:n])
    return f"[{shown}{', ...' if len(keys) > n else ''}]"


def _short(exc: BaseException, with_type: bool = True) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if with_type else text


# ----------------------------------------------------------------------------- configuration


def _block_indices(sd: Mapping[str, Any], visual: bool) -> list[int]:
    found = set()
    for k in sd:
        m = _BLOCK.match(k)
        if m and bool(m.group(1)) == visual:
            found.add(int(m.group(2)))
    return sorted(found)


def _shape(sd: Mapping[str, torch.Tensor], key: str, ndim: int, where: str) -> tuple[int, ...]:
    t = sd[key]
    if not isinstance(t, torch.Tensor) or t.ndim != ndim:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ClipLoadError(f"{where}: {_EXPECTED}; tensor '{key}' should have {ndim} dimensions, found {got}")
    return tuple(t.shape)


def _heads(width: int, what: str, where: str) -> int:
    heads = width // 64  # OpenAI's rule (build_model): 64-wide attention heads
    if heads < 1 or width % heads:
        raise ClipLoadError(
            f"{where}: {_EXPECTED}; the {what} width {width} does not split into OpenAI's 64-wide attention heads "
            f"(width // 64 = {heads} heads)"
        )
    return heads


def openai_clip_config(sd: Mapping[str, torch.Tensor], where: str = "CLIP file") -> Any:
    """A ``transformers.CLIPConfig`` for an OpenAI ViT CLIP state dict, inferred from its shapes.

    The inference is ``clip.model.build_model``'s: vision width, patch size and grid from
    ``visual.conv1.weight`` and ``visual.positional_embedding``, depth from the count of
    residual blocks, embedding size from ``text_projection``, context length from
    ``positional_embedding``, vocabulary from ``token_embedding.weight``, text width from
    ``ln_final.weight``, ``width // 64`` heads, 4x MLPs, quick-GELU and layer-norm eps 1e-5.
    The end-of-text token is the vocabulary's last id, so the text tower pools at the first
    end-of-text token, as OpenAI's argmax over the ids does.
    """
    from transformers import CLIPConfig

    if any(k.startswith("visual.layer1.") for k in sd) or "visual.attnpool.positional_embedding" in sd:
        raise ClipLoadError(f"{where}: {_EXPECTED}; found {describe_tensors(sd)}")
    needed = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj", "token_embedding.weight",
              "positional_embedding", "text_projection", "ln_final.weight")
    missing = [k for k in needed if k not in sd]
    if missing:
        head = f"found {describe_tensors(sd)}" if len(missing) == len(needed) else (
            f"missing {', '.join(repr(k) for k in missing)} (found {describe_tensors(sd)})"
        )
        raise ClipLoadError(f"{where}: {_EXPECTED}; {head}")

    width, in_ch, ph, pw = _shape(sd, "visual.conv1.weight", 4, where)
    if in_ch != 3 or ph != pw or ph < 1:
        raise ClipLoadError(f"{where}: {_EXPECTED}; 'visual.conv1.weight' should be (width, 3, p, p), found {(width, in_ch, ph, pw)}")
    n_pos, _ = _shape(sd, "visual.positional_embedding", 2, where)
    grid = math.isqrt(max(n_pos - 1, 0))
    if grid < 1 or grid * grid + 1 != n_pos:
        raise ClipLoadError(
            f"{where}: {_EXPECTED}; 'visual.positional_embedding' has {n_pos} rows, not a square grid of patches plus the class token"
        )
    image_size = ph * grid
    if image_size > _MAX_SIDE:
        raise ClipLoadError(f"{where}: {_EXPECTED}; the shapes give an input size of {image_size} pixels (at most {_MAX_SIDE})")
    embed_dim = _shape(sd, "text_projection", 2, where)[1]
    context, _ = _shape(sd, "positional_embedding", 2, where)
    vocab, _ = _shape(sd, "token_embedding.weight", 2, where)
    text_width = _shape(sd, "ln_final.weight", 1, where)[0]
    if vocab < 2 or context < 1:
        raise ClipLoadError(f"{where}: {_EXPECTED}; found a vocabulary of {vocab} and a context of {context} tokens")
    layers = {}
    for visual, what in ((True, "vision"), (False, "text")):
        idx = _block_indices(sd, visual)
        if not idx or idx != list(range(len(idx))):
            raise ClipLoadError(
                f"{where}: {_EXPECTED}; the {what} transformer's residual blocks should be numbered 0..N-1, found {idx or 'none'}"
            )
        layers[what] = len(idx)
    v_heads = _heads(width, "vision", where)
    t_heads = _heads(text_width, "text", where)
    logit_scale = sd.get("logit_scale")
    scale = float(logit_scale.float()) if isinstance(logit_scale, torch.Tensor) and logit_scale.numel() == 1 else math.log(100.0)
    if not math.isfinite(scale):
        raise ClipLoadError(f"{where}: tensor 'logit_scale' is not finite ({scale})")
    common = dict(hidden_act="quick_gelu", layer_norm_eps=1e-5, attention_dropout=0.0, projection_dim=embed_dim)
    eos, bos = vocab - 1, vocab - 2  # OpenAI's vocabularies end with <|startoftext|>, <|endoftext|>
    return CLIPConfig(
        text_config=dict(
            vocab_size=vocab, hidden_size=text_width, intermediate_size=4 * text_width,
            num_hidden_layers=layers["text"], num_attention_heads=t_heads, max_position_embeddings=context,
            bos_token_id=bos, eos_token_id=eos, pad_token_id=eos, **common,
        ),
        vision_config=dict(
            hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers["vision"],
            num_attention_heads=v_heads, image_size=image_size, patch_size=ph, num_channels=3, **common,
        ),
        projection_dim=embed_dim,
        logit_scale_init_value=scale,
    )


def _expected_openai_shapes(cfg: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor of OpenAI's ViT CLIP with its shape, for ``cfg``."""
    v, t = cfg.vision_config, cfg.text_config
    shapes: dict[str, tuple[int, ...]] = {}

    def blocks(prefix: str, width: int, n: int) -> None:
        for i in range(n):
            b = f"{prefix}transformer.resblocks.{i}."
            shapes.update({
                b + "attn.in_proj_weight": (3 * width, width), b + "attn.in_proj_bias": (3 * width,),
                b + "attn.out_proj.weight": (width, width), b + "attn.out_proj.bias": (width,),
                b + "ln_1.weight": (width,), b + "ln_1.bias": (width,),
                b + "mlp.c_fc.weight": (4 * width, width), b + "mlp.c_fc.bias": (4 * width,),
                b + "mlp.c_proj.weight": (width, 4 * width), b + "mlp.c_proj.bias": (width,),
                b + "ln_2.weight": (width,), b + "ln_2.bias": (width,),
            })

    w, p, grid = v.hidden_size, v.patch_size, v.image_size // v.patch_size
    shapes.update({
        "visual.class_embedding": (w,), "visual.conv1.weight": (w, 3, p, p),
        "visual.positional_embedding": (grid * grid + 1, w),
        "visual.ln_pre.weight": (w,), "visual.ln_pre.bias": (w,),
        "visual.ln_post.weight": (w,), "visual.ln_post.bias": (w,),
        "visual.proj": (w, cfg.projection_dim),
    })
    blocks("visual.", w, v.num_hidden_layers)
    tw = t.hidden_size
    shapes.update({
        "token_embedding.weight": (t.vocab_size, tw), "positional_embedding": (t.max_position_embeddings, tw),
        "ln_final.weight": (tw,), "ln_final.bias": (tw,), "text_projection": (tw, cfg.projection_dim),
        "logit_scale": (),
    })
    blocks("", tw, t.num_hidden_layers)
    return shapes


def _check_tensors(sd: Mapping[str, Any], cfg: Any, where: str) -> None:
    """Strict ``load_state_dict`` semantics, before anything is built: nothing missing, nothing
    extra (but the scalars OpenAI's archives carry), every shape right, every value finite."""
    expected = _expected_openai_shapes(cfg)
    missing = [k for k in expected if k not in sd]
    extra = [k for k in sd if k not in expected and k not in _SCALAR_KEYS and not _ATTN_MASK.match(k)]
    if missing:
        raise ClipLoadError(
            f"{where}: {_EXPECTED}; {len(missing)} tensor(s) missing for the ViT CLIP its shapes describe, e.g. {_sample(missing, 3)}"
        )
    if extra:
        raise ClipLoadError(f"{where}: {_EXPECTED}; {len(extra)} unexpected tensor(s), e.g. {_sample(extra, 3)}")
    for k, shape in expected.items():
        t = sd[k]
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise ClipLoadError(f"{where}: {_EXPECTED}; tensor '{k}' should hold floating-point numbers, found {got}")
        if tuple(t.shape) != shape:
            raise ClipLoadError(f"{where}: {_EXPECTED}; tensor '{k}' has shape {tuple(t.shape)}, the ViT CLIP its shapes describe needs {shape}")
    implied = {"input_resolution": cfg.vision_config.image_size, "context_length": cfg.text_config.max_position_embeddings,
               "vocab_size": cfg.text_config.vocab_size}
    for k in _SCALAR_KEYS:
        if k in sd:
            t = sd[k]
            ok = isinstance(t, torch.Tensor) and t.numel() == 1 and float(t) == implied[k]
            if not ok:
                got = t.tolist() if isinstance(t, torch.Tensor) and t.numel() <= 4 else type(t).__name__
                raise ClipLoadError(f"{where}: {_EXPECTED}; '{k}' is {got} but the tensor shapes imply {implied[k]}")
    for k in sd:
        if _ATTN_MASK.match(k):
            _check_attn_mask(k, sd[k], cfg, where)
    for k in expected:
        if not bool(torch.isfinite(sd[k]).all()):
            raise ClipLoadError(f"{where}: tensor '{k}' holds NaN or infinite values; the file is damaged")


def _check_attn_mask(key: str, t: Any, cfg: Any, where: str) -> None:
    """A block's ``attn_mask`` (kept by TorchScript archives) must be what transformers applies anyway:
    the text tower's causal mask (0 on and below the diagonal, -inf or very negative above), and
    none (or all zeros) in the vision tower."""
    visual = key.startswith("visual.")
    v = cfg.vision_config
    n = (v.image_size // v.patch_size) ** 2 + 1 if visual else cfg.text_config.max_position_embeddings
    what = f"the vision tower's ({n}, {n}) zero mask" if visual else f"the text tower's ({n}, {n}) causal mask"
    if not isinstance(t, torch.Tensor) or tuple(t.shape) != (n, n) or not t.is_floating_point():
        got = f"shape {tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise ClipLoadError(f"{where}: {_EXPECTED}; '{key}' should be {what}, found {got}")
    t = t.detach().to(torch.float32)
    upper = torch.ones(n, n, dtype=torch.bool).triu(1)
    ok = bool((t == 0).all()) if visual else bool((t[~upper] == 0).all() and (t[upper] <= -1e4).all())
    if not ok:
        raise ClipLoadError(f"{where}: {_EXPECTED}; '{key}' is not {what}, which is all the converted model can apply")


# ----------------------------------------------------------------------------- conversion


def openai_to_hf_state_dict(sd: Mapping[str, torch.Tensor], cfg: Any) -> dict[str, torch.Tensor]:
    """Rename (and split/transpose) an OpenAI ViT CLIP state dict to ``transformers.CLIPModel``'s layout, float32."""
    out: dict[str, torch.Tensor] = {}

    def f(key: str) -> torch.Tensor:
        return sd[key].detach().to(torch.float32)

    def blocks(src: str, dst: str, n: int) -> None:
        for i in range(n):
            s, d = f"{src}transformer.resblocks.{i}.", f"{dst}encoder.layers.{i}."
            qw, kw, vw = f(s + "attn.in_proj_weight").chunk(3, dim=0)
            qb, kb, vb = f(s + "attn.in_proj_bias").chunk(3, dim=0)
            for name, w_, b_ in (("q_proj", qw, qb), ("k_proj", kw, kb), ("v_proj", vw, vb)):
                out[d + f"self_attn.{name}.weight"] = w_.contiguous()
                out[d + f"self_attn.{name}.bias"] = b_.contiguous()
            pairs = (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("mlp.c_fc", "mlp.fc1"),
                     ("mlp.c_proj", "mlp.fc2"), ("ln_2", "layer_norm2"))
            for a, b in pairs:
                out[d + b + ".weight"] = f(s + a + ".weight")
                out[d + b + ".bias"] = f(s + a + ".bias")

    out["vision_model.embeddings.class_embedding"] = f("visual.class_embedding")
    out["vision_model.embeddings.patch_embedding.weight"] = f("visual.conv1.weight")
    out["vision_model.embeddings.position_embedding.weight"] = f("visual.positional_embedding")
    for a, b in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                 ("ln_final", "text_model.final_layer_norm")):
        out[b + ".weight"] = f(a + ".weight")
        out[b + ".bias"] = f(a + ".bias")
    blocks("visual.", "vision_model.", cfg.vision_config.num_hidden_layers)
    out["text_model.embeddings.token_embedding.weight"] = f("token_embedding.weight")
    out["text_model.embeddings.position_embedding.weight"] = f("positional_embedding")
    blocks("", "text_model.", cfg.text_config.num_hidden_layers)
    out["visual_projection.weight"] = f("visual.proj").t().contiguous()
    out["text_projection.weight"] = f("text_projection").t().contiguous()
    out["logit_scale"] = f("logit_scale").reshape(())
    return out


def build_openai_clip(sd: Mapping[str, torch.Tensor], where: str = "CLIP file") -> Any:
    """A float32 ``transformers.CLIPModel`` holding an OpenAI ViT CLIP state dict's weights.

    Checked before anything is built (layout, shapes, finiteness), then loaded with
    ``load_state_dict(strict=True)``; the model is allocated without random initialisation.
    """
    from transformers import CLIPModel

    cfg = openai_clip_config(sd, where)
    _check_tensors(sd, cfg, where)
    hf = openai_to_hf_state_dict(sd, cfg)
    with torch.device("meta"):  # no memory and no random initialisation: every tensor comes from the file
        model = CLIPModel(cfg)
    try:
        model.load_state_dict(hf, strict=True, assign=True)
    except RuntimeError as exc:  # pragma: no cover - the checks above make this unreachable
        raise ClipLoadError(f"{where}: {_EXPECTED}; {_short(exc)}") from exc
    for name, buf in list(model.named_buffers()):
        if buf.is_meta:  # the non-persistent position ids, not part of any state dict
            if not name.endswith("position_ids"):  # pragma: no cover - a transformers version with other buffers
                raise ClipLoadError(f"{where}: transformers' CLIPModel has a buffer '{name}' this loader cannot fill")
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            owner.position_ids = torch.arange(buf.shape[-1]).expand((1, -1))
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:  # pragma: no cover - as above
        raise ClipLoadError(f"{where}: tensors left unfilled after loading: {_sample(left, 3)}")
    return model.eval()


# ----------------------------------------------------------------------------- tokenizer


@functools.lru_cache(maxsize=1)
def bpe_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """OpenAI's BPE vocabulary (49408 tokens) and merges, built as ``SimpleTokenizer`` builds them:
    the 256 byte symbols, the same with ``</w>``, one token per merge, ``<|startoftext|>``,
    ``<|endoftext|>``; the merges are lines 1..48894 of ``bpe_simple_vocab_16e6.txt.gz``."""
    try:
        lines = gzip.decompress(BPE_FILE.read_bytes()).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ClipLoadError(f"{BPE_FILE}: cannot read OpenAI's BPE vocabulary shipped with nada [{_short(exc)}]") from exc
    merges = [tuple(line.split()) for line in lines[1 : N_MERGES + 1]]
    if len(merges) != N_MERGES or any(len(m) != 2 for m in merges):
        raise ClipLoadError(f"{BPE_FILE}: expected {N_MERGES} BPE merges of two symbols each; the file is damaged")
    symbols = list(_bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [SOT, EOT]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != OPENAI_VOCAB_SIZE:
        raise ClipLoadError(f"{BPE_FILE}: expected {OPENAI_VOCAB_SIZE} distinct tokens, built {len(vocab)}; the file is damaged")
    return vocab, merges  # type: ignore[return-value]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table, in OpenAI's order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _clean(text: str) -> str:
    """OpenAI's ``basic_clean`` without ``ftfy``: HTML entities unescaped (twice, as OpenAI does), ends stripped."""
    return html.unescape(html.unescape(text)).strip()


@functools.lru_cache(maxsize=4)
def openai_tokenizer(context_length: int = 77) -> Any:
    """OpenAI CLIP's tokenizer as a ``transformers.CLIPTokenizer`` (built in memory, cached per process).

    Ids equal ``clip.tokenize``'s: ``<|startoftext|>`` = 49406, ``<|endoftext|>`` = 49407, HTML
    entities unescaped first as OpenAI does. OpenAI also repairs mojibake with ``ftfy``, which
    is not done here (the library normalises to NFC instead), so only broken encodings can
    tokenise differently. Padding uses ``<|endoftext|>``; the text tower pools at the first one.
    """
    from transformers import CLIPTokenizer

    class OpenAIClipTokenizer(CLIPTokenizer):
        def __call__(self, text: Any = None, *args: Any, **kwargs: Any) -> Any:
            if isinstance(text, str):
                text = _clean(text)
            elif isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
                text = [_clean(t) for t in text]
            return super().__call__(text, *args, **kwargs)

    vocab, merges = bpe_vocabulary()
    return OpenAIClipTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=int(context_length))
