"""OpenAI CLIP files: a tiny OpenAI-layout CLIP saved both ways (torch.save state dict and
TorchScript archive) loads into transformers' CLIPModel with the embeddings of a float64
reference forward written here from OpenAI's layout; the BPE tokenizer built from the
vendored vocabulary gives OpenAI's ids; names resolve to files; malformed files are refused
in one line."""
from __future__ import annotations

import gzip
import html
import math
import warnings
from collections import OrderedDict
from functools import lru_cache

import pytest
import regex
import torch
import torch.nn as nn
import torch.nn.functional as F

from nada.guidance.clip import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ClipLoadError, load_clip
from nada.guidance.ensemble import ClipEnsemble, parse_clip_spec
from nada.guidance.openai_clip import (
    BPE_FILE,
    OPENAI_VOCAB_SIZE,
    build_openai_clip,
    openai_tokenizer,
)

torch.set_num_threads(1)

VOCAB = 49408
CONTEXT = 16
SOT, EOT = 49406, 49407


# ----------------------------------------------------------------------------- a tiny OpenAI CLIP


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, attn_mask: torch.Tensor | None = None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(4 * width, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.attn_mask = attn_mask  # a plain tensor attribute, as in OpenAI's model

    def forward(self, x):
        mask = self.attn_mask.to(dtype=x.dtype) if self.attn_mask is not None else None
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, attn_mask: torch.Tensor | None = None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, resolution: int, patch: int, width: int, layers: int, out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width))
        self.positional_embedding = nn.Parameter(torch.randn((resolution // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, width // 64)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, out))

    def forward(self, x):
        x = self.conv1(x.to(self.conv1.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class TinyOpenAIClip(nn.Module):
    """OpenAI's ``clip.model.CLIP`` (ViT variant) in miniature: the same parameter names and semantics."""

    def __init__(self, vision_width=128, vision_layers=2, patch=8, resolution=32, width=128, layers=2,
                 embed_dim=24, context=CONTEXT, vocab=VOCAB):
        super().__init__()
        self.visual = VisionTransformer(resolution, patch, vision_width, vision_layers, embed_dim)
        mask = torch.full((context, context), float("-inf")).triu_(1)
        self.transformer = Transformer(width, layers, width // 64, attn_mask=mask)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.randn(context, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))
        # what OpenAI's TorchScript archives carry next to the weights (build_model deletes them)
        self.register_buffer("input_resolution", torch.tensor(resolution))
        self.register_buffer("context_length", torch.tensor(context))
        self.register_buffer("vocab_size", torch.tensor(vocab))

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image, text):
        return self.encode_image(image), self.encode_text(text)


def make_openai_clip(seed: int = 0, **kw) -> TinyOpenAIClip:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = TinyOpenAIClip(**kw)
        for name, p in m.named_parameters():
            if name == "logit_scale":
                continue
            if ".ln_" in name or name.startswith(("ln_", "visual.ln_")):
                p.data = (1.0 + 0.2 * torch.randn_like(p)) if name.endswith("weight") else 0.2 * torch.randn_like(p)
            elif name.endswith(("proj", "text_projection")):  # (in, out) matrices used as x @ W
                p.data = torch.randn_like(p) / math.sqrt(p.shape[0])
            elif p.ndim >= 2 and "embedding" not in name:  # Linear/conv weights (out, in, ...)
                p.data = torch.randn_like(p) / math.sqrt(p[0].numel())
            else:  # embeddings and biases
                p.data = 0.5 * torch.randn_like(p) if "embedding" in name else 0.1 * torch.randn_like(p)
    return m.eval()


def half_like_openai(sd: dict) -> dict:
    """OpenAI's convert_weights: matrices and projections in float16, layer norms and embeddings float32."""
    out = {}
    for k, v in sd.items():
        halve = v.is_floating_point() and (k.endswith(("in_proj_weight", "in_proj_bias", "proj", "text_projection"))
                                           or ".c_fc." in k or ".c_proj." in k or "out_proj" in k or k == "visual.conv1.weight")
        out[k] = v.half() if halve else v
    return out


# ----------------------------------------------------------------------------- reference forward, float64


def _ln(x, sd, key):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * sd[key + ".weight"] + sd[key + ".bias"]


def _block(x, sd, p, mask):
    n, length, d = x.shape
    heads = d // 64
    h = _ln(x, sd, p + "ln_1")
    w, b = sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"]
    q, k, v = (h @ w[i * d:(i + 1) * d].T + b[i * d:(i + 1) * d] for i in range(3))
    split = lambda t: t.reshape(n, length, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if mask is not None:
        scores = scores + mask
    att = torch.softmax(scores, dim=-1) @ v
    att = att.transpose(1, 2).reshape(n, length, d)
    x = x + att @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
    h = _ln(x, sd, p + "ln_2")
    h = h @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"]
    h = h * torch.sigmoid(1.702 * h)
    return x + h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]


def _layers(sd, prefix):
    return len({k.split(".")[len(prefix.split(".")) + 1] for k in sd if k.startswith(prefix + "transformer.resblocks.")})


def reference_image(sd, pixels):
    """OpenAI's VisionTransformer on normalised pixels, in float64 with plain matmuls."""
    sd = {k: v.double() for k, v in sd.items()}
    conv = sd["visual.conv1.weight"]
    width, _, p, _ = conv.shape
    x = pixels.double()
    n, _, hgt, wdt = x.shape
    g = hgt // p
    patches = x.reshape(n, 3, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(n, g * g, 3 * p * p)
    x = patches @ conv.reshape(width, -1).T
    x = torch.cat([sd["visual.class_embedding"].expand(n, 1, width), x], dim=1) + sd["visual.positional_embedding"]
    x = _ln(x, sd, "visual.ln_pre")
    for i in range(_layers(sd, "visual.")):
        x = _block(x, sd, f"visual.transformer.resblocks.{i}.", None)
    return _ln(x[:, 0], sd, "visual.ln_post") @ sd["visual.proj"]


def reference_text(sd, ids):
    """OpenAI's encode_text on (N, context) ids padded with 0, in float64; pooled at the argmax id (EOT)."""
    sd = {k: v.double() for k, v in sd.items()}
    length = ids.shape[1]
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][:length]
    mask = torch.full((length, length), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(_layers(sd, "")):
        x = _block(x, sd, f"transformer.resblocks.{i}.", mask)
    x = _ln(x, sd, "ln_final")
    return x[torch.arange(ids.shape[0]), ids.argmax(-1)] @ sd["text_projection"]


# ----------------------------------------------------------------------------- reference BPE (OpenAI's SimpleTokenizer)


@lru_cache(maxsize=1)
def _simple_tokenizer():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_encoder = dict(zip(bs, map(chr, cs)))
    merges = gzip.open(BPE_FILE).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(byte_encoder.values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return byte_encoder, dict(zip(vocab, range(len(vocab)))), dict(zip(merges, range(len(merges))))


def _bpe(token, ranks):
    word = tuple(token[:-1]) + (token[-1] + "</w>",)
    while len(word) > 1:
        pairs = {(a, b) for a, b in zip(word, word[1:])}
        best = min(pairs, key=lambda pr: ranks.get(pr, float("inf")))
        if best not in ranks:
            break
        out, i = [], 0
        while i < len(word):
            if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                out.append(word[i] + word[i + 1])
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = tuple(out)
    return word


def openai_ids(text: str) -> list[int]:
    """clip.tokenize's ids for ``text`` (without ftfy, which the texts here do not need)."""
    byte_encoder, encoder, ranks = _simple_tokenizer()
    text = " ".join(html.unescape(html.unescape(text)).strip().split()).lower()
    pat = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
    ids = []
    for tok in regex.findall(pat, text, regex.IGNORECASE):
        tok = "".join(byte_encoder[b] for b in tok.encode("utf-8"))
        ids.extend(encoder[t] for t in _bpe(tok, ranks))
    return [SOT] + ids + [EOT]


def padded(ids_list, length=CONTEXT):
    out = torch.zeros(len(ids_list), length, dtype=torch.long)  # clip.tokenize pads with 0
    for i, ids in enumerate(ids_list):
        out[i, : len(ids)] = torch.tensor(ids)
    return out


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def openai_model():
    return make_openai_clip(seed=1)


@pytest.fixture(scope="module")
def saved(openai_model, tmp_path_factory):
    """The tiny model saved as OpenAI's files are: a state dict (float16 weights, as convert_weights
    leaves them) and a TorchScript archive (traced, float32)."""
    d = tmp_path_factory.mktemp("openai-clip")
    sd16 = half_like_openai(openai_model.state_dict())
    torch.save(sd16, d / "ViT-T-8.pt")
    example = (torch.zeros(1, 3, 32, 32), padded([[SOT, 320, EOT]]))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation notices
        traced = torch.jit.trace(openai_model, example, check_trace=False)
        torch.jit.save(traced, str(d / "ViT-T-8-jit.pt"))
        # a scripted archive keeps the text blocks' attn_mask tensors in its module tree
        torch.jit.save(torch.jit.script(openai_model), str(d / "ViT-T-8-script.pt"))
    sd = openai_model.state_dict()
    return {"state_dict": (d / "ViT-T-8.pt", sd16), "torchscript": (d / "ViT-T-8-jit.pt", sd),
            "scripted": (d / "ViT-T-8-script.pt", sd)}


def _images(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


def _normalised(images):
    x = (images.double() + 1) / 2
    mean = torch.tensor(OPENAI_CLIP_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_CLIP_STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (x - mean) / std


TEXTS = ["a photo of a dog.", "a sketch", "an oil painting of a red church, at night!", "3 cats & 12 dogs"]


# ----------------------------------------------------------------------------- tests: the reference itself


def test_reference_forward_matches_the_openai_layout_module(openai_model):
    # the float64 reference agrees with nn.MultiheadAttention-based OpenAI code, so it reads the layout right
    m = make_openai_clip(seed=1).double()
    x = _normalised(_images())
    ids = padded([openai_ids(t) for t in TEXTS])
    with torch.no_grad():
        img, txt = m(x, ids)
    sd = openai_model.state_dict()
    assert torch.allclose(reference_image(sd, x), img, atol=1e-10)
    assert torch.allclose(reference_text(sd, ids), txt, atol=1e-10)


# ----------------------------------------------------------------------------- tests: loading files


@pytest.mark.parametrize("kind", ["state_dict", "torchscript", "scripted"])
def test_openai_file_embeddings_equal_the_float64_reference(saved, kind, capfd):
    path, sd = saved[kind]
    capfd.readouterr()
    clip = load_clip(path)
    assert capfd.readouterr() == ("", "")  # loading prints nothing
    assert clip.input_size == 32 and clip.embed_dim == 24 and clip.num_vision_layers == 2
    assert clip.logit_scale == pytest.approx(100.0, rel=1e-5)
    assert clip.dtype == torch.float32
    cfg = clip.model.config
    assert cfg.vision_config.num_attention_heads == 2 and cfg.text_config.num_attention_heads == 2
    assert cfg.text_config.hidden_act == cfg.vision_config.hidden_act == "quick_gelu"
    assert cfg.text_config.eos_token_id == EOT and cfg.text_config.max_position_embeddings == CONTEXT

    images = _images()  # already at the input size: preprocessing is only the normalisation
    assert torch.allclose(clip.preprocess(images).double(), _normalised(images), atol=1e-6)
    with torch.no_grad():
        ours = clip.encode_images(images)
    ref = F.normalize(reference_image(sd, _normalised(images)), dim=-1)
    assert torch.allclose(ours.double(), ref, atol=1e-5)

    clip._text_cache.clear()
    ours_t = clip.encode_texts(TEXTS)  # batched, padded by the tokenizer with <|endoftext|>
    ref_t = F.normalize(reference_text(sd, padded([openai_ids(t) for t in TEXTS])), dim=-1)
    assert torch.allclose(ours_t.double(), ref_t, atol=1e-5)
    clip._text_cache.clear()
    alone = clip.encode_texts(TEXTS[1:2])  # pooled at the first EOT whatever the padding
    assert torch.allclose(alone[0], ours_t[1], atol=1e-5)
    assert clip.unknown_words("a zxqv sketch") == []  # byte-level BPE reads every word


def test_openai_file_in_bfloat16(saved):
    clip = load_clip(saved["state_dict"][0], dtype="bfloat16")
    assert clip.dtype == torch.bfloat16
    e, t = clip.encode_images(_images(1)), clip.encode_texts(["a photo"])
    assert e.dtype == t.dtype == torch.float32 and e.shape == t.shape == (1, 24)


def test_all_files_give_the_same_tensors(saved):
    a = load_clip(saved["state_dict"][0]).model.state_dict()
    b = load_clip(saved["torchscript"][0]).model.state_dict()
    c = load_clip(saved["scripted"][0]).model.state_dict()
    assert a.keys() == b.keys() == c.keys()
    for k in a:  # the state dict was saved in float16 for the matrices, so compare at that precision
        assert torch.allclose(a[k], b[k], atol=2e-3, rtol=1e-3), k
        assert torch.equal(b[k], c[k]), k


def test_archive_attn_masks_must_be_causal(openai_model, tmp_path):
    from nada.generators.safe_torch import read_state_dict

    m = make_openai_clip(seed=1)
    for block in m.transformer.resblocks:
        block.attn_mask = torch.zeros(CONTEXT, CONTEXT)  # bidirectional text attention: not OpenAI's CLIP
    path = tmp_path / "bidirectional.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(m), str(path))
    assert "transformer.resblocks.0.attn_mask" in read_state_dict(path, allow_script=True)
    with pytest.raises(ClipLoadError) as err:
        load_clip(path)
    assert "'transformer.resblocks.0.attn_mask' is not the text tower's (16, 16) causal mask" in _one_line(err)


def test_in_memory_state_dict_without_archive_extras(openai_model):
    sd = {k: v for k, v in openai_model.state_dict().items() if k not in ("input_resolution", "context_length", "vocab_size")}
    model = build_openai_clip(sd, where="memory")
    x = _normalised(_images(2))
    with torch.no_grad():
        out = model.get_image_features(pixel_values=x.float())
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    assert torch.allclose(F.normalize(out.double(), dim=-1), F.normalize(reference_image(sd, x), dim=-1), atol=1e-5)


def test_relative_paths_and_paths_with_colons_and_weights(saved, tmp_path, monkeypatch):
    import shutil

    (tmp_path / "sub").mkdir()
    shutil.copy(saved["state_dict"][0], tmp_path / "sub" / "clip.pt")
    shutil.copy(saved["state_dict"][0], tmp_path / "odd:1.pt")
    monkeypatch.chdir(tmp_path)
    assert load_clip("sub/clip.pt").input_size == 32  # one '/': would look like a hub id, but it exists
    assert load_clip("./sub/clip.pt").name == "./sub/clip.pt"
    assert parse_clip_spec("sub/clip.pt:0.5") == ("sub/clip.pt", 0.5)
    assert parse_clip_spec("odd:1.pt") == ("odd:1.pt", 1.0)
    assert parse_clip_spec(f"{tmp_path}/odd:1.pt:2") == (f"{tmp_path}/odd:1.pt", 2.0)
    assert parse_clip_spec("ckpt:3:1") == ("ckpt:3", 1.0)  # a name ending in :number needs an explicit weight
    assert parse_clip_spec("ckpt:3") == ("ckpt", 3.0)
    shutil.copy(saved["state_dict"][0], tmp_path / "ckpt:3")
    assert parse_clip_spec("ckpt:3") == ("ckpt:3", 1.0)  # an existing file is that file, whole
    ens = ClipEnsemble.from_specs(["sub/clip.pt:3", "odd:1.pt"])
    assert ens.weights == pytest.approx([0.75, 0.25]) and ens.names == ["sub/clip.pt", "odd:1.pt"]


def test_alias_prefers_openai_cached_file(saved, tmp_path, monkeypatch):
    import shutil

    from nada.guidance.clip import CLIP_ALIASES
    from nada.guidance.openai_clip import openai_clip_dir, openai_file_name

    # clip.load's file names: the last part of the download URLs in OpenAI's clip.clip._MODELS
    assert [openai_file_name(a) for a in CLIP_ALIASES] == ["ViT-B-32.pt", "ViT-B-16.pt", "ViT-L-14.pt", "ViT-L-14-336px.pt"]
    monkeypatch.delenv("NADA_OPENAI_CLIP_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert openai_clip_dir() == tmp_path / "home" / ".cache" / "clip"  # os.path.expanduser("~/.cache/clip"), as OpenAI

    monkeypatch.setenv("NADA_OPENAI_CLIP_DIR", str(tmp_path))
    shutil.copy(saved["torchscript"][0], tmp_path / "ViT-B-32.pt")
    clip = load_clip("ViT-B/32")  # would be a hub download otherwise (offline in tests: an error)
    assert clip.name == "ViT-B/32" and clip.input_size == 32
    assert load_clip("ViT-B-32.pt").input_size == 32  # a bare file name is looked up there too
    with pytest.raises(ClipLoadError) as err:  # another alias, no file: the hub advice names OpenAI's file
        load_clip("ViT-L/14@336px", cache_dir=tmp_path / "empty-cache")
    msg = str(err.value)
    assert "ViT-L-14-336px.pt" in msg and str(tmp_path) in msg and "hf download" in msg and "\n" not in msg


def test_small_vocabulary_model_loads_without_tokenizer(tmp_path):
    from safetensors.torch import save_file

    m = make_openai_clip(seed=2, vocab=100, width=64, layers=1)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    save_file(sd, str(tmp_path / "tiny.safetensors"))
    clip = load_clip(tmp_path / "tiny.safetensors")
    assert clip.tokenizer is None and clip.model.config.text_config.eos_token_id == 99
    ids = padded([[98, 5, 7, 99], [98, 3, 99]], length=CONTEXT)
    with torch.no_grad():
        out = clip.model.get_text_features(input_ids=ids)
    out = out if isinstance(out, torch.Tensor) else out.pooler_output
    assert torch.allclose(F.normalize(out.double(), dim=-1), F.normalize(reference_text(sd, ids), dim=-1), atol=1e-5)
    with pytest.raises(ValueError, match="without a tokenizer"):
        clip.encode_texts(["a photo"])


# ----------------------------------------------------------------------------- tests: tokenizer


def test_tokenizer_matches_openai_simple_tokenizer():
    tok = openai_tokenizer(77)
    assert len(tok) == OPENAI_VOCAB_SIZE == 49408
    assert tok.convert_tokens_to_ids("<|startoftext|>") == SOT and tok.convert_tokens_to_ids("<|endoftext|>") == EOT
    assert tok.bos_token_id == SOT and tok.eos_token_id == EOT and tok.model_max_length == 77
    assert tok("a photo of a dog.")["input_ids"] == [SOT, 320, 1125, 539, 320, 1929, 269, EOT]  # known CLIP ids
    texts = TEXTS + ["Don't STOP believin'", "naïve café — déjà vu", "pixel-art   sprites\tin 8-bit", "x" * 40,
                     "emoji 🙂 and 中文", "it's 12:30, we're late", "a &amp; b"]
    for t in texts:
        assert tok(t)["input_ids"] == openai_ids(t), t


def test_tokenizer_truncates_keeping_the_end_token():
    tok = openai_tokenizer(8)
    ids = tok(["one two three four five six seven eight nine"], truncation=True, max_length=8)["input_ids"][0]
    assert len(ids) == 8 and ids[0] == SOT and ids[-1] == EOT


# ----------------------------------------------------------------------------- tests: refusals


def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def _save(sd, path):
    torch.save(sd, path)
    return path


@pytest.mark.parametrize(
    "edit, expect",
    [
        (lambda sd: sd.pop("ln_final.bias"), "1 tensor(s) missing"),
        (lambda sd: sd.__setitem__("extra.weight", torch.zeros(3)), "unexpected tensor"),
        (lambda sd: sd.__setitem__("ln_final.bias", torch.zeros(7)), "'ln_final.bias' has shape (7,)"),
        (lambda sd: sd.__setitem__("visual.transformer.resblocks.1.ln_1.weight", torch.full((128,), float("nan"))),
         "'visual.transformer.resblocks.1.ln_1.weight' holds NaN"),
        (lambda sd: sd.__setitem__("visual.positional_embedding", torch.zeros(18, 128)), "not a square grid"),
        (lambda sd: sd.__setitem__("context_length", torch.tensor(77)), "'context_length' is 77"),
        (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("transformer.resblocks.0.")], "numbered 0..N-1"),
    ],
)
def test_malformed_openai_files_are_refused_in_one_line(openai_model, tmp_path, edit, expect):
    sd = dict(openai_model.state_dict())
    edit(sd)
    path = _save(sd, tmp_path / "bad.pt")
    with pytest.raises(ClipLoadError) as err:
        load_clip(path)
    msg = _one_line(err)
    assert expect in msg and str(path) in msg


def test_resnet_clip_is_refused(tmp_path):
    sd = {"visual.layer1.0.conv1.weight": torch.zeros(4, 4, 1, 1), "visual.attnpool.positional_embedding": torch.zeros(50, 8),
          "token_embedding.weight": torch.zeros(10, 8)}
    with pytest.raises(ClipLoadError) as err:
        load_clip(_save(sd, tmp_path / "RN50.pt"))
    msg = _one_line(err)
    assert "ResNet" in msg and "transformers.CLIPModel cannot represent" in msg
    with pytest.raises(ClipLoadError, match="ResNet CLIPs"):
        load_clip("RN50")


def test_other_files_say_what_they_are(tmp_path, tiny_generator):
    g = tmp_path / "stylegan.pt"
    torch.save({"g_ema": tiny_generator.state_dict(), "latent_avg": torch.zeros(32)}, g)
    with pytest.raises(ClipLoadError) as err:
        load_clip(g)
    msg = _one_line(err)
    assert "expected an OpenAI CLIP file" in msg and str(g) in msg and "StyleGAN2" in msg

    g2 = _save({f"style.{i}.weight": torch.zeros(2, 2) for i in range(1, 3)}, tmp_path / "gen.pt")
    with pytest.raises(ClipLoadError, match="found a StyleGAN2 generator") as err:
        load_clip(g2)
    _one_line(err)

    text = tmp_path / "notes.pt"
    text.write_text("not a torch file\n")
    with pytest.raises(ClipLoadError) as err:
        load_clip(text)
    assert "expected an OpenAI CLIP file" in _one_line(err)

    hf = _save({"text_model.embeddings.token_embedding.weight": torch.zeros(4, 4)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(ClipLoadError, match="pass the directory") as err:
        load_clip(hf)
    _one_line(err)


def test_torchscript_code_is_never_run(tmp_path):
    # a scripted module whose code would raise if run: the weights are read, the code ignored
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(2))

        def forward(self, x):
            raise RuntimeError("code from the file ran")

    path = tmp_path / "boom.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(Boom()), str(path))
    with pytest.raises(ClipLoadError) as err:
        load_clip(path)
    msg = _one_line(err)
    assert "found 1 tensors with keys like [w]" in msg and "code from the file ran" not in msg


@pytest.mark.parametrize("name", ["./missing.pt", "missing.pt", "~/no/such/clip.pt", "/no/such/dir", "a/b/c",
                                  "weights.safetensors", "ViT-B-32.pth"])
def test_missing_paths_are_not_sent_to_the_hub(name, tmp_path, monkeypatch):
    monkeypatch.setenv("NADA_OPENAI_CLIP_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClipLoadError) as err:
        load_clip(name)
    msg = _one_line(err)
    assert "does not exist" in msg and "hf download" not in msg
