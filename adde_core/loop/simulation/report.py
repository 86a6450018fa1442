"""Summarise simulation results per strategy and write them as CSV/JSON, PNG plots and a Markdown report."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adde_core.errors import AddeError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["labels_to_target", "summarize", "write_report"]

TARGET_SHARE = 0.95
_FINAL = ("worst_group_accuracy", "bias_amplification", "vendi", "cluster_entropy", "val_accuracy", "ood_accuracy")


def labels_to_target(labels: Sequence[float], accuracy: Sequence[float], target: float) -> float:
    """Labels at which a learning curve first reaches ``target``, linearly interpolated.

    Parameters
    ----------
    labels, accuracy : sequences of equal length
        The curve, in round order (labels non-decreasing).
    target : float

    Returns
    -------
    float
        ``labels[0]`` if the curve starts at or above the target; otherwise the interpolation
        between the last point below and the first point at or above it; NaN if never reached.
    """
    x = np.asarray(labels, dtype=float)
    y = np.asarray(accuracy, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise AddeError("labels_to_target needs two 1-D sequences of the same, non-zero length.")
    hit = np.flatnonzero(y >= target)
    if len(hit) == 0:
        return math.nan
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))


def summarize(results: pd.DataFrame, full_accuracy: float) -> pd.DataFrame:
    """One row per strategy: label efficiency, area under the learning curve and final metrics.

    Parameters
    ----------
    results : pandas.DataFrame
        The output of :func:`adde_core.loop.simulation.run.simulate`.
    full_accuracy : float
        Val accuracy with every pool label (:func:`~adde_core.loop.simulation.run.full_data_accuracy`).

    Returns
    -------
    pandas.DataFrame
        Indexed by strategy. ``labels_to_95`` is read off the *mean* curve (mean val accuracy
        against mean labels spent per round; NaN if it never reaches 95 % of ``full_accuracy``),
        ``seeds_reaching_95`` counts seeds whose own curve gets there. ``aulc`` is the area under
        the accuracy curve over the label schedule ``round × batch`` divided by the budget (the
        mean accuracy across the schedule, so label-free strategies are comparable), as mean and
        std over seeds; ``final_*`` are the last round's metrics, mean and std over seeds.
    """
    import pandas as pd

    if results.empty:
        raise AddeError("No simulation results to summarise.")
    batch = results.attrs.get("batch") or int(results.loc[results["round"] == 1, "labels_spent"].max() or 1)
    rounds = int(results["round"].max())
    budget = results.attrs.get("budget") or batch * rounds
    target = TARGET_SHARE * full_accuracy
    rows = []
    for name, g in results.groupby("strategy", sort=False):
        mean = g.groupby("round")[["labels_spent", "val_accuracy"]].mean().sort_index()
        per_seed_aulc, reach = [], 0
        for _, s in g.groupby("seed"):
            s = s.sort_values("round")
            x = s["round"].to_numpy() * batch
            per_seed_aulc.append(float(np.trapezoid(s["val_accuracy"].to_numpy(), x) / budget) if budget else math.nan)
            reach += int(not math.isnan(labels_to_target(s["labels_spent"], s["val_accuracy"], target)))
        final = g[g["round"] == g["round"].max()]
        row: dict[str, Any] = {
            "strategy": name, "seeds": int(g["seed"].nunique()),
            "labels_to_95": labels_to_target(mean["labels_spent"], mean["val_accuracy"], target),
            "seeds_reaching_95": reach,
            "aulc_mean": float(np.mean(per_seed_aulc)), "aulc_std": _std(per_seed_aulc),
            "final_labels_spent": float(final["labels_spent"].mean()),
            "final_items_added": float(final["items_added"].mean()),
        }
        for col in _FINAL:
            vals = final[col].to_numpy(dtype=float)
            row[f"final_{col}_mean"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
            row[f"final_{col}_std"] = _std(vals)
        rows.append(row)
    out = pd.DataFrame(rows).set_index("strategy")
    out.attrs.update({"full_accuracy": full_accuracy, "target_accuracy": target, "batch": batch, "budget": budget})
    return out


def _std(values: Sequence[float]) -> float:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1)) if len(v) > 1 else 0.0 if len(v) == 1 else math.nan


def _plot(results: pd.DataFrame, column: str, x: str, path: Path, *, title: str, ylabel: str,
          hlines: Sequence[tuple[float, str]] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, g in results.groupby("strategy", sort=False):
        stats = g.groupby("round").agg(x=(x, "mean"), m=(column, "mean"), s=(column, "std")).sort_index()
        s = stats["s"].fillna(0.0)
        (line,) = ax.plot(stats["x"], stats["m"], marker="o", markersize=3, label=name)
        ax.fill_between(stats["x"], stats["m"] - s, stats["m"] + s, color=line.get_color(), alpha=0.15)
    for y, label in hlines:
        ax.axhline(y, color="grey", linestyle="--", linewidth=1)
        ax.annotate(label, (ax.get_xlim()[0], y), xytext=(4, 3), textcoords="offset points", fontsize=8,
                    color="grey")
    ax.set_title(title)
    ax.set_xlabel("oracle labels spent" if x == "labels_spent" else "round")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table (mean ± std over seeds)."""
    head = ("| strategy | labels to 95 % | seeds reaching | AULC | final acc | worst-group acc | bias ampl. | "
            "Vendi | entropy | OOD acc | items added |")
    lines = [head, "|" + "---|" * 11]
    for name, r in summary.iterrows():
        def pm(col: str, r: pd.Series = r) -> str:
            return f"{_fmt(r[f'final_{col}_mean'])} ± {_fmt(r[f'final_{col}_std'])}"
        l95 = "never" if math.isnan(r["labels_to_95"]) else f"{r['labels_to_95']:.0f}"
        lines.append(f"| {name} | {l95} | {int(r['seeds_reaching_95'])}/{int(r['seeds'])} | {_fmt(r['aulc_mean'])} ± "
                     f"{_fmt(r['aulc_std'])} | {pm('val_accuracy')} | {pm('worst_group_accuracy')} | "
                     f"{pm('bias_amplification')} | {_fmt(r['final_vendi_mean'], 1)} ± {_fmt(r['final_vendi_std'], 1)}"
                     f" | {pm('cluster_entropy')} | {pm('ood_accuracy')} | {r['final_items_added']:.0f} |")
    return "\n".join(lines)


