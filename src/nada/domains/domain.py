"""Domain files (``domain.safetensors``): a trained parameterisation's vectors and where they belong.

A domain file holds only the trained tensors (1-D or 2-D float32, named ``"{space}/{layer}"``,
e.g. ``modulation/convs.3``: :mod:`nada.domains.parameterisations`) and string metadata:

``format`` (``nada-domain``), ``format_version``, ``param`` (``modulation``, ``stylespace``, ``stylespace+``, ``affine+``),
``base_fingerprint`` (sha256 of the base generator's state dict, :func:`base_fingerprint`),
``base_config`` (its :class:`GeneratorConfig` as JSON), ``source_text``, ``target_text``,
``clips`` (JSON list), ``steps``, ``nada_version`` and ``checksum`` (sha256 of the vectors,
verified on load).

Domains act on a base generator at a *strength*: ``strength * vector`` in the parameterisation's
natural space (log-multipliers for ``modulation``, offsets for ``stylespace``). Several domains
combine linearly there (the sum of ``strength_i * vector_i`` per layer); domains of different
parameterisations compose. Strength 0 leaves the base exactly as it is.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from .._io import tensors_sha256
from ..adapt.errors import AdaptError
from ..errors import CheckpointError
from ..files import atomic_path
from ..generators.stylegan2 import Generator, GeneratorConfig
from .hypernet import MAX_CHANNELS, MAX_INPUT, MAX_LAYOUT, MAX_WIDTH, HyperNetwork, text_input
from .parameterisations import PARAM_SPACES, fold_into, run_synthesis, space_hooks, sum_vectors

__all__ = ["DOMAIN_FILE", "FORMAT_NAME", "FORMAT_VERSION", "Domain", "DomainError", "DomainGenerator", "HyperDomain",
           "apply_domains", "bake_domains", "base_fingerprint", "load_domain", "load_domains", "parse_domain_spec",
           "save_domain"]

DOMAIN_FILE = "domain.safetensors"
FORMAT_NAME = "nada-domain"
FORMAT_VERSION = 1
MAX_NUMEL = 1 << 22  # entries per tensor; far above any StyleGAN2 layer's (a 512 x 512 weight offset is 1 << 18)
MAX_VECTORS = 256
MAX_HYPER_NUMEL = 1 << 25  # a hypernetwork's head: width x the generator's input channels
HYPER = "hyper"


class DomainError(CheckpointError):
    """A domain file that cannot be read, or a domain that does not fit a generator (one line)."""


def base_fingerprint(G: Generator) -> str:
    """sha256 of ``G``'s state dict (names, dtypes, shapes, bytes in sorted-name order)."""
    return tensors_sha256(G.state_dict())


@dataclass
class Domain:
    """A loaded domain: its parameterisation, vectors and metadata (see the module docstring)."""

    param: str
    vectors: dict[str, torch.Tensor]
    meta: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @property
    def base_fingerprint(self) -> str:
        return self.meta.get("base_fingerprint", "")

    @property
    def base_config(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.meta["base_config"])
        except (KeyError, ValueError):
            return None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else f"{self.param} domain"

    def apply(self, G: Generator, strength: float = 1.0, *, allow_other_base: bool = False) -> "DomainGenerator":
        """``G`` seen through this domain at ``strength``: samples and back-propagates like a generator."""
        return apply_domains(G, [(self, strength)], allow_other_base=allow_other_base)

    def bake(self, G: Generator, strength: float = 1.0, *, allow_other_base: bool = False) -> Generator:
        """A plain copy of ``G`` with this domain folded into its weights."""
        return bake_domains(G, [(self, strength)], allow_other_base=allow_other_base)

    def save(self, path: str | os.PathLike) -> Path:
        return _write(path, self.param, self.vectors, self.meta)


