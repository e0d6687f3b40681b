"""Adaptation works, measured: a short run on the built-in world moves the judge's verdict.

The judge never takes part in training; it only reads the result. Base and adapted
generators are compared on the same latents.
"""
from __future__ import annotations

import nada
from nada.toyworld.evaluate import evaluate


def test_short_builtin_adaptation_makes_sketches_the_judge_recognises():
    # Half the built-in preset's 300 adaptive steps. On the shipped generator the judge's verdict
    # flips between 100 steps (0.13) and 120 (1.0); 150 leaves a margin (measured 1.0, 33 s).
    result = nada.adapt("photo", "sketch", iters=150, progress=False)
    report = evaluate(result.generator, ["style=sketch"], n=128, seed=0)
    assert report["base_target_rate"] <= 0.05  # the base generator draws photos, not sketches
    assert report["target_rate"] >= 0.4
    # content survives the change of style
    assert report["preserved"]["colour"] >= 0.5 and report["preserved"]["shape"] >= 0.5