def write_report(results: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path, *, command: str = "",
                 notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write results.csv, results.json, summary.csv, four PNG plots and report.md into ``out_dir``.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`~adde_core.loop.simulation.run.simulate`.
    summary : pandas.DataFrame
        From :func:`summarize`.
    out_dir : str or Path
    command : str
        The exact command that produced the results, quoted in the report.
    notes : sequence of str
        Extra lines for the report (timings, skipped strategies, caveats).

    Returns
    -------
    dict of str to Path
        The files written, by short name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"results_csv": out / "results.csv", "results_json": out / "results.json",
             "summary_csv": out / "summary.csv", "learning_curves": out / "learning_curves.png",
             "worst_group": out / "worst_group_accuracy.png", "bias": out / "bias_amplification.png",
             "diversity": out / "vendi.png", "report": out / "report.md"}
    results.to_csv(files["results_csv"], index=False)
    records = json.loads(results.to_json(orient="records"))
    meta = {k: v for k, v in results.attrs.items() if isinstance(v, (int, float, str, dict, list))}
    files["results_json"].write_text(json.dumps({"meta": meta, "rows": records}, indent=1))
    summary.to_csv(files["summary_csv"])
    full = summary.attrs.get("full_accuracy", math.nan)
    target = summary.attrs.get("target_accuracy", math.nan)
    _plot(results, "val_accuracy", "labels_spent", files["learning_curves"], title="Learning curves (val accuracy)",
          ylabel="val accuracy", hlines=[(full, f"full data {full:.3f}"), (target, f"95 % of full {target:.3f}")])
    _plot(results, "worst_group_accuracy", "round", files["worst_group"], title="Worst-group accuracy (val)",
          ylabel="worst-group accuracy")
    _plot(results, "bias_amplification", "round", files["bias"],
          title="Bias amplification (max |pred rate - true rate|, val)", ylabel="bias amplification")
    _plot(results, "vendi", "round", files["diversity"], title="Vendi score of the labelled set (300-item subsample)",
          ylabel="Vendi (q=1)")
    skipped = results.attrs.get("notes") or {}
    lines = ["# ADDE simulation report", ""]
    if command:
        lines += ["Produced by:", "", "```", command, "```", ""]
    lines += [(f"- budget {summary.attrs.get('budget')} oracle labels, {results['round'].max()} rounds "
               f"(batch {summary.attrs.get('batch')}), seeds {sorted(results['seed'].unique().tolist())}"),
              f"- full-data val accuracy (seed + every pool label): {_fmt(full)}; 95 % of it: {_fmt(target)}"]
    lines += [f"- `{k}` {v}" for k, v in skipped.items()]
    lines += [f"- {n}" for n in notes]
    lines += ["", "## Summary (final round, mean ± std over seeds)", "", summary_markdown(summary), "",
              ("Labels to 95 % are read off the mean curve; AULC is the mean val accuracy over the label schedule "
               "(area / budget). `mads-naive` spends no labels (it pseudo-labels), so its row measures what a "
               "reviewer-free loop does to accuracy and bias, not label efficiency."), "",
              "## Plots", "", "![learning curves](learning_curves.png)", "",
              "![worst-group accuracy](worst_group_accuracy.png)", "", "![bias amplification](bias_amplification.png)",
              "", "![Vendi](vendi.png)", "",
              "Raw rows: `results.csv` / `results.json`; summary: `summary.csv`."]
    files["report"].write_text("\n".join(lines) + "\n")
    return files


