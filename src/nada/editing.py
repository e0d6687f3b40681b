"""Latent edits that work the same in a base generator and its adaptations (they share W).

Directions are unit vectors in W (``w_dim``), applied to chosen W+ rows: ``w' = w + strength * d``.

* **SeFa** (closed-form factorisation, Shen & Zhou): the eigenvectors of ``AᵀA``, largest eigenvalue
  first, where ``A`` stacks the affine (style) weight matrices of the chosen layers, each column
  normalised to unit length as SeFa does. Found from the weights alone; strength in W units.
* **GANSpace** (Härkönen et al.): the principal components of sampled W codes, largest variance first;
  ``ganspace_directions`` also returns each component's standard deviation, and a GANSpace edit's
  strength counts standard deviations.
* **Boundaries** (InterFaceGAN): a ``.npy`` file of shape (1, w_dim) or (num_ws, w_dim) — the normal of
  a linear boundary in W — or one fitted here from codes and the user's binary labels
  (:func:`fit_boundary`: logistic regression, its weight vector normalised).

``parse_direction("sefa:3")``, ``"ganspace:0"``, ``"boundary.npy"`` -> one (num_ws, w_dim) direction.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import NadaError

__all__ = ["EditError", "apply_direction", "boundary_from_labels", "edit_grid", "edit_to_dir", "fit_boundary",
           "ganspace_directions", "load_boundary", "parse_direction", "read_labels", "save_boundary", "sefa_directions"]


class EditError(NadaError, ValueError):
    """A direction or edit that cannot be used: one line."""


def _base(G: Any) -> Any:
    return getattr(G, "G", G)  # a generator with domains applied: its base's weights define the directions


def _rows(G: Any, layers: Sequence[int] | None) -> list[int]:
    rows = list(range(G.num_ws)) if layers is None else sorted(set(int(r) for r in layers))
    if not rows or rows[0] < 0 or rows[-1] >= G.num_ws:
        raise EditError(f"layers must be W+ rows 0..{G.num_ws - 1}, got {list(layers or [])}")
    return rows


@torch.no_grad()
def sefa_directions(G: Any, layers: Sequence[int] | None = None, k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` SeFa directions (k, w_dim) of the affine layers reading ``layers`` (default all) and
    their eigenvalues (k,), in float64 and then float32."""
    base = _base(G)
    rows = set(_rows(G, layers))
    mats = [conv.modulation.weight.double() * conv.modulation.scale
            for unit, conv in base.modulated_convs() if unit.ws_index in rows]
    if not mats:
        raise EditError(f"no modulated layer reads rows {sorted(rows)}")
    A = torch.cat(mats)  # (sum of in_channels, w_dim)
    A = A / A.norm(dim=0, keepdim=True).clamp_min(1e-12)
    values, vectors = torch.linalg.eigh(A.T @ A)
    order = torch.argsort(values, descending=True)[:k]
    return vectors[:, order].T.float().contiguous(), values[order].float()


