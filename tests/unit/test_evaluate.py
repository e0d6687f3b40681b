"""CLIP Quality and Diversity (nada.metrics, `nada evaluate`) against straightforward float64 computations."""
from __future__ import annotations

import itertools
import json

import pytest
import torch

from fixtures import make_tiny_generator
from nada.cli import main
from nada.generators.checkpoints import save_generator
from nada.guidance.clip import load_clip
from nada.metrics import EmbeddingSums, MetricsError, evaluate, pairwise_diversity, quality_diversity
from nada.sampling import sample_images


def reference(images: torch.Tensor, text_embedding: torch.Tensor, clip) -> tuple[float, float]:
    """Quality and Diversity as the 004 seed writes them, one explicit pair at a time, in float64."""
    e = clip.encode_images(images).double()
    t = text_embedding.double()
    t = t / t.norm()
    cos = lambda a, b: float(a @ b) / (float(a.norm()) * float(b.norm()))  # noqa: E731
    quality = sum(cos(t, e[i]) for i in range(len(e))) / len(e)
    return quality, reference_diversity(e)


def reference_diversity(e: torch.Tensor) -> float:
    e = e.double()
    pairs = [1 - float(e[i] @ e[j]) / (float(e[i].norm()) * float(e[j].norm()))
             for i, j in itertools.combinations(range(len(e)), 2)]
    return sum(pairs) / len(pairs)


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_clip(str(tiny_clip_dir))


@pytest.fixture(scope="module")
def clip_b(tiny_clip_dir_b):
    return load_clip(str(tiny_clip_dir_b))


def random_images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_quality_and_diversity_equal_the_float64_pairwise_loop(clip):
    images = random_images(7)
    got = quality_diversity(images, "a sketch", clip)  # one CLIP batch, as the reference
    split = quality_diversity(images, "a sketch", clip, batch_size=3)  # float32 noise of other batch shapes only
    assert split["quality"] == pytest.approx(got["quality"], abs=1e-6)
    assert split["diversity"] == pytest.approx(got["diversity"], abs=1e-6)
    q, d = reference(images, clip.encode_texts(["a sketch"])[0], clip)
    assert got["quality"] == pytest.approx(q, rel=1e-9, abs=1e-12)
    assert got["diversity"] == pytest.approx(d, rel=1e-9, abs=1e-12)
    assert got["n"] == 7 and got["clips"] == [clip.name]
    assert got["per_clip"] == {clip.name: {"quality": got["quality"], "diversity": got["diversity"]}}


@pytest.mark.parametrize("n, dim, scale", [(2, 3, 1.0), (9, 5, 1.0), (40, 16, 1e3), (25, 4, 1e-4)])
def test_closed_form_diversity_equals_the_pairwise_loop(n, dim, scale):
    e = torch.randn(n, dim, generator=torch.Generator().manual_seed(n), dtype=torch.float64) * scale + 0.3 * scale
    assert pairwise_diversity(e) == pytest.approx(reference_diversity(e), rel=1e-10, abs=1e-12)


def test_closed_form_edge_cases():
    same = torch.ones(6, 4)
    assert pairwise_diversity(same) == pytest.approx(0.0, abs=1e-12)
    opposite = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert pairwise_diversity(opposite) == pytest.approx(2.0, abs=1e-12)
    with pytest.raises(MetricsError, match="at least two"):
        pairwise_diversity(torch.ones(1, 4))


def test_sums_do_not_depend_on_the_batch_split():
    e = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    t = torch.randn(8, generator=torch.Generator().manual_seed(2))
    whole, pieces = EmbeddingSums(t), EmbeddingSums(t)
    whole.add(e)
    for chunk in e.split(7):
        pieces.add(chunk)
    assert pieces.n == whole.n == 50
    assert pieces.quality == pytest.approx(whole.quality, abs=1e-13)
    assert pieces.diversity == pytest.approx(whole.diversity, abs=1e-13)


