"""Adaptation works, measured: a short run on the built-in world moves the judge's verdict.

The judge never takes part in training; it only reads the result. Base and adapted
generators are compared on the same latents.
"""
from __future__ import annotations

import nada
from nada.toyworld.evaluate import evaluate


def test_short_builtin_adaptation_makes_sketches_the_judge_recognises():
    # 40 steps, all layers at a higher lr: the built-in preset's 150 adaptive steps, compressed
    result = nada.adapt("photo", "sketch", iters=40, layers="all", lr=0.005, progress=False)
    report = evaluate(result.generator, ["style=sketch"], n=128, seed=0)
    assert report["base_target_rate"] <= 0.05  # the base generator draws photos, not sketches
    assert report["target_rate"] >= 0.4
    # content survives the change of style
    assert report["preserved"]["colour"] >= 0.5 and report["preserved"]["shape"] >= 0.5
