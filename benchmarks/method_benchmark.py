"""ADDE against the strongest low-budget baselines, on several data sets, with a held-out test split. Prints numbers.

    .venv/bin/python benchmarks/method_benchmark.py --dataset digits            # sklearn digits, pixels
    .venv/bin/python benchmarks/method_benchmark.py --dataset demo              # Animal-MNIST, EfficientNet-Lite0
    .venv/bin/python benchmarks/method_benchmark.py --dataset animal-pixels     # Animal-MNIST, raw pixels (first held-out)
    .venv/bin/python benchmarks/method_benchmark.py --dataset digits-effnet     # held-out: digits under EfficientNet-Lite0

Protocol (docs/method/README.md, fixed before the held-out run):

* Every strategy runs the same engine, head and splits; ``resplit=True`` redraws the seed/pool split
  per seed. Label consistency (cleanlab) is off to save time; every other metric is the loop's own.
* The loop's val set is only HALF of the data's val items. The other half becomes a held-out
  **test** split (role ``ood``, which the loop never reads for acquisition): ADDE reads val errors
  to place regions and to credit its arms, so val accuracy alone would flatter it. Labels to 95 %
  are reported on both; the headline is test.
* Full-data accuracy = head on seed + every pool label, on the same split.

Writes ``results.csv``, ``summary.csv``, ``summary.md`` and PNGs to ``docs/method/<dataset>/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINES = ["random", "margin", "entropy", "coreset", "typiclust", "probcover", "uherding"]
ADDE = ["adde", "adde-no-gen", "adde-no-div", "adde-no-adapt"]
SETTINGS = {  # fixed per data set before the runs; the held-out one was never run before its one run
    "digits": dict(budget=200, rounds=5, seeds=10),
    "demo": dict(budget=200, rounds=5, seeds=3, pool=3000),  # generation makes it ~10x slower per round
    "animal-pixels": dict(budget=200, rounds=5, seeds=5, pool=3000),
    # Second held-out set (protocol fixed 2026-12-02 before any run on it; run once, see docs/method/README.md).
    "digits-effnet": dict(budget=200, rounds=5, seeds=10),
}


def _split_val(roles: np.ndarray, labels: np.ndarray, seed: int = 11) -> np.ndarray:
    """Half of val (stratified by label, fixed seed) becomes the held-out test split (role ``ood``)."""
    roles = roles.copy()
    rng = np.random.default_rng(seed)
    for lab in sorted(set(labels[roles == "val"].astype(str))):
        rows = rng.permutation(np.flatnonzero((roles == "val") & (labels.astype(str) == lab)))
        roles[rows[: len(rows) // 2]] = "ood"
    return roles


def _subsample_pool(roles: np.ndarray, n: int | None, seed: int = 5) -> np.ndarray:
    """Keep ``n`` pool rows (fixed seed); the others are dropped (returned mask)."""
    keep = np.ones(len(roles), dtype=bool)
    pool = np.flatnonzero(roles == "pool")
    if n is not None and len(pool) > n:
        drop = np.random.default_rng(seed).permutation(pool)[n:]
        keep[drop] = False
    return keep


def load_digits_data():
    from sklearn.datasets import load_digits

    from adde_core.loop.simulation import SimulationData
    from adde_core.loop.simulation.report import assign_simulation_roles

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    labels = d.target.astype(str).astype(object)
    roles = assign_simulation_roles(labels, seed_per_class=3, val_share=0.3, random_state=0)
    roles = _split_val(roles, labels)
    return SimulationData(X, roles, labels, np.asarray([f"d{i}" for i in range(len(X))]), name="digits-pixels")


def load_digits_effnet():
    """Held-out: sklearn digits as images (8×8 → 112×112 bilinear, grey → RGB) under EfficientNet-Lite0 (1280-d).

    Another embedder's geometry on images the development runs only saw as pixels; the roles are
    drawn with other seeds than ``digits`` (split 1, test half 13). No generation (no image files).
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    from adde_core.embedding import create_embedder
    from adde_core.loop.simulation import SimulationData
    from adde_core.loop.simulation.report import assign_simulation_roles

    d = load_digits()
    images = [Image.fromarray(np.round(im * 255.0 / 16.0).astype(np.uint8)).resize((112, 112), Image.BILINEAR)
              .convert("RGB") for im in d.images]
    X = np.asarray(create_embedder("efficientnet-lite0", image_size=112).embed_images(images), dtype=np.float32)
    labels = d.target.astype(str).astype(object)
    roles = assign_simulation_roles(labels, seed_per_class=3, val_share=0.3, random_state=1)
    roles = _split_val(roles, labels, seed=13)
    return SimulationData(X, roles, labels, np.asarray([f"e{i}" for i in range(len(X))]), name="digits-effnet")