def test_several_clips_report_each_and_their_mean(clip, clip_b):
    images = random_images(5, seed=3)
    got = quality_diversity(images, "a red square", [clip, clip_b])
    for c in (clip, clip_b):
        q, d = reference(images, c.encode_texts(["a red square"])[0], c)
        assert got["per_clip"][c.name] == pytest.approx({"quality": q, "diversity": d}, rel=1e-9, abs=1e-12)
    assert got["quality"] == pytest.approx(sum(v["quality"] for v in got["per_clip"].values()) / 2, abs=1e-15)
    assert got["diversity"] == pytest.approx(sum(v["diversity"] for v in got["per_clip"].values()) / 2, abs=1e-15)
    with pytest.raises(MetricsError, match="twice"):
        quality_diversity(images, "a red square", [clip, clip])


def test_templates_average_the_prompts(clip):
    from nada.guidance.templates import IMAGENET_TEMPLATES

    images = random_images(4, seed=5)
    got = quality_diversity(images, "dog", clip, templates=True)
    t = torch.nn.functional.normalize(clip.encode_texts([p.format("dog") for p in IMAGENET_TEMPLATES]).double(), dim=1).mean(0)
    assert got["quality"] == pytest.approx(reference(images, t, clip)[0], rel=1e-9, abs=1e-12)
    assert got["quality"] != pytest.approx(quality_diversity(images, "dog", clip)["quality"], abs=1e-6)


def test_words_the_clip_cannot_read_are_refused(clip):
    with pytest.raises(MetricsError, match="'zebra'"):
        quality_diversity(random_images(3), "a zebra", clip)
    with pytest.raises(MetricsError, match="empty"):
        quality_diversity(random_images(3), "  ", clip)


def test_template_words_the_clip_cannot_read_are_refused():
    class WordClip:  # knows only a few words, like the built-in world's CLIPs
        name = "words"

        def unknown_words(self, text):
            return [w for w in text.replace(".", " ").split() if w not in {"a", "sketch", "photo", "of"}]

        def encode_texts(self, texts):
            return torch.ones(len(texts), 4)

        def encode_images(self, images, batch_size=None):
            return images.flatten(1)[:, :4]

    images = random_images(3)
    assert quality_diversity(images, "a sketch", WordClip())["n"] == 3
    with pytest.raises(MetricsError, match="template word"):
        quality_diversity(images, "a sketch", WordClip(), templates=True)
    assert quality_diversity(images, "a sketch", WordClip(), templates=["a photo of {}"])["n"] == 3


def test_evaluate_draws_seeded_samples_and_does_not_depend_on_the_batch_size(clip):
    G = make_tiny_generator(seed=0)
    images = sample_images(G, 6, seed=3, truncation_psi=0.7)
    q, d = reference(images, clip.encode_texts(["a sketch"])[0], clip)
    reports = [evaluate(G, "a sketch", clip=clip, n=6, seed=3, truncation=0.7, batch_size=b, progress=False)
               for b in (1, 4, 6)]
    for r in reports:
        assert r["quality"] == pytest.approx(q, abs=1e-6)
        assert r["diversity"] == pytest.approx(d, abs=1e-6)
        assert {k: r[k] for k in ("n", "seed", "truncation", "templates", "clips", "target_text")} == {
            "n": 6, "seed": 3, "truncation": 0.7, "templates": False, "clips": [clip.name], "target_text": "a sketch"}
        assert "per_clip" not in r
    json.dumps(reports[0])  # JSON-able
    # the same call twice gives the same figures
    assert evaluate(G, "a sketch", clip=clip, n=6, seed=3, truncation=0.7, batch_size=4, progress=False) == reports[1]


def test_evaluate_takes_a_generator_view(clip):
    G = make_tiny_generator(seed=1)

    class View:  # what a --domain view offers: mapping, synthesis, z_dim (and parameters for the device)
        z_dim = G.z_dim

        def mapping(self, z, **kw):
            return G.mapping(z, **kw)

        def synthesis(self, ws, **kw):
            return G.synthesis(ws, **kw).flip(-1)

        def parameters(self):
            return G.parameters()

        def noise_buffers(self):
            return G.noise_buffers()

    got = evaluate(View(), "a cat", clip=clip, n=4, seed=0, progress=False)
    images = sample_images(G, 4, seed=0).flip(-1)
    q, d = reference(images, clip.encode_texts(["a cat"])[0], clip)
    assert got["quality"] == pytest.approx(q, abs=1e-6) and got["diversity"] == pytest.approx(d, abs=1e-6)


