"""The built-in world's adaptation targets: six cases a user would run, with the judge's thresholds.

Each case: ``(source text, target text, expectations for nada toyworld evaluate, thresholds)``.
Thresholds are minimum shares for ``target_rate`` and each preserved label, and a maximum
``position_shift_px``.
"""
from __future__ import annotations

CASES: dict[str, tuple[str, str, list[str], dict[str, float]]] = {
    "sketch": ("photo", "sketch", ["style=sketch"], {"target_rate": 0.90, "shape": 0.90, "colour": 0.90, "position_shift_px": 3.0}),
    "pixel art": ("photo", "pixel art", ["style=pixel art"], {"target_rate": 0.80, "shape": 0.80, "colour": 0.80}),
    "neon": ("photo", "neon", ["style=neon"], {"target_rate": 0.80, "shape": 0.80, "colour": 0.80}),
    "watercolor": ("photo", "watercolor", ["style=watercolor"], {"target_rate": 0.80, "shape": 0.80, "colour": 0.80}),
    "circle->square": ("a photo of a circle", "a photo of a square", ["shape=square"], {"target_rate": 0.70, "colour": 0.80}),
    "red->blue": ("red", "blue", ["colour=blue"], {"target_rate": 0.70, "shape": 0.80}),
}


def passed(case: str, figures: dict[str, float]) -> dict[str, bool]:
    """Per threshold of ``case``, whether ``figures`` (target_rate, position_shift_px, preserved labels) meet it."""
    return {k: (figures[k] <= v if k == "position_shift_px" else figures[k] >= v) for k, v in CASES[case][3].items()}