def _demo_arrays(npz: str | None):
    """X, roles, labels, ids, groups, paths of the demo (projects/demo, or an exported npz)."""
    if npz:
        z = np.load(npz, allow_pickle=True)
        return (z["X"], z["roles"].astype(str), z["labels"].astype(object), z["ids"].astype(str),
                z["groups"].astype(str), z["paths"].astype(object))
    from adde_core.project import Project

    d = Project.open(ROOT / "projects" / "demo").simulation_data()
    return d.X, d.roles, d.labels, d.ids, d.groups, np.asarray(d.paths, dtype=object)


def load_demo_data(npz: str | None, pool: int | None, generate: bool):
    from adde_core.loop.simulation import SimulationData, embedder_fn

    X, roles, labels, ids, groups, paths = _demo_arrays(npz)
    keep = (roles != "ood") & _subsample_pool(roles, pool)  # the shifted OOD set is replaced by the test split
    roles = _split_val(roles[keep], labels[keep])
    embed = None
    if generate:
        from adde_core.embedding import create_embedder

        embed = embedder_fn(create_embedder("efficientnet-lite0", image_size=112))
    paths = [str(ROOT / p) if not str(p).startswith("/") else str(p) for p in paths[keep]]
    return SimulationData(X[keep], roles, labels[keep], ids[keep], groups[keep], "pose", paths, embed, "demo")


def load_animal_pixels(npz: str | None, pool: int | None):
    """Held-out: the demo's images and split, embedded as raw 28×28 pixels (784-d), subgroup pose."""
    from PIL import Image

    from adde_core.loop.simulation import SimulationData

    _, roles, labels, ids, groups, paths = _demo_arrays(npz)
    keep = (roles != "ood") & _subsample_pool(roles, pool, seed=6)
    rows = np.flatnonzero(keep)
    X = np.stack([np.asarray(Image.open(ROOT / paths[i] if not str(paths[i]).startswith("/") else paths[i])
                             .convert("L").resize((28, 28)), dtype=np.float32).ravel() / 255.0 for i in rows])
    roles = _split_val(roles[rows], labels[rows], seed=12)
    return SimulationData(X, roles, labels[rows], ids[rows], groups[rows], "pose", None, None, "animal-pixels")


def summarise(results, full_val: float, full_test: float):
    import pandas as pd

    from adde_core.loop.simulation.report import labels_to_target

    rows = []
    budget = results.attrs["budget"]
    for name, g in results.groupby("strategy", sort=False):
        mean = g.groupby("round")[["labels_spent", "val_accuracy", "ood_accuracy"]].mean().sort_index()
        per_seed = []
        for _, s in g.groupby("seed"):
            s = s.sort_values("round")
            x = s["labels_spent"].to_numpy(dtype=float)
            per_seed.append({
                "l95_test": labels_to_target(x, s["ood_accuracy"], 0.95 * full_test),
                "aulc_test": float(np.trapezoid(s["ood_accuracy"], s["round"] * results.attrs["batch"]) / budget)})
        final = g[g["round"] == g["round"].max()]
        ps = pd.DataFrame(per_seed)
        arm_cols = [c for c in g.columns if c.startswith("arm_labels_")]
        arms = {c.removeprefix("arm_labels_"): float(g[c].fillna(0).sum() / g["seed"].nunique()) for c in arm_cols
                if g[c].notna().any()}
        rows.append({
            "strategy": name, "seeds": int(g["seed"].nunique()),
            "labels_to_95_test": labels_to_target(mean["labels_spent"], mean["ood_accuracy"], 0.95 * full_test),
            "labels_to_95_val": labels_to_target(mean["labels_spent"], mean["val_accuracy"], 0.95 * full_val),
            "seeds_reaching_95_test": int(ps["l95_test"].notna().sum()),
            "aulc_test": ps["aulc_test"].mean(), "aulc_test_std": ps["aulc_test"].std(ddof=1),
            "final_test_acc": final["ood_accuracy"].mean(), "final_test_acc_std": final["ood_accuracy"].std(ddof=1),
            "final_val_acc": final["val_accuracy"].mean(),
            "final_worst_group": final["worst_group_accuracy"].mean(),
            "final_worst_group_std": final["worst_group_accuracy"].std(ddof=1),
            "final_bias_amplification": final["bias_amplification"].mean(),
            "arm_labels": json.dumps({k: round(v, 1) for k, v in arms.items() if v > 0}),
            "gen_shown": float(final["gen_shown"].mean()), "gen_accepted": float(final["gen_accepted"].mean()),
            "seconds": float(g["seconds"].sum()),
        })
    return pd.DataFrame(rows).set_index("strategy")


def _fmt(x: float, nd: int = 3) -> str:
    return "never" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}" if nd else f"{x:.0f}"