def assign_simulation_roles(labels: Sequence[Any], *, seed_per_class: int = 10, val_share: float = 0.2,
                            random_state: int = 0) -> np.ndarray:
    """Roles for a fully labelled dataset given without a split: a small seed, a val set, the rest pool.

    Per class: ``seed_per_class`` items (at most half the class) go to the seed, ``val_share`` of
    the rest to val, and the remainder to the pool, whose labels only the oracle reads.
    Deterministic for a ``random_state``.
    """
    labels = np.asarray(labels, dtype=object)
    rng = np.random.default_rng(random_state)
    roles = np.full(len(labels), "pool", dtype=object)
    for label in sorted({str(x) for x in labels}):
        rows = rng.permutation(np.flatnonzero(labels.astype(str) == label))
        n_seed = min(seed_per_class, max(1, len(rows) // 2))
        n_val = int(round(val_share * (len(rows) - n_seed)))
        roles[rows[:n_seed]] = "seed"
        roles[rows[n_seed:n_seed + n_val]] = "val"
    return roles.astype(str)


def run_and_report(data: Any, strategies: Sequence[str], *, budget: int, rounds: int, seeds: int, out: str | Path,
                   command: str, log: Any = print, resplit: bool = False) -> pd.DataFrame:
    """Simulate, summarise and write the report; ``log`` receives progress lines. Returns the summary."""
    import time

    from adde_core.loop.simulation.run import full_data_accuracy, simulate

    started = time.perf_counter()
    full = full_data_accuracy(data)
    log(f"full-data val accuracy {full:.4f} (95% target {0.95 * full:.4f})")
    last = [started]

    def progress(done: int, total: int, message: str) -> None:
        now = time.perf_counter()
        if total == 0 or done == total or now - last[0] > 30:
            log(f"  [{done}/{total}] {message} ({now - started:.0f} s)")
            last[0] = now

    results = simulate(data, list(strategies), budget=budget, rounds=rounds, seeds=seeds, progress=progress,
                       resplit=resplit)
    summary = summarize(results, full)
    per_strategy = results.groupby("strategy", sort=False)["seconds"].sum()
    notes = [f"wall time {time.perf_counter() - started:.0f} s, torch/BLAS limited to 1 thread",
             "seconds per strategy (all seeds): " + ", ".join(f"{k} {v:.0f}" for k, v in per_strategy.items())]
    notes += [f"{k} {v}" for k, v in results.attrs.get("notes", {}).items()]
    files = write_report(results, summary, out, command=command, notes=notes)
    log(summary_markdown(summary))
    for note in notes:
        log(note)
    log(f"report: {files['report']}")
    return summary