def _write(path: str | os.PathLike, param: str, vectors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> Path:
    from safetensors.torch import save_file

    import nada

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in vectors.items()}
    keep = {k: v for k, v in meta.items() if k not in ("format", "format_version", "param", "checksum", "nada_version")}
    full = {**keep, "format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "param": param,
            "nada_version": nada.__version__, "checksum": tensors_sha256(tensors)}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=full)
    return path


def save_domain(path: str | os.PathLike, param: str, vectors: Mapping[str, torch.Tensor], base: Generator | None = None,
                *, fingerprint: str | None = None, base_config: Mapping[str, Any] | None = None,
                source_text: str | None = None, target_text: str | None = None, clips: Sequence[str] = (),
                steps: int = 0, extra: Mapping[str, str] | None = None) -> Path:
    """Write a domain file atomically. The base is named by ``base`` (fingerprint and config taken from
    it) or by ``fingerprint`` and ``base_config`` (e.g. for a generator never materialised)."""
    if param not in PARAM_SPACES and param != HYPER:
        raise DomainError(f"cannot save a {param!r} domain; domains are {', '.join(PARAM_SPACES)}, {HYPER}")
    if base is not None:
        fingerprint = fingerprint or base_fingerprint(base)
        base_config = base_config or base.config.to_dict()
    meta = {**(extra or {}),
            "base_fingerprint": fingerprint or "",
            "base_config": json.dumps(dict(base_config or {}), sort_keys=True),
            "source_text": source_text or "", "target_text": target_text or "",
            "clips": json.dumps(list(clips)), "steps": str(int(steps))}
    return _write(path, param, vectors, meta)


