"""Deterministic procedural renderer of the built-in world: one object on a background, in one style.

A :class:`Scene` holds everything an image depends on, including an integer ``seed`` from
which every texture (paper grain, hatching jitter, watercolor blotches...) is drawn, so the
same scene always renders to the same pixels. Rendering is vectorised over the batch: each
shape is a signed distance field (SDF, pixels, negative inside) evaluated on a 64x64 grid,
and each style turns that field into colour with a handful of tensor operations.

Coordinates: pixel ``(i, j)`` (row, column) covers ``[j, j+1) x [i, i+1)``, so its centre is
``(j + 0.5, i + 0.5)``; ``Scene.cx, Scene.cy`` and the ``position`` label use this frame.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

STYLES = ("photo", "sketch", "pixel art", "neon", "watercolor")
SHAPES = ("circle", "square", "triangle", "star")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
RESOLUTION = 64

# Saturated base pigments; every style derives its object colour from these.
PALETTE = {
    "red": (0.86, 0.10, 0.10),
    "green": (0.12, 0.68, 0.20),
    "blue": (0.13, 0.30, 0.92),
    "yellow": (0.96, 0.86, 0.08),
    "purple": (0.58, 0.18, 0.80),
    "orange": (1.00, 0.52, 0.04),
}

# Ranges of the random scene parameters (object "size" is the radius of the equal-area circle).
SIZE_RANGE = (9.0, 12.5)
# the centre keeps the whole object (triangle/star tips reach ~1.55 x size) inside the frame
CENTRE_MARGIN = 1.55
# Pixel art is drawn in 2x2 blocks (a 32x32 grid): blocky at a glance, and since 2 divides
# both CLIP patch sizes (8, 16) the block grid lines up with the patches. (3x3 blocks made
# small shapes hard to read; the first training phases of the shipped CLIPs used them.)
PIXEL_BLOCK = 2
_CHUNK = 64  # scenes per SDF evaluation, bounds peak memory


@dataclass(frozen=True)
class Scene:
    """One image's parameters. Angles in radians, lengths and positions in pixels."""

    style: str
    shape: str
    colour: str
    size: float
    cx: float
    cy: float
    rotation: float
    bg_hue: float  # [0, 1): background hue (muted in every style)
    bg_tone: float  # [0, 1): background lightness / warmth variant
    bg_angle: float  # direction of the background gradient
    light_angle: float  # direction the light comes from (photo shading, shadow)
    seed: int  # drives every texture inside a style

    def __post_init__(self) -> None:
        for field, options in (("style", STYLES), ("shape", SHAPES), ("colour", COLOURS)):
            value = getattr(self, field)
            if value not in options:
                raise ValueError(f"unknown {field} {value!r}; expected one of {', '.join(options)}")

    def as_dict(self) -> dict:
        return asdict(self)


def _resolve(name: str, value, options: Sequence[str]) -> str | None:
    """Accept None, a name or an index into ``options``; return the name."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if not 0 <= int(value) < len(options):
            raise ValueError(f"{name} index {value} out of range 0..{len(options) - 1}")
        return options[int(value)]
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; expected one of {', '.join(options)}")
    return value


def sample_scenes(
    n: int,
    rng: np.random.Generator,
    style: str | int | None = None,
    shape: str | int | None = None,
    colour: str | int | None = None,
) -> list[Scene]:
    """``n`` random scenes; a given style/shape/colour (name or index) is held fixed, None = uniform."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    fixed = {
        "style": _resolve("style", style, STYLES),
        "shape": _resolve("shape", shape, SHAPES),
        "colour": _resolve("colour", colour, COLOURS),
    }
    options = {"style": STYLES, "shape": SHAPES, "colour": COLOURS}
    # Draw every column in one call each, in a fixed order, so a seed gives the same scenes
    # whatever is held fixed elsewhere (columns that are fixed are still drawn and ignored).
    picks = {k: rng.integers(0, len(options[k]), size=n) for k in ("style", "shape", "colour")}
    size = rng.uniform(*SIZE_RANGE, size=n)
    margin = CENTRE_MARGIN * size + 1.0
    cx = margin + rng.uniform(0.0, 1.0, size=n) * (RESOLUTION - 2 * margin)
    cy = margin + rng.uniform(0.0, 1.0, size=n) * (RESOLUTION - 2 * margin)
    rotation = rng.uniform(0.0, 2 * math.pi, size=n)
    bg_hue = rng.uniform(0.0, 1.0, size=n)
    bg_tone = rng.uniform(0.0, 1.0, size=n)
    bg_angle = rng.uniform(0.0, 2 * math.pi, size=n)
    # light from the upper half (screen y points down), as in most photographs
    light_angle = rng.uniform(-math.pi * 0.9, -math.pi * 0.1, size=n)
    seeds = rng.integers(0, 2**31 - 1, size=n)
    scenes = []
    for i in range(n):
        scenes.append(
            Scene(
                style=fixed["style"] or STYLES[picks["style"][i]],
                shape=fixed["shape"] or SHAPES[picks["shape"][i]],
                colour=fixed["colour"] or COLOURS[picks["colour"][i]],
                size=float(size[i]),
                cx=float(cx[i]),
                cy=float(cy[i]),
                rotation=float(rotation[i]),
                bg_hue=float(bg_hue[i]),
                bg_tone=float(bg_tone[i]),
                bg_angle=float(bg_angle[i]),
                light_angle=float(light_angle[i]),
                seed=int(seeds[i]),
            )
        )
    return scenes


