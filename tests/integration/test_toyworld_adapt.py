"""Adaptation works, measured: a short run on the built-in world moves the judge's verdict.

The judge never takes part in training; it only reads the result. Base and adapted
generators are compared on the same latents.
"""
from __future__ import annotations

import nada
from nada.toyworld.evaluate import evaluate


def test_short_builtin_adaptation_makes_sketches_the_judge_recognises():
    # At most half the built-in preset's 300 adaptive steps; the preset stops once CLIP reads
    # every check sample as a sketch (step 100 here: measured 0.99, shape 0.94, colour 0.96).
    result = nada.adapt("photo", "sketch", iters=150, progress=False)
    report = evaluate(result.generator, ["style=sketch"], n=128, seed=0)
    assert report["base_target_rate"] <= 0.05  # the base generator draws photos, not sketches
    assert report["target_rate"] >= 0.8
    # content survives the change of style
    assert report["preserved"]["colour"] >= 0.7 and report["preserved"]["shape"] >= 0.7


def test_short_builtin_colour_edit_recolours_objects_of_every_colour():
    # A change of content: every object turns blue, whatever its colour. The preset's source
    # groups give each sample its own colour as the source ("green" -> "blue" for a green object).
    # A content edit trains every step (the preset's stop is for styles; CLIP reads half-recoloured
    # objects as blue by step 110, when the judge still sees smeared, greyish ones).
    # Measured: blue 0.20 -> 0.99 at step 150, style kept 1.00, shape 0.95.
    result = nada.adapt("red", "blue", iters=150, progress=False)
    assert result.metrics["content_edit"] and result.metrics["steps"] == 150
    report = evaluate(result.generator, ["colour=blue"], n=128, seed=0)
    assert report["base_target_rate"] <= 0.3  # about one object in six is blue to begin with
    assert report["target_rate"] >= 0.8
    # the objects stay photos of the same shapes
    assert report["preserved"]["style"] >= 0.7 and report["preserved"]["shape"] >= 0.7
