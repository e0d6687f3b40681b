"""Latent directions against straightforward computations; edits act only on chosen rows; the CLI writes a grid."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fixtures import make_tiny_generator
from nada.editing import (EditError, apply_direction, edit_grid, fit_boundary, ganspace_directions, load_boundary,
                          parse_direction, sefa_directions)


def test_sefa_matches_numpy_eigenvectors():
    G = make_tiny_generator()
    dirs, values = sefa_directions(G, k=3)
    A = np.concatenate([(c.modulation.weight * c.modulation.scale).detach().double().numpy() for _, c in G.modulated_convs()])
    A = A / np.linalg.norm(A, axis=0, keepdims=True)
    w, v = np.linalg.eigh(A.T @ A)
    order = np.argsort(-w)[:3]
    assert np.allclose(values.numpy(), w[order], rtol=1e-5)
    for i in range(3):  # eigenvectors up to sign
        assert abs(abs(float(np.dot(dirs[i].double().numpy(), v[:, order[i]]))) - 1) < 1e-5
    assert torch.allclose(dirs.norm(dim=1), torch.ones(3), atol=1e-5)


def test_sefa_restricted_to_rows_uses_only_their_layers():
    G = make_tiny_generator()
    all_rows, _ = sefa_directions(G, k=1)
    first, _ = sefa_directions(G, layers=[0], k=1)
    assert not torch.allclose(all_rows.abs(), first.abs())
    with pytest.raises(EditError, match="rows"):
        sefa_directions(G, layers=[99])


def test_ganspace_components_are_the_principal_axes():
    G = make_tiny_generator()
    dirs, std = ganspace_directions(G, k=2, samples=2000, seed=1)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        w = G.mapping(torch.randn(2000, G.z_dim, generator=gen))[:, 0].double()
    cov = torch.cov(w.T)
    for i in range(2):
        d = dirs[i].double()
        assert float(d @ cov @ d) == pytest.approx(float(std[i]) ** 2, rel=1e-3)
    assert std[0] >= std[1]
    assert abs(float(dirs[0] @ dirs[1])) < 1e-5


def test_fitted_boundary_separates_labelled_codes():
    g = torch.Generator().manual_seed(0)
    truth = torch.nn.functional.normalize(torch.randn(16, generator=g), dim=0)
    ws = torch.randn(400, 16, generator=g) * torch.linspace(0.5, 2, 16)
    labels = (ws @ truth > 0).long()
    normal = fit_boundary(ws, labels)
    assert float(normal @ truth) > 0.9
    assert ((ws @ normal > 0).long() == labels).float().mean() > 0.95
    with pytest.raises(EditError, match="both classes"):
        fit_boundary(ws, torch.zeros(400))


def test_boundary_files_and_specs(tmp_path):
    G = make_tiny_generator()
    np.save(tmp_path / "b.npy", np.ones((1, G.w_dim), np.float32))
    d = load_boundary(tmp_path / "b.npy", G)
    assert d.shape == (G.num_ws, G.w_dim)
    np.save(tmp_path / "bad.npy", np.ones((3, G.w_dim), np.float32))
    with pytest.raises(EditError, match="boundary must be"):
        load_boundary(tmp_path / "bad.npy", G)
    d, what = parse_direction("sefa:1", G)
    assert d.shape == (G.num_ws, G.w_dim) and "SeFa direction 1" in what
    d, what = parse_direction("ganspace:0", G, samples=500)
    assert "std" in what
    for bad in ("sefa:x", "nothing.npy", "pca:1"):
        with pytest.raises(EditError):
            parse_direction(bad, G)


def test_edits_touch_only_the_chosen_rows_and_strength_zero_is_the_original():
    G = make_tiny_generator().eval()
    ws = G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(3)))
    d = torch.randn(G.num_ws, G.w_dim)
    edited = apply_direction(ws, d, 2.0, layers=[1, 2])
    assert torch.equal(edited[:, [0, 3, 4, 5, 6, 7]], ws[:, [0, 3, 4, 5, 6, 7]])
    assert torch.allclose(edited[:, 1:3], ws[:, 1:3] + 2.0 * d[1:3])
    grid = edit_grid(G, ws, d, [0.0, 1.0])
    assert grid.shape == (2, 2, 3, G.resolution, G.resolution)
    with torch.no_grad():
        assert torch.equal(grid[:, 0], G.synthesis(ws, noise_mode="const"))


def test_cli_edit_writes_a_grid_and_refuses_bad_input(tmp_path, capsys):
    from nada import save_generator
    from nada.cli import main

    base = tmp_path / "g.safetensors"
    save_generator(make_tiny_generator(), base)
    out = tmp_path / "edit"
    assert main(["edit", "--generator", str(base), "--seeds", "0-2", "--direction", "sefa:0", "--strengths=-2,0,2",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rows"] == ["0", "1", "2"] and report["strengths"] == [-2.0, 0.0, 2.0]
    assert (out / "grid.png").is_file()
    capsys.readouterr()
    for bad, message in ((["--direction", "pca:1"], "expected sefa"), (["--strengths", "1,x"], "numbers"),
                         (["--layers", "0-99"], "rows")):
        argv = ["edit", "--generator", str(base), "--seeds", "0", "--direction", "sefa:0", "--out", str(tmp_path / "no")]
        assert main(argv + bad) == 2  # a repeated --direction: the last one counts
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
        assert not (tmp_path / "no").exists()


def test_edit_to_dir_writes_the_grid_of_edit_grid_and_a_report_and_nothing_on_a_bad_direction(tmp_path):
    from nada.editing import edit_to_dir
    from nada.generators.latents import seed_codes
    from nada.imaging import load_image

    G = make_tiny_generator().requires_grad_(False)
    ws = seed_codes(G, [4, 9])
    out = tmp_path / "edit"
    report = edit_to_dir(G, ws, ["a", "b"], "sefa:1", [-2.0, 0.0], out, layers=[0, 1], report={"generator": "tiny"})
    assert json.loads((out / "report.json").read_text()) == report
    assert report["generator"] == "tiny" and report["rows"] == ["a", "b"] and report["layers"] == [0, 1]
    grid = load_image(out / "grid.png")
    direction, _ = parse_direction("sefa:1", G, layers=[0, 1])
    want = edit_grid(G, ws, direction, [-2.0, 0.0], [0, 1]).clamp(-1, 1)
    assert grid.shape[-2:] == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2)  # two by two tiles with a 2 px border
    assert (grid[:, 2:34, 2:34] - want[0, 0]).abs().max() < 2 / 255 + 1e-6
    with pytest.raises(EditError):
        edit_to_dir(G, ws, ["a", "b"], "sefa:99", [1.0], tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_read_labels_takes_csv_whitespace_and_json_and_refuses_what_is_not_binary(tmp_path):
    from nada.editing import read_labels

    (tmp_path / "a.csv").write_text("name,label\n# a comment\nr000, 1\nr001,0\n\nr002\tyes\n")
    assert read_labels(tmp_path / "a.csv") == {"r000": 1, "r001": 0, "r002": 1}
    (tmp_path / "b.json").write_text('{"7": 0, "8": true}')
    assert read_labels(tmp_path / "b.json") == {"7": 0, "8": 1}
    for text, message in (("r0,2\n", "labels are 0 or 1"), ("r0,1\nr0,0\n", "labelled twice"), ("r0 1 x\n", "name,label"),
                          ("", "no labels"), ("[1, 0]", "JSON object")):
        (tmp_path / "bad.txt").write_text(text)
        with pytest.raises(EditError, match=message):
            read_labels(tmp_path / "bad.txt")


def test_boundary_from_labels_recovers_a_planted_direction():
    from nada.editing import boundary_from_labels

    gen = torch.Generator().manual_seed(0)
    ws = torch.randn(300, 4, 16, generator=gen)
    truth = torch.zeros(16)
    truth[3], truth[7] = 0.6, -0.8
    names = [f"c{i}" for i in range(300)]
    labels = {n: int(float(ws[i].mean(0) @ truth) > 0) for i, n in enumerate(names) if i % 3}  # a third unlabelled
    normal, summary = boundary_from_labels(ws, names, labels)
    assert normal.shape == (1, 16) and abs(float(normal.norm()) - 1) < 1e-5
    assert float(normal[0] @ truth) > 0.95  # points towards label 1, along the planted direction
    assert summary["codes"] == 200 and summary["separable_accuracy"] > 0.97
    rows, _ = boundary_from_labels(ws, names, labels, per_row=True)
    assert rows.shape == (4, 16) and (rows @ truth > 0.5).all()
    with pytest.raises(EditError, match="not in the latents: zz"):
        boundary_from_labels(ws, names, {"zz": 1, "c1": 0})
    with pytest.raises(EditError, match="both classes"):
        boundary_from_labels(ws, names, {"c1": 1, "c2": 1})


def test_cli_boundary_writes_a_npy_edit_reads_and_refuses_bad_input(tmp_path, capsys):
    from nada import save_generator
    from nada.cli import main
    from nada.generators.latents import seed_codes

    G = make_tiny_generator()
    base = tmp_path / "g.safetensors"
    save_generator(G, base)
    ws = seed_codes(G, list(range(300)))
    sefa, _ = sefa_directions(G, k=1)
    lines = [f"{i},{int(float(ws[i].mean(0) @ sefa[0]) > float((ws.mean(1) @ sefa[0]).median()))}" for i in range(300)]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "dirs" / "b.npy"
    assert main(["boundary", "--generator", str(base), "--seeds", "0-299", "--labels", str(tmp_path / "labels.csv"),
                 "--out", str(out)]) == 0
    assert "300 codes" in capsys.readouterr().out
    normal = load_boundary(out, G)
    assert normal.shape == (G.num_ws, G.w_dim) and float(normal[0] @ sefa[0]) > 0.8
    assert main(["edit", "--generator", str(base), "--seeds", "0", "--direction", str(out), "--out",
                 str(tmp_path / "edit")]) == 0
    for bad, message in ((["--seeds", "0-299"], "--seeds needs --generator"),
                         (["--seeds", "0-2", "--generator", str(base)], "not in the latents"),
                         (["--seeds", "0-299", "--generator", str(base), "--out", str(tmp_path / "x.txt")], ".npy file")):
        argv = ["boundary", "--labels", str(tmp_path / "labels.csv"), "--out", str(tmp_path / "no.npy"), *bad]
        if "--out" in bad:
            argv = argv[:3] + argv[5:]
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not (tmp_path / "no.npy").exists() and not (tmp_path / "x.txt").exists()