def markdown(summary, full_val: float, full_test: float, header: str) -> str:
    lines = [header, "", f"full-data accuracy: val {full_val:.3f}, test {full_test:.3f} (95 %: {0.95 * full_test:.3f})",
             "", "| strategy | labels to 95 % (test) | (val) | seeds reaching (test) | AULC test | final test acc | "
             "worst group | bias ampl. | arm labels (mean per run) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in summary.iterrows():
        lines.append(f"| {name} | {_fmt(r.labels_to_95_test, 0)} | {_fmt(r.labels_to_95_val, 0)} | "
                     f"{r.seeds_reaching_95_test}/{r.seeds} | {r.aulc_test:.3f} ± {r.aulc_test_std:.3f} | "
                     f"{r.final_test_acc:.3f} ± {r.final_test_acc_std:.3f} | {r.final_worst_group:.3f} ± "
                     f"{r.final_worst_group_std:.3f} | {r.final_bias_amplification:.3f} | {r.arm_labels} |")
    return "\n".join(lines) + "\n"


def plots(results, out: Path, full_test: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for name, g in results.groupby("strategy", sort=False):
        m = g.groupby("round")[["labels_spent", "ood_accuracy", "worst_group_accuracy"]].mean()
        style = "-" if name.startswith("adde") else "--"
        lw = 2.6 if name == "adde" else 1.2
        axes[0].plot(m["labels_spent"], m["ood_accuracy"], style, lw=lw, label=name)
        axes[1].plot(m["labels_spent"], m["worst_group_accuracy"], style, lw=lw, label=name)
    axes[0].axhline(0.95 * full_test, color="k", lw=0.8, ls=":", label="95 % of full data")
    axes[0].set(title=f"{title}: test accuracy", xlabel="labels", ylabel="accuracy")
    axes[1].set(title="worst-group accuracy (val)", xlabel="labels")
    adde = results[results["strategy"] == "adde"]
    arm_cols = [c for c in adde.columns if c.startswith("arm_labels_") and adde[c].notna().any()]
    if arm_cols:
        m = adde.groupby("round")[arm_cols].mean().fillna(0)
        bottom = np.zeros(len(m))
        for c in arm_cols:
            axes[2].bar(m.index, m[c], bottom=bottom, label=c.removeprefix("arm_labels_"))
            bottom += m[c].to_numpy()
        axes[2].set(title="ADDE: labels per arm per round (mean over seeds)", xlabel="round", ylabel="labels")
        axes[2].legend(fontsize=8)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(SETTINGS), required=True)
    parser.add_argument("--demo-npz", default=None, help="exported demo arrays instead of opening projects/demo")
    parser.add_argument("--strategies", nargs="+", default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--budget", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-generate", action="store_true", help="demo without an image embedder (no generation)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cfg = dict(SETTINGS[args.dataset])
    for k in ("seeds", "budget", "rounds"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    from adde_core.loop.engine import LoopConfig
    from adde_core.loop.evaluate import EvalConfig
    from adde_core.loop.simulation import full_data_accuracy, simulate

    t0 = time.perf_counter()
    if args.dataset == "digits":
        data = load_digits_data()
    elif args.dataset == "digits-effnet":
        data = load_digits_effnet()
    elif args.dataset == "demo":
        data = load_demo_data(args.demo_npz, cfg.get("pool"), generate=not args.no_generate)
    else:
        data = load_animal_pixels(args.demo_npz, cfg.get("pool"))
    strategies = args.strategies or (BASELINES + ADDE if data.can_generate else
                                     BASELINES + [s for s in ADDE if s != "adde-no-gen"])
    counts = {r: int((data.roles == r).sum()) for r in ("seed", "pool", "val", "ood")}
    print(f"{data.name}: {counts} (ood = held-out test), dim {data.X.shape[1]}, can generate {data.can_generate}, "
          f"{cfg}, load {time.perf_counter() - t0:.0f} s", flush=True)
    full_val = full_data_accuracy(data)
    test = data.roles == "ood"
    from adde_core.loop.simulation import SimulationData

    swapped = SimulationData(data.X, np.where(test, "val", np.where(data.roles == "val", "ood", data.roles)),
                             data.labels, data.ids, data.groups, data.subgroup, name=data.name)
    full_test = full_data_accuracy(swapped)
    print(f"full-data accuracy val {full_val:.4f} test {full_test:.4f}", flush=True)
    out = Path(args.out or ROOT / "docs" / "method" / args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def progress(done: int, total: int, message: str) -> None:
        if done % 10 == 0 or done == total:
            print(f"  [{done}/{total}] {message} ({time.perf_counter() - started:.0f} s)", flush=True)

    results = simulate(data, strategies, budget=cfg["budget"], rounds=cfg["rounds"], seeds=cfg["seeds"],
                       progress=progress, resplit=True, config=LoopConfig(eval=EvalConfig(label_consistency=False)))
    results.to_csv(out / "results.csv", index=False)
    summary = summarise(results, full_val, full_test)
    summary.to_csv(out / "summary.csv")
    header = (f"## {data.name}\n\n{counts['seed']} seed, {counts['pool']} pool, {counts['val']} val, "
              f"{counts['ood']} test; budget {cfg['budget']} in {cfg['rounds']} rounds; seeds {cfg['seeds']} "
              f"(pool split redrawn per seed); wall {time.perf_counter() - t0:.0f} s")
    md = markdown(summary, full_val, full_test, header)
    (out / "summary.md").write_text(md)
    plots(results, out, full_test, data.name)
    print(md, flush=True)


if __name__ == "__main__":
    main()