# ----------------------------------------------------------------------------- geometry


def _grid() -> torch.Tensor:
    """Pixel centres, (H*W, 2) as (x, y)."""
    c = torch.arange(RESOLUTION, dtype=torch.float32) + 0.5
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)


_GRID = _grid()
_POLY_VERTS = 10  # every polygon is padded to 10 vertices (the star's count)


def _unit_polygon(shape: str) -> np.ndarray:
    """Vertices (10, 2) of the shape scaled to equal area with the unit circle, centred at 0."""
    if shape == "square":
        h = math.sqrt(math.pi) / 2  # side sqrt(pi): area pi
        v = [(-h, -h), (h, -h), (h, h), (-h, h)]
    elif shape == "triangle":
        r = math.sqrt(4 * math.pi / (3 * math.sqrt(3)))  # circumradius with area pi
        v = [(r * math.cos(a), r * math.sin(a)) for a in (-math.pi / 2 + k * 2 * math.pi / 3 for k in range(3))]
    elif shape == "star":
        inner = 0.45
        # area of a 5-pointed star with outer radius R and inner radius inner*R: 5 R^2 inner sin(pi/5)
        r = math.sqrt(math.pi / (5 * inner * math.sin(math.pi / 5)))
        v = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rad = r if k % 2 == 0 else r * inner
            v.append((rad * math.cos(a), rad * math.sin(a)))
    else:
        raise ValueError(f"not a polygon: {shape}")
    v = np.asarray(v, dtype=np.float64)
    # pad by repeating the last vertex: zero-length edges change neither distance nor winding
    pad = np.repeat(v[-1:], _POLY_VERTS - len(v), axis=0)
    return np.concatenate([v, pad], axis=0)


_UNIT_POLYGONS = {s: _unit_polygon(s) for s in SHAPES if s != "circle"}


def _polygon_sdf(verts: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) from points (P, 2) to polygons (N, K, 2) -> (N, P)."""
    a = verts[:, :, None, :]  # (N, K, 1, 2)
    b = torch.roll(verts, -1, dims=1)[:, :, None, :]
    p = points[None, None, :, :]  # (1, 1, P, 2)
    e = b - a
    w = p - a
    ee = (e * e).sum(-1).clamp_min(1e-12)
    t = ((w * e).sum(-1) / ee).clamp(0.0, 1.0)
    d = (w - e * t[..., None]).norm(dim=-1).amin(dim=1)  # (N, P)
    # even-odd rule: count edges crossed by a ray towards +x
    ay, by_ = a[..., 1], b[..., 1]
    py, px = p[..., 1], p[..., 0]
    straddles = (ay > py) != (by_ > py)
    x_cross = a[..., 0] + (py - ay) * e[..., 0] / torch.where(e[..., 1] == 0, torch.ones_like(e[..., 1]), e[..., 1])
    inside = ((straddles & (px < x_cross)).sum(dim=1) % 2) == 1
    return torch.where(inside, -d, d)


def shape_sdf(scenes: Sequence[Scene]) -> torch.Tensor:
    """Signed distance field of each scene's object, (N, 1, 64, 64), in pixels."""
    n = len(scenes)
    out = torch.empty(n, RESOLUTION * RESOLUTION)
    centres = torch.tensor([[s.cx, s.cy] for s in scenes], dtype=torch.float32).reshape(n, 2)
    for lo in range(0, n, _CHUNK):
        idx = range(lo, min(n, lo + _CHUNK))
        verts = []
        for i in idx:
            s = scenes[i]
            if s.shape == "circle":
                verts.append(np.zeros((_POLY_VERTS, 2)))  # placeholder, replaced below
                continue
            c, si = math.cos(s.rotation), math.sin(s.rotation)
            rot = np.array([[c, -si], [si, c]])
            verts.append(_UNIT_POLYGONS[s.shape] @ rot.T * s.size + np.array([s.cx, s.cy]))
        v = torch.from_numpy(np.stack(verts)).float()
        d = _polygon_sdf(v, _GRID)
        for k, i in enumerate(idx):
            if scenes[i].shape == "circle":
                d[k] = (_GRID - centres[i]).norm(dim=1) - scenes[i].size
        out[lo : lo + len(idx)] = d
    return out.reshape(n, 1, RESOLUTION, RESOLUTION)