@pytest.mark.parametrize("kw, match", [
    (dict(n=1), "n must be"), (dict(n=100_001), "n must be"), (dict(truncation=float("nan")), "finite"),
    (dict(seed=-1), "seeds"), (dict(seed=2**63 - 2, n=3), "seeds"), (dict(batch_size=0), "batch size"),
    (dict(n=2.5), "integer"),
])
def test_evaluate_refuses_bad_numbers(clip, kw, match):
    with pytest.raises(MetricsError, match=match):
        evaluate(make_tiny_generator(), "a sketch", clip=clip, **{"n": 4, **kw})


def test_non_finite_samples_are_refused(clip):
    G = make_tiny_generator()
    with torch.no_grad():
        next(p for n, p in G.named_parameters() if not n.startswith("style")).fill_(float("nan"))
    with pytest.raises(MetricsError, match="non-finite"):
        evaluate(G, "a sketch", clip=clip, n=2, progress=False)


# ----------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def saved_generator(tmp_path_factory):
    return save_generator(make_tiny_generator(seed=2), tmp_path_factory.mktemp("gen") / "tiny.safetensors")


def test_cli_json_report_equals_the_library(saved_generator, tiny_clip_dir, clip, capsys):
    argv = ["evaluate", "--generator", str(saved_generator), "--target", "a blue star", "--clip", str(tiny_clip_dir),
            "--n", "5", "--seed", "7", "--truncation", "0.5", "--batch-size", "2", "--device", "cpu", "--no-progress"]
    assert main(argv + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expected = evaluate(str(saved_generator), "a blue star", clip=clip, n=5, seed=7, truncation=0.5, batch_size=2,
                        progress=False)
    assert out["generator"] == str(saved_generator)
    assert {k: out[k] for k in ("quality", "diversity")} == pytest.approx({k: expected[k] for k in ("quality", "diversity")},
                                                                       abs=1e-9)
    assert {k: v for k, v in out.items() if k not in ("quality", "diversity")} == \
        {k: v for k, v in expected.items() if k not in ("quality", "diversity")}
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and captured.out.startswith(f"quality {out['quality']:.4f}, diversity")


def test_cli_several_clips(saved_generator, tiny_clip_dir, tiny_clip_dir_b, capsys):
    assert main(["evaluate", "--generator", str(saved_generator), "--target", "a dog", "--clip", str(tiny_clip_dir),
                 "--clip", str(tiny_clip_dir_b), "--n", "3", "--device", "cpu", "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["per_clip"]) == [str(tiny_clip_dir), str(tiny_clip_dir_b)]
    assert out["quality"] == pytest.approx(sum(v["quality"] for v in out["per_clip"].values()) / 2)


@pytest.mark.parametrize("change", [
    {"--n": "1"}, {"--n": "100001"}, {"--n": "ten"}, {"--truncation": "inf"}, {"--truncation": "nan"},
    {"--seed": "-1"}, {"--seed": str(2**63 - 2)}, {"--batch-size": "0"}, {"--target": " "}, {"--target": "a zebra"},
    {"--generator": "missing.pt"}, {"--clip": "no/such/dir"}, {"--device": "cuda:99"}, {"--device": "warp"},
    {"--clip": "SAME"}, {"--json": "BOOL", "--n": "0"},
])
def test_cli_bad_input_is_one_line_and_exit_2(saved_generator, tiny_clip_dir, tmp_path, monkeypatch, capsys, change):
    monkeypatch.chdir(tmp_path)
    args = {"--generator": str(saved_generator), "--target": "a sketch", "--clip": str(tiny_clip_dir), "--n": "3",
            "--device": "cpu"}
    args.update(change)
    argv = ["evaluate", "--no-progress"]
    for k, v in args.items():
        if v == "BOOL":
            argv.append(k)
        elif v == "SAME":
            argv += [k, str(tiny_clip_dir), k, str(tiny_clip_dir)]
        else:
            argv += [k, v]
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.startswith("nada: error")]
    assert len(lines) == 1, captured.err
    assert list(tmp_path.iterdir()) == []  # nothing written
