"""The built-in world: the shipped base generator loads through the public API and draws photos."""
from __future__ import annotations

from nada import load_generator
from nada.toyworld.evaluate import coverage


def test_builtin_generator_loads_and_draws_photos():
    G = load_generator("toy")
    assert (G.resolution, G.num_ws) == (64, 10) and G.w_avg_ready
    report = coverage(G, n=200, seed=3)
    assert report["style_shares"]["photo"] >= 0.9
    assert sum(report["pairs"].values()) == 200