@torch.no_grad()
def ganspace_directions(G: Any, k: int = 8, samples: int = 10_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` principal components (k, w_dim) of ``samples`` W codes and their standard deviations (k,)."""
    base = _base(G)
    device = base.w_avg.device
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for lo in range(0, samples, 4096):
        z = torch.randn(min(4096, samples - lo), base.z_dim, generator=gen).to(device)
        ws.append(base.mapping(z)[:, 0].double().cpu())
    w = torch.cat(ws)
    w = w - w.mean(0)
    _, s, vh = torch.linalg.svd(w, full_matrices=False)
    std = s / (len(w) - 1) ** 0.5
    return vh[:k].float().contiguous(), std[:k].float()


def load_boundary(path: str | os.PathLike, G: Any) -> torch.Tensor:
    """An InterFaceGAN-style boundary (``.npy`` (1, w_dim) or (num_ws, w_dim), no pickles) as (num_ws, w_dim)."""
    import numpy as np

    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise EditError(f"{path}: not a plain numeric .npy boundary ({' '.join(str(e).split())[:120]})") from None
    d = torch.from_numpy(np.asarray(array, dtype=np.float32))
    if d.ndim == 1:
        d = d[None]
    if d.ndim != 2 or d.shape[1] != G.w_dim or d.shape[0] not in (1, G.num_ws) or not torch.isfinite(d).all():
        raise EditError(f"{path}: a boundary must be finite (1, {G.w_dim}) or ({G.num_ws}, {G.w_dim}); got {tuple(d.shape)}")
    return d.expand(G.num_ws, -1).contiguous()


def fit_boundary(ws: torch.Tensor, labels: torch.Tensor, steps: int = 500, weight_decay: float = 1e-3) -> torch.Tensor:
    """The unit normal (w_dim,) of a linear boundary separating codes ``ws`` (N, w_dim) by binary ``labels``
    (logistic regression on standardised codes, mapped back to W), pointing towards label 1."""
    x = ws.double()
    y = labels.double().flatten()
    if x.ndim != 2 or len(x) != len(y) or not ((y == 0) | (y == 1)).all() or y.min() == y.max():
        raise EditError("fit_boundary needs codes (N, w_dim) and binary labels with both classes present")
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    xs = (x - mean) / std
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    normal = (w.detach() / std)  # the boundary's normal in W's own coordinates
    return (normal / normal.norm().clamp_min(1e-12)).float()


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """Binary labels by name from a text file: one ``name,label`` (or ``name label``, tab-separated too) per
    line, label 0 or 1 (also false/true, no/yes); blank lines, ``#`` comments and a ``name,label`` header are
    skipped; or a JSON object ``{"name": 0 or 1, ...}``."""
    import json

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EditError(f"{path}: cannot read labels ({getattr(e, 'strerror', None) or e})") from None
    words = {"0": 0, "1": 1, "false": 0, "true": 1, "no": 0, "yes": 1}
    labels: dict[str, int] = {}
    if text.lstrip()[:1] in ("{", "["):
        try:
            raw = json.loads(text)
        except ValueError as e:
            raise EditError(f"{path}: not a JSON object of labels ({e})") from None
        items = [(str(k), str(v).lower()) for k, v in raw.items()] if isinstance(raw, dict) else None
        if items is None:
            raise EditError(f"{path}: expected a JSON object {{name: 0 or 1}}")
    else:
        items = []
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [t.strip() for t in line.replace("\t", ",").replace(" ", ",").split(",") if t.strip()]
            if len(parts) != 2:
                raise EditError(f"{path}: expected lines 'name,label'; found {line[:60]!r}")
            items.append((parts[0], parts[1].lower()))
        header = items and items[0][1] not in words and not items[0][1].lstrip("+-").replace(".", "", 1).isdigit()
        if header:  # e.g. "name,label"
            items = items[1:]
    for name, value in items:
        if value not in words:
            raise EditError(f"{path}: label of {name!r} is {value!r}; labels are 0 or 1")
        if name in labels:
            raise EditError(f"{path}: {name!r} is labelled twice")
        labels[name] = words[value]
    if not labels:
        raise EditError(f"{path}: no labels")
    return labels


def boundary_from_labels(ws: torch.Tensor, names: Sequence[str], labels: dict[str, int], *,
                         per_row: bool = False) -> tuple[torch.Tensor, dict]:
    """A boundary fitted to the labelled codes among ``ws`` (N, num_ws, w_dim) named ``names``: (1, w_dim)
    from each code's mean row (InterFaceGAN fits in W), or with ``per_row`` one normal per row (num_ws,
    w_dim). Also returns a summary (counts, training accuracy). Unlabelled codes are left out; a label
    naming no code is refused."""
    index = {n: i for i, n in enumerate(names)}
    unknown = [n for n in labels if n not in index]
    if unknown:
        raise EditError(f"labels name codes that are not in the latents: {', '.join(unknown[:3])}"
                        f"{' ...' if len(unknown) > 3 else ''}")
    chosen = [index[n] for n in labels]
    y = torch.tensor([labels[n] for n in labels], dtype=torch.long)
    if y.min() == y.max():
        raise EditError(f"all {len(y)} labels are {int(y[0])}: a boundary needs both classes")
    codes = ws[chosen].double()
    inputs = [codes.mean(1)] if not per_row else [codes[:, r] for r in range(codes.shape[1])]
    normals = torch.stack([fit_boundary(x, y) for x in inputs])
    scores = torch.stack([(x.float() - x.float().mean(0)) @ n for x, n in zip(inputs, normals)]).mean(0)
    # the accuracy of the best threshold along the (mean) normal: how separable the labels are in W
    ys = y[torch.argsort(scores)].float()
    zeros_below = torch.cat([torch.zeros(1), torch.cumsum(1 - ys, 0)])  # cut k: below it read as 0
    ones_above = ys.sum() - torch.cat([torch.zeros(1), torch.cumsum(ys, 0)])
    accuracy = float((zeros_below + ones_above).max() / len(y))
    summary = {"codes": len(y), "label_1": int(y.sum()), "label_0": int((y == 0).sum()),
               "shape": list(normals.shape), "separable_accuracy": round(accuracy, 4)}
    return normals.float(), summary


def save_boundary(path: str | os.PathLike, normal: torch.Tensor) -> Path:
    """A boundary as a plain float32 ``.npy`` (no pickles), written atomically."""
    import io

    import numpy as np

    from ._io import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise EditError(f"{path}: a boundary file ends in .npy")
    buf = io.BytesIO()
    np.save(buf, normal.detach().cpu().float().numpy(), allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def parse_direction(spec: str, G: Any, *, layers: Sequence[int] | None = None, samples: int = 10_000,
                    seed: int = 0) -> tuple[torch.Tensor, str]:
    """``sefa:I``, ``ganspace:I`` or a boundary ``.npy`` path -> ((num_ws, w_dim) direction, description).
    A GANSpace direction is scaled by its component's standard deviation (strengths in std units)."""
    kind, _, index = spec.partition(":")
    if kind in ("sefa", "ganspace"):
        if not index.isdigit():
            raise EditError(f"--direction {spec}: expected {kind}:INDEX, e.g. {kind}:0")
        i = int(index)
        if kind == "sefa":
            dirs, values = sefa_directions(G, layers, k=i + 1)
            if i >= len(dirs):
                raise EditError(f"--direction {spec}: SeFa gives {len(dirs)} directions here")
            d, what = dirs[i], f"SeFa direction {i} (eigenvalue {float(values[i]):.4g})"
        else:
            dirs, std = ganspace_directions(G, k=i + 1, samples=samples, seed=seed)
            if i >= len(dirs):
                raise EditError(f"--direction {spec}: GANSpace gives {len(dirs)} components here")
            d, what = dirs[i] * std[i], f"GANSpace component {i} (std {float(std[i]):.4g}; strengths in stds)"
        return d.expand(G.num_ws, -1).contiguous(), what
    path = Path(spec)
    if path.suffix.lower() != ".npy" or not path.is_file():
        raise EditError(f"--direction {spec}: expected sefa:INDEX, ganspace:INDEX or an existing boundary .npy file")
    return load_boundary(path, G), f"boundary {path.name}"


def apply_direction(ws: torch.Tensor, direction: torch.Tensor, strength: float,
                    layers: Sequence[int] | None = None) -> torch.Tensor:
    """``ws + strength * direction`` on the chosen W+ rows (all by default)."""
    num_ws = ws.shape[1]
    mask = torch.zeros(num_ws, 1, dtype=ws.dtype, device=ws.device)
    mask[list(range(num_ws)) if layers is None else list(layers)] = 1
    return ws + strength * direction.to(ws) * mask


@torch.no_grad()
def edit_grid(G: Any, ws: torch.Tensor, direction: torch.Tensor, strengths: Sequence[float],
              layers: Sequence[int] | None = None, batch: int = 8) -> torch.Tensor:
    """Images (N, S, 3, R, R): each code edited at each strength, drawn by ``G``."""
    device = G.w_avg.device
    out = []
    for s in strengths:
        edited = apply_direction(ws, direction, s, layers)
        imgs = [G.synthesis(edited[lo:lo + batch].to(device), noise_mode="const").float().cpu()
                for lo in range(0, len(edited), batch)]
        out.append(torch.cat(imgs))
    return torch.stack(out, dim=1)


def edit_to_dir(G: Any, ws: torch.Tensor, names: Sequence[str], direction: str, strengths: Sequence[float],
                out: str | os.PathLike, *, layers: Sequence[int] | None = None, report: dict | None = None) -> dict:
    """Edit the codes ``ws`` along ``direction`` (a :func:`parse_direction` spec) at each strength, draw them
    with ``G`` and write ``out/grid.png`` (a row per code, a column per strength) and ``out/report.json``
    (``report``'s entries first). Nothing is written when the direction or the folder is refused."""
    import json

    from ._io import atomic_write_text, check_output_dir, prepare_output_dir
    from .imaging import save_grid

    check_output_dir(out, "--out")
    if len(names) != len(ws):
        raise EditError(f"{len(names)} names for {len(ws)} codes")
    vector, what = parse_direction(direction, G, layers=layers)
    images = edit_grid(G, ws, vector, strengths, layers)
    out = Path(out)
    prepare_output_dir(out, "--out")
    save_grid(images.flatten(0, 1).clamp(-1, 1), out / "grid.png", nrow=len(strengths))
    summary = {**(report or {}), "direction": direction, "description": what, "strengths": list(strengths),
               "layers": None if layers is None else list(layers), "rows": list(names)}
    atomic_write_text(out / "report.json", json.dumps(summary, indent=1) + "\n")
    return summary
