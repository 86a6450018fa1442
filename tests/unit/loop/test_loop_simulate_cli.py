"""`python -m adde_core simulate` on a dataset given only as a manifest plus an embeddings file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from adde_core.cli import main


def test_cli_simulates_two_rounds_from_manifest_and_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    n_per, d = 80, 12
    labels = np.repeat(["ant", "bee", "cow"], n_per)
    centres = rng.normal(0, 1.5, (3, d))
    X = centres[np.repeat([0, 1, 2], n_per)] + rng.normal(0, 1, (3 * n_per, d))
    pd.DataFrame({"id": [f"r{i}" for i in range(len(X))], "label": labels}).to_csv(tmp_path / "m.csv", index=False)
    np.save(tmp_path / "e.npy", X.astype(np.float32))
    out = tmp_path / "out"
    code = main(["simulate", "--data", str(tmp_path / "m.csv"), "--embeddings", str(tmp_path / "e.npy"),
                 "--strategy", "random", "margin", "--budget", "12", "--rounds", "2", "--seeds", "1",
                 "--seed-per-class", "3", "--out", str(out)])
    assert code == 0
    for name in ("results.csv", "results.json", "summary.csv", "report.md", "learning_curves.png"):
        assert (out / name).stat().st_size > 0, name
    results = pd.read_csv(out / "results.csv")
    assert set(results["strategy"]) == {"random", "margin"}
    assert sorted(results.loc[results["strategy"] == "random", "labels_spent"]) == [0, 6, 12]
    assert "python -m adde_core simulate --data" in (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text())["rows"]


def test_cli_bad_data_is_one_line_error(tmp_path, capsys):
    code = main(["simulate", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "missing.csv" in capsys.readouterr().err


def test_help_lists_every_registry_strategy(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    for name in ("coreset", "typiclust", "entropy", "margin", "random", "adde", "adde-no-gen", "seed-only",
                 "mads-naive", "static-aug"):
        assert name in out, name


def test_digits_manifest_with_pixel_embeddings_runs_adde_and_the_baselines(tmp_path):
    """sklearn digits as a manifest + a .npy of pixels: full ADDE runs (without generation, said so), no skip."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pd.DataFrame({"id": [f"d{i}" for i in range(len(digits.target))],
                  "label": [str(t) for t in digits.target]}).to_csv(tmp_path / "m.csv", index=False)
    np.save(tmp_path / "e.npy", digits.data.astype(np.float32) + 0.01)
    out = tmp_path / "out"
    strategies = ["adde", "coreset", "typiclust", "margin", "random"]
    code = main(["simulate", "--data", str(tmp_path / "m.csv"), "--embeddings", str(tmp_path / "e.npy"),
                 "--strategy", *strategies, "--budget", "20", "--rounds", "2", "--seeds", "1",
                 "--seed-per-class", "3", "--out", str(out)])
    assert code == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["strategy"]) == set(strategies)
    for name in strategies:
        spent = sorted(results.loc[results["strategy"] == name, "labels_spent"])
        assert spent == [0, 10, 20], name
    assert "adde` ran without its images part" in (out / "report.md").read_text()


def test_subgroup_column_becomes_the_fairness_group_and_an_unknown_one_is_named(tmp_path, capsys):
    rng = np.random.default_rng(3)
    n_per, d = 60, 8
    labels = np.repeat(["ant", "bee"], n_per)
    site = np.tile(["north", "south", "east"], 2 * n_per // 3)
    X = np.where(labels[:, None] == "ant", 1.5, -1.5) + rng.normal(0, 1, (2 * n_per, d))
    pd.DataFrame({"id": [f"r{i}" for i in range(len(X))], "label": labels, "site": site}).to_csv(
        tmp_path / "m.csv", index=False)
    np.save(tmp_path / "e.npy", X.astype(np.float32))
    code = main(["ingest", "--project", str(tmp_path / "p"), "--manifest", str(tmp_path / "m.csv"),
                 "--embeddings", str(tmp_path / "e.npy"), "--subgroup", "skin_tone"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'skin_tone'" in err and "site" in err  # names the column and the choices
    out = tmp_path / "out"
    code = main(["simulate", "--data", str(tmp_path / "p"), "--subgroup", "site", "--strategy", "margin",
                 "--budget", "10", "--rounds", "1", "--seeds", "1", "--seed-per-class", "4", "--out", str(out)])
    assert code == 0
    results = pd.read_csv(out / "results.csv")
    assert set(results["worst_group"].dropna()) <= {"north", "south", "east"}
    assert results["worst_group_accuracy"].notna().all()