def load_domain(path: str | os.PathLike) -> Domain:
    """Read a domain file (safetensors only; checksum verified); a malformed or foreign file is a one-line :class:`DomainError`.

    A hypernetwork file (``param = hyper``) gives a :class:`~nada.domains.hyper.HyperDomain`, whose
    ``domain(text)`` is a plain ``modulation`` domain."""
    from safetensors import safe_open

    from ..generators.checkpoints import _describe_kind, sniff_format

    path = Path(path)
    what = f"{path}: expected a nada domain .safetensors"
    if not path.is_file():
        raise DomainError(f"{what}; found {'a directory or special file' if path.exists() else 'no such file'}")
    try:
        kind = "safetensors" if _looks_like_safetensors(path) else sniff_format(path)
    except OSError as e:
        raise DomainError(f"{what}; found an unreadable file ({e.strerror or e})") from None
    if kind != "safetensors":
        raise DomainError(f"{what}; found {_describe_kind(kind, path)}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            if meta.get("format") != FORMAT_NAME:
                raise DomainError(f"{what} (metadata format={FORMAT_NAME}); found format={meta.get('format')!r}")
            names = list(f.keys())
            if len(names) > MAX_VECTORS:
                raise DomainError(f"{what}; found {len(names)} tensors (at most {MAX_VECTORS})")
            vectors = {k: f.get_tensor(k) for k in names}
    except DomainError:
        raise
    except Exception as e:  # safetensors' own error types for damaged files
        first = " ".join(str(e).split())[:160]
        raise DomainError(f"{what}; found a damaged file ({first})") from None
    version = meta.get("format_version", "")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise DomainError(f"{what} of format version <= {FORMAT_VERSION}; found {version!r} (written by a newer nada?)")
    param = meta.get("param")
    if param not in PARAM_SPACES and param != HYPER:
        raise DomainError(f"{what}; found an unknown parameterisation {param!r} (known: {', '.join(PARAM_SPACES)}, {HYPER})")
    if tensors_sha256(vectors) != meta.get("checksum"):
        raise DomainError(f"{what} whose vectors match the checksum in its metadata; found different ones (corrupted)")
    if param == HYPER:
        for k, v in vectors.items():
            if v.dtype != torch.float32 or v.ndim not in (1, 2) or not 0 < v.numel() <= MAX_HYPER_NUMEL \
                    or not torch.isfinite(v).all():
                raise DomainError(f"{what}; found tensor {k!r} of {v.dtype} {tuple(v.shape)} (expected finite 1-D or "
                                  f"2-D float32 of at most {MAX_HYPER_NUMEL} numbers)")
        return hyper_from_file(vectors, meta, path, what)
    for k, v in vectors.items():
        space = k.partition("/")[0]
        if space not in PARAM_SPACES[param] or not k.partition("/")[2]:
            raise DomainError(f"{what}; found tensor {k!r}, not '<space>/<layer>' with a space of {param} "
                              f"({', '.join(PARAM_SPACES[param])})")
        if v.dtype != torch.float32 or v.ndim not in (1, 2) or not 0 < v.numel() <= MAX_NUMEL:
            raise DomainError(f"{what}; found tensor {k!r} of {v.dtype} {tuple(v.shape)} (expected 1-D or 2-D float32)")
        if not torch.isfinite(v).all():
            raise DomainError(f"{what}; found non-finite values in {k!r}")
    return Domain(param, vectors, meta, path)


def _looks_like_safetensors(path: Path) -> bool:
    """An 8-byte header length that fits the file, then ``{`` (checked before ``sniff_format``, which reads a
    header length whose low byte is 0x80 and next byte 2..5 as a pickle's protocol mark)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8


def parse_domain_spec(spec: str) -> tuple[str, float]:
    """``PATH[:STRENGTH]`` -> (path, strength); a path containing ``:`` works when it exists as written."""
    import math

    if os.path.exists(spec) or ":" not in spec:
        return spec, 1.0
    path, _, text = spec.rpartition(":")
    try:
        strength = float(text)
    except ValueError:
        return spec, 1.0
    if not math.isfinite(strength):
        raise DomainError(f"--domain {spec}: the strength must be a finite number, got {text}")
    return path, strength


DomainLike = "Domain | str | os.PathLike"


def _as_pairs(domains: Iterable[Any], text: str | None = None) -> list[tuple[Domain, float]]:
    pairs = []
    for item in domains:
        d, s = (item if isinstance(item, tuple) else (item, 1.0))
        if not isinstance(d, Domain):
            d = load_domain(d) if isinstance(d, (str, os.PathLike)) else d
        if getattr(d, "param", None) == HYPER:  # a hypernetwork: the domain it predicts for the text
            if text is None:
                raise DomainError(f"{d.label} is a hypernetwork (--param hyper): say which domain with a text "
                                  f"(--text TEXT; trained on {', '.join(map(repr, d.texts))})")
            d = d.domain(text)
        pairs.append((d, float(s)))
    return pairs


def load_domains(specs: Sequence[str], text: str | None = None) -> list[tuple[Domain, float]]:
    """``PATH[:STRENGTH]`` specs as ``(domain, strength)`` pairs; a hypernetwork file gives its domain for ``text``."""
    loaded = [(load_domain(path), strength) for path, strength in map(parse_domain_spec, specs)]
    if text is not None and not any(d.param == HYPER for d, _ in loaded):
        raise DomainError("--text picks the domain of a hypernetwork (--param hyper) file; none of the --domain files is one")
    return _as_pairs(loaded, text)


def check_base(G: Generator, pairs: Sequence[tuple[Domain, float]], allow_other_base: bool = False) -> None:
    """Refuse domains trained on another base (unless ``allow_other_base``), in one line naming both fingerprints."""
    if allow_other_base or not pairs:
        return
    mine = base_fingerprint(G)
    for d, _ in pairs:
        if d.base_fingerprint != mine:
            raise DomainError(f"{d.label} was trained on base generator {d.base_fingerprint or '(unknown)'}; this "
                              f"generator is {mine}; pass allow_other_base=True (--allow-other-base) to apply it anyway")


def mixed_vectors(pairs: Sequence[tuple[Domain, float]]) -> dict[str, torch.Tensor]:
    """``{"space/layer": sum(strength * tensor)}`` over the domains with a non-zero strength."""
    return sum_vectors((d.vectors, s) for d, s in pairs if s != 0.0)


def _on(G: Generator, mixes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    ref = G.w_avg
    return {k: v.to(ref.device, ref.dtype) for k, v in mixes.items()}


def _fit(G: Generator, pairs: Sequence[tuple[Domain, float]]) -> None:
    for d, _ in pairs:  # each domain must fit G on its own (a clear message naming the file)
        try:
            space_hooks(G, d.vectors, what=d.label)
        except AdaptError as e:
            raise DomainError(str(e)) from None


class DomainGenerator(nn.Module):
    """A generator with domains applied through hooks: ``mapping``, ``synthesis`` and ``forward`` as a
    :class:`Generator`'s (gradients reach the base's weights and the latents); every other attribute is
    the base's. The base itself is not changed (the hooks are there only during a forward pass)."""

    def __init__(self, G: Generator, mixes: dict[str, torch.Tensor]):
        super().__init__()
        self.G = G
        self.mixes = _on(G, mixes)
        self.hooks = space_hooks(G, self.mixes)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "G":
                raise
            return getattr(self._modules["G"], name)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> "DomainGenerator":
        # .to(device) / .double(): the base moves, and the domain tensors with it
        super()._apply(fn, *args, **kwargs)
        self.mixes = _on(self.G, self.mixes)
        self.hooks = space_hooks(self.G, self.mixes)
        return self

    def mapping(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.G.mapping(*args, **kwargs)

    def synthesis(self, ws: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if args:
            kwargs = {"noise_mode": args[0], **({"noise": args[1]} if len(args) > 1 else {}), **kwargs}
        return run_synthesis(self.G, self.hooks, ws, **kwargs)

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, noise_mode: str = "random",
                truncation_cutoff: int | None = None) -> torch.Tensor:
        return self.synthesis(self.mapping(z, truncation_psi, truncation_cutoff), noise_mode=noise_mode)

    def bake(self) -> Generator:
        """A plain copy of the base with the domains folded into its weights."""
        import copy

        out = copy.deepcopy(self.G)
        fold_into(out, self.mixes)
        return out


def apply_domains(G: Generator, domains: Iterable[Any], *, allow_other_base: bool = False,
                  text: str | None = None) -> DomainGenerator:
    """``G`` with ``domains`` (``Domain``s or paths, or ``(domain, strength)`` pairs) applied through hooks;
    ``text`` picks the domain of a hypernetwork file."""
    pairs = _as_pairs(domains, text)
    check_base(G, pairs, allow_other_base)
    _fit(G, pairs)
    return DomainGenerator(G, mixed_vectors(pairs))


def bake_domains(G: Generator, domains: Iterable[Any], *, allow_other_base: bool = False) -> Generator:
    """A plain copy of ``G`` with ``domains`` folded into its weights (for tools that know no domains):
    modulation multiplies each conv weight's input channels, stylespace shifts each affine bias."""
    return apply_domains(G, domains, allow_other_base=allow_other_base).bake()


def config_of(domain: Domain) -> GeneratorConfig | None:
    cfg = domain.base_config
    try:
        return GeneratorConfig.from_dict(cfg) if cfg else None
    except (ValueError, TypeError):
        return None


# ----------------------------------------------------------------------------- hypernetwork files


class HyperDomain:
    """A loaded hypernetwork: :meth:`domain` gives the ``modulation`` domain of any text."""

    param = "hyper"

    def __init__(self, net: HyperNetwork, inputs: torch.Tensor, meta: Mapping[str, str], path: Path | None = None):
        self.net = net.eval().requires_grad_(False)
        self.inputs = inputs
        self.meta = dict(meta)
        self.path = path
        self.texts: list[str] = json.loads(self.meta["targets"])
        self._clips: list[Any] | None = None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else "hyper domain"

    @property
    def base_fingerprint(self) -> str:
        return self.meta.get("base_fingerprint", "")

    def input_for(self, text: str, clips: Sequence[Any] | None = None) -> torch.Tensor:
        """The stored input of a trained text; any other text embedded by ``clips`` (default: the file's CLIPs, loaded)."""
        if not isinstance(text, str) or not text.strip():
            raise DomainError(f"{self.label}: the text for a hypernetwork domain is empty")
        if text in self.texts and clips is None:
            return self.inputs[self.texts.index(text)]
        if clips is None:
            if self._clips is None:
                from ..guidance.ensemble import ClipEnsemble

                self._clips = ClipEnsemble.from_specs(json.loads(self.meta.get("clips", "[]"))).models
            clips = self._clips
        x = text_input(clips, text, self.meta.get("source_text", ""), json.loads(self.meta.get("templates", "null")),
                       json.loads(self.meta.get("use_templates", "true")))
        if x.shape != self.inputs.shape[1:]:
            raise DomainError(f"{self.label}: CLIPs giving {x.numel()} input numbers; this hypernetwork reads "
                              f"{self.inputs.shape[1]} (its CLIPs: {self.meta.get('clips')})")
        return x

    def domain(self, text: str, clips: Sequence[Any] | None = None):
        """The ``modulation`` :class:`~nada.domains.domain.Domain` the hypernetwork predicts for ``text``."""
        with torch.no_grad():
            vectors = {k: v.detach().clone().contiguous() for k, v in self.net(self.input_for(text, clips)).items()}
        keep = ("base_fingerprint", "base_config", "source_text", "clips", "steps")
        meta = {k: self.meta[k] for k in keep if k in self.meta}
        meta.update(target_text=text, hyper=str(self.path or ""), trained=json.dumps(text in self.texts))
        return Domain("modulation", vectors, meta, None if self.path is None else Path(f"{self.path}[{text}]"))


def hyper_from_file(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: Path | None,
                    what: str) -> HyperDomain:
    """Rebuild a :class:`HyperDomain` from a checked domain file's tensors and metadata (one-line errors)."""
    try:
        texts = json.loads(meta["targets"])
        layout = [(str(k), int(c)) for k, c in json.loads(meta["layout"])]
        width = int(meta["width"])
        json.loads(meta.get("templates", "null"))
        json.loads(meta.get("use_templates", "true"))
    except (KeyError, ValueError, TypeError) as e:
        raise DomainError(f"{what}; found a hyper domain whose metadata is incomplete ({type(e).__name__}: {e})") from None
    if not (isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts)):
        raise DomainError(f"{what}; found a hyper domain without its target texts")
    if not 0 < len(layout) <= MAX_LAYOUT or any(not (0 < c <= MAX_CHANNELS) or not k.startswith("modulation/")
                                                 for k, c in layout):
        raise DomainError(f"{what}; found a hyper domain with an unusable output layout")
    if not 0 < width <= MAX_WIDTH:
        raise DomainError(f"{what}; found a hyper domain of width {width} (at most {MAX_WIDTH})")
    inputs = tensors.get("inputs")
    if inputs is None or inputs.ndim != 2 or inputs.shape[0] != len(texts) or not 0 < inputs.shape[1] <= MAX_INPUT:
        raise DomainError(f"{what}; found a hyper domain whose stored inputs do not match its {len(texts)} texts")
    net = HyperNetwork(inputs.shape[1], layout, width)
    state = {k[len("net/"):]: v for k, v in tensors.items() if k.startswith("net/")}
    mine = net.state_dict()
    if set(state) != set(mine) or any(state[k].shape != v.shape for k, v in mine.items()):
        raise DomainError(f"{what}; found a hyper domain whose network weights do not fit its layout")
    net.load_state_dict(state)
    return HyperDomain(net, inputs, meta, path)
