"""Where photo -> neon loses shapes: the judge's shape confusion between base and adapted samples.

Adapts the built-in generator from "photo" to "neon" (the preset filled in for options left
out; by default without the stop and for 450 steps, the closest text-only run to the target),
or takes a saved generator with --generator. Then, on n fixed latents of both generators, it
reports the judge's shape confusion matrix (rows: the base sample's shape, columns: its adapted
twin's), the judge's style shares, how often CLIP's own zero-shot shape reading of the adapted
sample agrees with the base one, and draws base / adapted pairs labelled with the judge's shapes.

It also measures, per built-in CLIP, what the text asks for: the cosine between the text
direction (neon - photo) and the image direction from the base generator's samples to true
neon renders; how well the bare text direction and per-scene texts ("neon of a red circle" -
"photo of a red circle") agree with paired render directions (the same scene as photo and as
neon); and, per vision layer, the structure loss (token self-similarity) between a photo and
its neon render against that between two photos whose shapes differ.

    python experiments/toyworld/toyworld_neon_shapes.py --out benchmarks/results/toyworld_neon_shapes.json \
        --figure docs/img/toy_neon_shapes.png
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--options", default='{"stop_share": 0, "iters": 450}', help="JSON object of adapt options")
    p.add_argument("--generator", default=None, help="judge this saved generator instead of adapting")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="latent seed of the judged samples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="JSON results")
    p.add_argument("--figure", type=Path, default=None, help="PNG of base / adapted pairs")
    p.add_argument("--columns", type=int, default=12)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    import nada
    from nada.files import atomic_write_text
    from nada.toyworld.assets import builtin_clip_paths
    from nada.toyworld.captions import zero_shot_prompts
    from nada.toyworld.evaluate import generate
    from nada.toyworld.judge import load_judge
    from nada.toyworld.renderer import SHAPES, STYLES

    options = json.loads(args.options)
    t0 = time.time()
    if args.generator:
        G = nada.load_generator(args.generator)
        steps = None
    else:
        result = nada.adapt("photo", "neon", generator="toy", progress=False, **options)
        G, steps = result.generator.cpu().eval(), result.metrics["steps"]
    wall = time.time() - t0
    base, judge = nada.load_generator("toy"), load_judge()
    x, xb = generate(G, args.n, args.seed), generate(base, args.n, args.seed)
    pred, pred_b = judge.predict(x), judge.predict(xb)
    s, sb = pred["shape"], pred_b["shape"]
    confusion = torch.zeros(len(SHAPES), len(SHAPES), dtype=torch.long)
    for a, b in zip(sb.tolist(), s.tolist()):
        confusion[a, b] += 1
    is_neon = pred["style"] == STYLES.index("neon")

    clip_agreement = {}
    clips = [nada.load_clip(str(path)) for path in builtin_clip_paths()]
    for path, clip in zip(builtin_clip_paths(), clips):
        texts = torch.nn.functional.normalize(
            torch.stack([clip.encode_texts(ps).mean(0) for ps in zero_shot_prompts("shape")]), dim=-1)
        with torch.no_grad():
            read, read_b = (clip.encode_images(x) @ texts.T).argmax(1), (clip.encode_images(xb) @ texts.T).argmax(1)
        clip_agreement[path.name] = {"kept_vs_clip_base": float((read == read_b).float().mean()),
                                     "base_vs_judge_base": float((read_b == sb).float().mean())}

    directions = clip_directions({path.name: clip for path, clip in zip(builtin_clip_paths(), clips)}, args.seed)
    report = {
        "options": None if args.generator else options, "generator": args.generator, "steps": steps,
        "adapt_wall_s": None if args.generator else round(wall, 1), "n": args.n, "seed": args.seed,
        "shapes": list(SHAPES),
        "confusion_base_to_adapted": confusion.tolist(),
        "shape_kept": float((s == sb).float().mean()),
        "shape_kept_per_base_shape": {name: float(confusion[i, i] / max(1, int(confusion[i].sum()))) for i, name in enumerate(SHAPES)},
        "shape_kept_when_judged_neon": float((s == sb)[is_neon].float().mean()) if is_neon.any() else None,
        "style_shares": {name: float((pred["style"] == i).float().mean()) for i, name in enumerate(STYLES)},
        "clip_shape_reading": clip_agreement,
        "clip_directions": directions,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("shape_kept", "shape_kept_per_base_shape", "style_shares", "clip_shape_reading", "clip_directions")}))
    print("rows: base shape, columns: adapted shape", list(SHAPES))
    print(confusion)

    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from nada.imaging import to_uint8

        k = min(args.columns, args.n)
        fig, axes = plt.subplots(2, k, figsize=(1.2 * k, 2.9))
        for j in range(k):
            for row, (imgs, labels, name) in enumerate(((xb, sb, "base"), (x, s, "neon"))):
                ax = axes[row, j]
                ax.imshow(to_uint8(imgs[j:j + 1])[0])
                flipped = row == 1 and labels[j] != sb[j]
                ax.set_title(SHAPES[labels[j]], fontsize=7, color="crimson" if flipped else "black")
                ax.set_xticks([]), ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(name, fontsize=8)
        fig.suptitle("judge's shape for each base sample and its adapted twin (red: changed)", fontsize=8)
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.figure.with_suffix(".tmp.png")
        fig.savefig(tmp, dpi=130)
        tmp.replace(args.figure)
    return 0


@torch.no_grad()
def clip_directions(clips: dict, seed: int, n: int = 256) -> dict:
    """The text-versus-image and structure figures of the module docstring, per named CLIP."""
    import numpy as np

    import nada
    from nada.guidance.losses import structure_loss
    from nada.toyworld.evaluate import generate
    from nada.toyworld.renderer import Scene, render, sample_scenes

    F = torch.nn.functional
    swap = {"circle": "square", "square": "circle", "triangle": "star", "star": "triangle"}
    scenes = sample_scenes(n, np.random.default_rng(seed + 3), style="photo")
    photo = render(scenes)
    neon = render([Scene(**{**sc.as_dict(), "style": "neon"}) for sc in scenes])
    other_shape = render([Scene(**{**sc.as_dict(), "shape": swap[sc.shape]}) for sc in scenes[:64]])
    samples = generate(nada.load_generator("toy"), n, seed + 5)
    out = {}
    for name, clip in clips.items():
        text = clip.encode_texts(["neon"])[0] - clip.encode_texts(["photo"])[0]
        e_photo, e_neon = clip.encode_images(photo), clip.encode_images(neon)
        paired = F.normalize(e_neon - e_photo, dim=1)
        per_scene = torch.stack([
            clip.encode_texts([f"neon of a {sc.colour} {sc.shape}"])[0] - clip.encode_texts([f"photo of a {sc.colour} {sc.shape}"])[0]
            for sc in scenes])
        structure = {}
        for layer in range(1, clip.num_vision_layers + 1):
            def tokens(images):
                return clip.encode_images_with_hidden(images, [layer])[1][0][:, 1:]
            structure[layer] = {"photo_vs_neon": float(structure_loss([tokens(neon[:64])], [tokens(photo[:64])])),
                                "photo_vs_other_shape": float(structure_loss([tokens(other_shape)], [tokens(photo[:64])]))}
        out[name] = {
            "cos_text_vs_samples_to_neon_renders": float(F.cosine_similarity(text, e_neon.mean(0) - clip.encode_images(samples).mean(0), dim=0)),
            "paired_cos_bare_text": float((paired @ F.normalize(text, dim=0)).mean()),
            "paired_cos_per_scene_text": float((paired * F.normalize(per_scene, dim=1)).sum(1).mean()),
            "structure_loss_by_layer": structure,
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
