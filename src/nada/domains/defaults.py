"""The parameterisations a run may train and their own defaults (no imports: the config reads it).

``PARAM_DEFAULTS[param]`` holds the options a parameterisation brings when the user leaves them
out. Layering (:func:`nada.adapt.config.merge`): option defaults < the generator's preset <
these < a config file < flags / keyword arguments. A preset's ``lr``/``iters`` were tuned for
fine-tuning ~30 M weights, so a compact parameterisation's own values replace them; anything a
user writes (file, flag, keyword) wins over both.

Values: HyperDomainNet's text-driven configs train the domain-modulation vector with Adam at
lr 0.1 for 300 iterations (``configs/td_single_*.yaml``); StyleDomain's text-driven StyleSpace
config uses lr 0.05 for 250 iterations (``SimilarDomains/configs/td_nada_ffhq_sdelta.yaml``), which
stylespace+ keeps; its Affine+ runs (few-shot GAN training, ``DissimilarDomains/README.md``) use a
generator lr of 0.02, with our 300 iterations. HyperDomainNet's multi-domain config trains its
hypernetwork with Adam at lr 5e-5 (betas 0, 0.999) for 10 000 steps of batch 96; ours is smaller and
trains faster (``hyper``: chosen on the built-in world, docs/domains.md).
"""
from __future__ import annotations

PARAMS = ("finetune", "modulation", "stylespace", "stylespace+", "affine+", "hyper")

PARAM_DEFAULTS: dict[str, dict[str, float | int]] = {
    "finetune": {},
    "modulation": {"lr": 0.1, "iters": 300},
    "stylespace": {"lr": 0.05, "iters": 250},
    "stylespace+": {"lr": 0.05, "iters": 250},
    "affine+": {"lr": 0.02, "iters": 300},
    # one hypernetwork for several domains: every step trains every domain a little, so more steps;
    # no early stop (it reads one target)
    "hyper": {"lr": 0.0005, "iters": 900, "stop_share": 0.0},
}