# ----------------------------------------------------------------------------- textures


def _rng(scene: Scene, stream: int) -> np.random.Generator:
    return np.random.default_rng([scene.seed, stream])


def _value_noise(scenes: Sequence[Scene], stream: int, cells: int, channels: int = 1) -> torch.Tensor:
    """Smooth per-scene noise in [0, 1], (N, C, 64, 64): a random cells x cells grid, upsampled bicubically."""
    grids = np.stack([_rng(s, stream).random((channels, cells + 1, cells + 1)) for s in scenes]).astype(np.float32)
    g = torch.from_numpy(grids)
    up = F.interpolate(g, size=(RESOLUTION + RESOLUTION // cells, RESOLUTION + RESOLUTION // cells), mode="bicubic", align_corners=True)
    half = RESOLUTION // cells // 2
    return up[:, :, half : half + RESOLUTION, half : half + RESOLUTION].clamp(0.0, 1.0)


def _white_noise(scenes: Sequence[Scene], stream: int, channels: int = 1) -> torch.Tensor:
    """Per-pixel uniform noise in [0, 1], (N, C, 64, 64)."""
    return torch.from_numpy(
        np.stack([_rng(s, stream).random((channels, RESOLUTION, RESOLUTION)) for s in scenes]).astype(np.float32)
    )


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorised HSV -> RGB for (N,) tensors -> (N, 3)."""
    k = torch.tensor([5.0, 3.0, 1.0])
    t = torch.remainder(k[None, :] + h[:, None] * 6.0, 6.0)
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(t, 4.0 - t), 0.0, 1.0)


def _coords() -> tuple[torch.Tensor, torch.Tensor]:
    g = _GRID.reshape(RESOLUTION, RESOLUTION, 2)
    return g[..., 0][None, None], g[..., 1][None, None]  # (1, 1, H, W) each


def _scalar(scenes: Sequence[Scene], name: str) -> torch.Tensor:
    return torch.tensor([getattr(s, name) for s in scenes], dtype=torch.float32)


def _col(x: torch.Tensor) -> torch.Tensor:
    """(N,) or (N, 3) -> broadcastable over (N, C, H, W)."""
    return x.reshape(x.shape[0], -1, 1, 1)


def _linear_gradient(scenes: Sequence[Scene]) -> torch.Tensor:
    """t in [0, 1] along each scene's bg_angle, (N, 1, H, W)."""
    x, y = _coords()
    ang = _scalar(scenes, "bg_angle")
    t = ((x - 32) * _col(torch.cos(ang)) + (y - 32) * _col(torch.sin(ang))) / 64 + 0.5
    return t.clamp(0, 1)


def _gradient(field: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences of (N, 1, H, W), replicate-padded."""
    p = F.pad(field, (1, 1, 1, 1), mode="replicate")
    gx = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) * 0.5
    gy = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) * 0.5
    return gx, gy


def _shift(field: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Translate (N, C, H, W) by (dx, dy) pixels per scene (bilinear, border values repeat)."""
    n = field.shape[0]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = -dx * 2 / RESOLUTION
    theta[:, 1, 2] = -dy * 2 / RESOLUTION
    grid = F.affine_grid(theta, list(field.shape), align_corners=False)
    return F.grid_sample(field, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _coverage(sdf: torch.Tensor, softness: float = 1.0) -> torch.Tensor:
    """Anti-aliased inside mask: linear ramp ``softness`` pixels wide across the edge."""
    return (0.5 - sdf / softness).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------- styles


def _photo(scenes, sdf, colour) -> torch.Tensor:
    n = len(scenes)
    hue, tone = _scalar(scenes, "bg_hue"), _scalar(scenes, "bg_tone")
    # muted two-tone studio backdrop
    a = _hsv_to_rgb(hue, torch.full((n,), 0.18), 0.55 + 0.25 * tone)
    b = _hsv_to_rgb(torch.remainder(hue + 0.08, 1.0), torch.full((n,), 0.12), 0.85 + 0.1 * tone)
    t = _linear_gradient(scenes)
    img = _col(a) * (1 - t) + _col(b) * t
    x, y = _coords()
    vignette = 1.0 - 0.25 * (((x - 32) ** 2 + (y - 32) ** 2) / 32**2)
    img = img * vignette
    la = _scalar(scenes, "light_angle")
    lx, ly = torch.cos(la), torch.sin(la)
    # soft cast shadow, pushed away from the light
    size = _scalar(scenes, "size")
    shadow_sdf = _shift(sdf, -lx * 0.35 * size, -ly * 0.35 * size)
    img = img * (1 - 0.5 * torch.sigmoid(-shadow_sdf / 2.0))
    # rounded relief: height rises over ~40% of the size from the edge, then a plateau
    depth = (-sdf / (0.45 * _col(size))).clamp(0, 1)
    height = torch.sqrt(1 - (1 - depth) ** 2) * 4.0
    gx, gy = _gradient(height)
    nz = torch.ones_like(gx)
    norm = torch.sqrt(gx**2 + gy**2 + nz**2)
    nx, ny, nz = -gx / norm, -gy / norm, nz / norm
    l3 = torch.stack([lx, ly, torch.full_like(lx, 0.9)], dim=1)
    l3 = l3 / l3.norm(dim=1, keepdim=True)
    ndotl = (nx * _col(l3[:, 0]) + ny * _col(l3[:, 1]) + nz * _col(l3[:, 2])).clamp_min(0)
    # Blinn half vector with the viewer straight above
    hv = l3 + torch.tensor([0.0, 0.0, 1.0])
    hv = hv / hv.norm(dim=1, keepdim=True)
    ndoth = (nx * _col(hv[:, 0]) + ny * _col(hv[:, 1]) + nz * _col(hv[:, 2])).clamp_min(0)
    # gentle falloff across the object away from the light
    cx, cy = _col(_scalar(scenes, "cx")), _col(_scalar(scenes, "cy"))
    across = ((x - cx) * _col(lx) + (y - cy) * _col(ly)) / _col(size)
    lit = _col(colour) * (0.45 + 0.6 * ndotl + 0.12 * across.clamp(-1, 1)) + 0.45 * ndoth**24
    cov = _coverage(sdf)
    img = img * (1 - cov) + lit.clamp(0, 1) * cov
    grain = _white_noise(scenes, 1) - 0.5
    return (img + 0.02 * grain).clamp(0, 1)


def _paper(scenes, warm: float) -> torch.Tensor:
    tone = _scalar(scenes, "bg_tone")
    base = torch.stack([0.97 - 0.02 * tone, 0.96 - 0.03 * tone, (0.93 - warm) - 0.04 * tone], dim=1)
    fibre = _value_noise(scenes, 10, 16) - 0.5
    grain = _white_noise(scenes, 11) - 0.5
    return _col(base) * (1 + 0.05 * fibre + 0.04 * grain)


def _sketch(scenes, sdf, colour) -> torch.Tensor:
    paper = _paper(scenes, warm=0.0)
    # light tint of the object colour, as if lightly shaded with a coloured pencil
    tint = 0.55
    fill = paper * (1 - tint) + _col(colour) * tint
    wobble = _value_noise(scenes, 20, 6, channels=2) - 0.5
    inside = torch.sigmoid(-(sdf + 1.2 * wobble[:, :1]) / 0.8)
    img = paper * (1 - inside) + fill * inside
    # hatching: parallel strokes at a per-scene angle, only inside the (wobbly) outline
    x, y = _coords()
    hatch_angle = torch.tensor([0.55 + 0.5 * _rng(s, 21).random() for s in scenes], dtype=torch.float32)
    u = x * _col(torch.cos(hatch_angle)) + y * _col(torch.sin(hatch_angle))
    jitter = _value_noise(scenes, 22, 8)
    strokes = (torch.cos(2 * math.pi * (u / 3.2 + 0.6 * jitter)) > 0.55).float()
    img = img * (1 - 0.35 * strokes * inside * (0.6 + 0.4 * jitter))
    # two slightly offset pencil outlines, the second fainter, with pressure varying along them
    pressure = 0.6 + 0.4 * _value_noise(scenes, 23, 5)
    line1 = torch.exp(-((sdf + 1.0 * wobble[:, :1]) ** 2) / (2 * 0.55**2))
    line2 = torch.exp(-((sdf + 0.9 + 1.5 * wobble[:, 1:]) ** 2) / (2 * 0.45**2))
    ink = (pressure * (0.85 * line1 + 0.45 * line2)).clamp(0, 1)
    graphite = 0.22
    img = img * (1 - ink) + graphite * ink
    return img.clamp(0, 1)


_RETRO_BG = torch.tensor(
    [
        [0.16, 0.17, 0.33],
        [0.20, 0.36, 0.40],
        [0.42, 0.42, 0.46],
        [0.85, 0.82, 0.70],
        [0.30, 0.24, 0.22],
        [0.62, 0.74, 0.78],
    ]
)


def _quantise(x: torch.Tensor, levels: int) -> torch.Tensor:
    return torch.round(x.clamp(0, 1) * (levels - 1)) / (levels - 1)


def _pixel_art(scenes, sdf, colour) -> torch.Tensor:
    b = PIXEL_BLOCK
    # each block takes the field's value at its centre pixel: hard edges, no anti-aliasing
    block = torch.arange(RESOLUTION) // b  # block index of every pixel row/column
    centre_px = (torch.arange(int(block[-1]) + 1) * b + b // 2).clamp_max(RESOLUTION - 1)
    sdf_b = sdf[:, :, centre_px][:, :, :, centre_px]
    xb = (centre_px.float() + 0.5)[None, None, None, :]
    yb = (centre_px.float() + 0.5)[None, None, :, None]
    bg_idx = torch.tensor([int(s.bg_hue * len(_RETRO_BG)) % len(_RETRO_BG) for s in scenes])
    bg = _RETRO_BG[bg_idx]
    # a faint block checkerboard, only on backgrounds with bg_tone > 0.5
    nb = len(centre_px)
    checker = ((torch.arange(nb)[:, None] + torch.arange(nb)[None, :]) % 2).float()
    dim = 0.1 * (_scalar(scenes, "bg_tone") > 0.5).float()
    img = _col(bg) * (1 - _col(dim) * checker[None, None])
    la = _scalar(scenes, "light_angle")
    lx, ly = torch.cos(la), torch.sin(la)
    cx, cy = _col(_scalar(scenes, "cx")), _col(_scalar(scenes, "cy"))
    size = _col(_scalar(scenes, "size"))
    along = ((xb - cx) * _col(lx) + (yb - cy) * _col(ly)) / size
    base = _col(colour)
    # three-tone cel shading from a small palette: highlight towards the light, shade away from it
    light = base + (1 - base) * 0.45
    shade = base * 0.6
    obj = _quantise(torch.where(along > 0.45, light, torch.where(along < -0.35, shade, base)), 6)
    inside = (sdf_b < 0).float()
    outline = ((sdf_b >= 0) & (sdf_b < b * 0.9)).float()
    img = img * (1 - inside) + obj * inside
    img = img * (1 - outline) + 0.08 * outline
    return img[:, :, block][:, :, :, block]


def _neon(scenes, sdf, colour) -> torch.Tensor:
    n = len(scenes)
    hue, tone = _scalar(scenes, "bg_hue"), _scalar(scenes, "bg_tone")
    dark = _hsv_to_rgb(hue, torch.full((n,), 0.5), 0.05 + 0.07 * tone)
    t = _linear_gradient(scenes)
    img = _col(dark) * (0.6 + 0.8 * t)
    # a neon tube is brighter and more saturated than the pigment
    c = _col(colour)
    tube = (c / c.amax(dim=1, keepdim=True)).clamp(0, 1)
    d = sdf.abs()
    halo = torch.exp(-d / 4.0) * 0.55 + torch.exp(-d / 1.6) * 0.5
    core = torch.exp(-(d**2) / (2 * 0.6**2))
    flicker = 0.9 + 0.1 * _value_noise(scenes, 30, 4)
    img = img + tube * halo * flicker + 0.75 * core * (0.5 + 0.5 * tube)
    img = img + tube * 0.08 * _coverage(sdf)
    return img.clamp(0, 1)


def _watercolor(scenes, sdf, colour) -> torch.Tensor:
    paper = _paper(scenes, warm=0.04)
    # a faint background wash of a muted hue
    n = len(scenes)
    hue = _scalar(scenes, "bg_hue")
    wash = _hsv_to_rgb(hue, torch.full((n,), 0.25), torch.full((n,), 0.95))
    wash_a = 0.35 * _value_noise(scenes, 40, 3)
    img = paper * (1 - wash_a * (1 - _col(wash)))
    # pigment bleeds past an irregular edge; density varies in blotches; pigment pools at the rim
    edge_noise = _value_noise(scenes, 41, 8) - 0.5
    blotch = _value_noise(scenes, 42, 5)
    fine = _value_noise(scenes, 43, 16)
    s = sdf + 2.2 * edge_noise
    body = torch.sigmoid(-s / 1.3)
    rim = torch.exp(-((s + 1.2) ** 2) / (2 * 1.1**2)) * body
    bleed = torch.sigmoid(-(s - 2.5) / 2.0) * 0.2
    density = (0.45 + 0.35 * blotch + 0.1 * fine) * body + 0.4 * rim + bleed
    density = density.clamp(0, 1)
    # subtractive mixing: the pigment filters the paper
    img = img * (1 - density * (1 - _col(colour)))
    return img.clamp(0, 1)


_STYLE_FNS = {"photo": _photo, "sketch": _sketch, "pixel art": _pixel_art, "neon": _neon, "watercolor": _watercolor}


def render(scenes: Sequence[Scene]) -> torch.Tensor:
    """Render scenes to (N, 3, 64, 64) float32 in [-1, 1]; identical scenes give identical pixels."""
    scenes = list(scenes)
    n = len(scenes)
    out = torch.empty(n, 3, RESOLUTION, RESOLUTION)
    if n == 0:
        return out
    for s in scenes:
        if not isinstance(s, Scene):
            raise TypeError(f"render expects Scene objects, got {type(s).__name__}")
    sdf = shape_sdf(scenes)
    colour = torch.tensor([PALETTE[s.colour] for s in scenes], dtype=torch.float32)
    for style, fn in _STYLE_FNS.items():
        idx = [i for i, s in enumerate(scenes) if s.style == style]
        if not idx:
            continue
        sub = [scenes[i] for i in idx]
        ix = torch.tensor(idx)
        out[ix] = fn(sub, sdf[ix], colour[ix])
    return out * 2 - 1


def scene_labels(scenes: Sequence[Scene]) -> dict[str, torch.Tensor]:
    """Ground-truth labels: style/shape/colour indices (LongTensor) and position (N, 2) float (x, y)."""
    return {
        "style": torch.tensor([STYLES.index(s.style) for s in scenes], dtype=torch.long),
        "shape": torch.tensor([SHAPES.index(s.shape) for s in scenes], dtype=torch.long),
        "colour": torch.tensor([COLOURS.index(s.colour) for s in scenes], dtype=torch.long),
        "position": torch.tensor([[s.cx, s.cy] for s in scenes], dtype=torch.float32).reshape(len(scenes), 2),
    }


def render_batch(n: int, seed: int, **fixed) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``n`` random scenes from ``seed`` (``style=``, ``shape=``, ``colour=`` may be fixed) -> (images, labels)."""
    unknown = set(fixed) - {"style", "shape", "colour"}
    if unknown:
        raise TypeError(f"render_batch got unexpected keyword(s): {', '.join(sorted(unknown))}")
    scenes = sample_scenes(n, np.random.default_rng(seed), **fixed)
    return render(scenes), scene_labels(scenes)
