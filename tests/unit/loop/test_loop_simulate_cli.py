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
                 "--strategy", "random", "uncertainty", "--budget", "12", "--rounds", "2", "--seeds", "1",
                 "--seed-per-class", "3", "--out", str(out)])
    assert code == 0
    for name in ("results.csv", "results.json", "summary.csv", "report.md", "learning_curves.png"):
        assert (out / name).stat().st_size > 0, name
    results = pd.read_csv(out / "results.csv")
    assert set(results["strategy"]) == {"random", "uncertainty"}
    assert sorted(results.loc[results["strategy"] == "random", "labels_spent"]) == [0, 6, 12]
    assert "python -m adde_core simulate --data" in (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text())["rows"]


def test_cli_bad_data_is_one_line_error(tmp_path, capsys):
    code = main(["simulate", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "missing.csv" in capsys.readouterr().err
