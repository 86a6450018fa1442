"""Command-line entry points: ``python -m adde_core demo|ingest|embed|info``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from adde_core.errors import AddeError

DEFAULT_DEMO_PROJECT = Path("projects") / "demo"


@contextmanager
def _bar(desc: str) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar driven by the core's ``progress(done, total)`` callbacks."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="item", dynamic_ncols=True, file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        bar.close()


def _params(pairs: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise AddeError(f"--param {pair!r}: expected key=value")
        out[key] = int(value) if value.isdigit() else value
    return out


def _print_report(report) -> None:
    print(f"loaded {report.n_loaded} items {report.loaded_by_role}; {report.n_rejected} rejected")
    for issue in report.issues:
        where = f"{issue.file}" + (f", row {issue.row}" if issue.row else "") + (f", field {issue.field}" if issue.field else "")
        print(f"  [{issue.severity}] {where}: {issue.reason}")


def _embed(project, model: str | None, params: dict[str, object], **engine: object) -> None:
    """Embed with a progress bar; ``engine`` holds Project.embed's engine, address and ray_cpus."""
    with _bar("embedding") as progress:
        summary = project.embed(model, params=params, progress=progress, **engine)
    if summary.n_computed == 0:
        print(f"embeddings {summary.model_key}: up to date, {summary.n} items from cache, 0 recomputed")
    else:
        print(f"embeddings {summary.model_key}: {summary.n_computed} computed, {summary.n_cached} from cache, "
              f"{summary.seconds:.1f} s ({summary.images_per_second:.0f} images/s end to end)")


def cmd_demo(args: argparse.Namespace) -> None:
    from adde_core.project import PROJECT_FILE, Project

    root = Path(args.project)
    if (root / PROJECT_FILE).exists():
        project = Project.open(root)
        print(f"opened demo project {root}")
    else:
        with _bar("building demo") as progress:
            project, report = Project.create_demo(root, progress=progress, database_url=args.database_url)
        _print_report(report)
    if not args.no_embed:
        _embed(project, args.model, {})
        _prepare_demo(project, prerun=args.prerun)


def _prepare_demo(project, *, prerun: int = 0) -> None:
    """Analyse the demo and record iteration 0, so Explore, Diversity and Trends open with numbers.

    Each step is stored with the project, so running ``demo`` again skips what is done.
    ``prerun`` oracle iterations are real loop steps reviewed by the simulated oracle (the store
    records the reviewer as ``oracle (simulated)``).
    """
    import time

    start = time.perf_counter()
    with _bar("analysing (map, clusters, regions)") as progress:
        result = project.analyze(progress=progress)
    note = "from the stored analysis" if {"map", "clusters", "regions"} <= set(result.reused) else \
        f"{time.perf_counter() - start:.0f} s"
    print(f"analysis: {len(result.items):,} items, "
          f"{result.clusters.n_clusters} clusters, {len(result.regions)} sparse regions ({note})")
    start = time.perf_counter()
    with _bar("diversity metrics") as progress:
        progress(0, 1)
        project.diversity_summary(result)  # kept next to the stored analysis for the Diversity page
        progress(1, 1)
    print(f"diversity metrics: {time.perf_counter() - start:.0f} s")
    if not project.has_metrics():
        start = time.perf_counter()
        with _bar("measuring iteration 0") as progress:
            progress(0, 1)
            metrics = project.measure()
            progress(1, 1)
        acc = metrics.get("val_accuracy")
        print(f"iteration 0 measured in {time.perf_counter() - start:.0f} s"
              + (f": val accuracy {acc:.1%}" if isinstance(acc, float) else ""))
    for _ in range(max(0, prerun - project.current_iteration)):
        start = time.perf_counter()
        with _bar(f"simulated iteration {project.current_iteration + 1} (oracle reviewer)") as progress:
            summary = project.run_oracle_iteration(progress=progress)
        acc = summary.metrics.get("val_accuracy")
        print(f"simulated iteration {summary.index} (oracle reviewer, labelled as simulated): added {sum(summary.added.values())} "
              f"items" + (f", val accuracy {acc:.1%}" if isinstance(acc, float) else "")
              + f" ({time.perf_counter() - start:.0f} s)")
    start = time.perf_counter()
    with _bar("recommended regions") as progress:
        progress(0, 1)
        plan = project.recommended_regions()  # stored with the project, so Explore opens without computing it
        progress(1, 1)
    print(f"recommended regions: {len(plan.regions)} ({time.perf_counter() - start:.0f} s)")


def cmd_ingest(args: argparse.Namespace) -> None:
    from adde_core.project import Project

    project = Project.open_or_create(args.project, database_url=args.database_url)
    with _bar("ingesting") as progress:
        if args.folder:
            report = project.ingest_folder(args.folder, role=args.role, progress=progress)
        else:
            report = project.ingest_manifest(args.manifest, data_root=args.data_root, embeddings=args.embeddings,
                                             default_role=args.role, progress=progress)
    _print_report(report)
    if args.subgroup:
        project.set_subgroup(args.subgroup)
        print(f"subgroup: {args.subgroup}")


def cmd_embed(args: argparse.Namespace) -> None:
    from adde_core.project import Project

    # With a database URL, a teammate's new folder on the shared database can embed straight away.
    if args.engine != "ray" and (args.address is not None or args.ray_cpus is not None):
        raise AddeError("--address and --ray-cpus need --engine ray")
    engine = {"engine": args.engine, "address": args.address, "ray_cpus": args.ray_cpus} if args.engine == "ray" else {}
    project = Project.open_or_create(args.project, database_url=args.database_url) if args.database_url \
        else Project.open(args.project)
    try:
        _embed(project, args.model, _params(args.param), **engine)
    finally:
        project.close()


def cmd_info(args: argparse.Namespace) -> None:
    from adde_core.project import Project

    project = Project.open(args.project)
    print(f"project {project.name} at {project.root} (iteration {project.current_iteration})")
    print(project.counts().to_string(index=False))
    print(project.store.embedding_sets().to_string(index=False))
    for run in project.interrupted_runs():
        print(f"interrupted: {run['kind']} run {run['id']} started {run['started_at']:%Y-%m-%d %H:%M:%S}: "
              f"{run['summary'].get('interrupted', 'its process stopped before it finished')}")


def _simulation_data(args: argparse.Namespace, out: Path):
    """SimulationData from a project folder, an image folder or a manifest (plus optional embeddings)."""
    from adde_core.loop.simulation.report import assign_simulation_roles
    from adde_core.project import PROJECT_FILE, Project

    path = Path(args.data)
    if (path / PROJECT_FILE).exists():
        project = Project.open(path)
    else:
        project = Project.open_or_create(out / "project", database_url=args.database_url)
        if project.counts().empty:
            with _bar("ingesting") as progress:
                if path.is_dir():
                    report = project.ingest_folder(path, role="seed", progress=progress)
                else:
                    report = project.ingest_manifest(path, embeddings=args.embeddings, default_role="seed",
                                                     progress=progress)
            _print_report(report)
    if args.subgroup:
        project.set_subgroup(args.subgroup)
    if project.store.embedding_sets().empty:
        _embed(project, args.model, {})
    items = project.store.items_frame(include_hidden=True)
    if {"seed", "pool", "val"} <= set(items["role"]):
        return project.simulation_data(), project
    # A fully labelled dataset without a split: make one (documented in assign_simulation_roles).
    data = project.simulation_data_unsplit(
        lambda labels: assign_simulation_roles(labels, seed_per_class=args.seed_per_class, random_state=0))
    split = data.roles
    print(f"no seed/pool/val split in the data: using seed {int((split == 'seed').sum())}, "
          f"val {int((split == 'val').sum())}, pool {int((split == 'pool').sum())} (labels hidden from strategies)")
    return data, project


def cmd_simulate(args: argparse.Namespace) -> None:
    import datetime as dt
    import shlex

    from adde_core.loop.simulation.report import run_and_report

    out = Path(args.out or f"simulations/{dt.datetime.now():%Y%m%d-%H%M%S}")
    data, project = _simulation_data(args, out)
    print(f"data {data.name}: seed {len(data.rows('seed'))}, pool {len(data.rows('pool'))}, val {len(data.rows('val'))}, "
          f"can generate: {data.can_generate}")
    command = "python -m adde_core " + " ".join(shlex.quote(a) for a in args.argv)
    run_and_report(data, args.strategy, budget=args.budget, rounds=args.rounds, seeds=args.seeds,
                   out=out, command=command, log=lambda line: print(line, flush=True), resplit=args.resplit)
    project.close()


def _database_url(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", default=None, metavar="URL",
                   help="when creating the project: a shared database, e.g. postgresql+psycopg://user:pw@host/adde "
                        "(default: SQLite inside the project folder)")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m adde_core`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m adde_core", description="ADDE command line")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="build (once) and embed the Animal-MNIST demo project")
    p.add_argument("--project", default=str(DEFAULT_DEMO_PROJECT))
    p.add_argument("--model", default=None, help="embedder name (default: efficientnet-lite0)")
    p.add_argument("--no-embed", action="store_true", help="only build the project")
    p.add_argument("--prerun", type=int, default=0, metavar="N",
                   help="also run N oracle iterations (simulated reviews, labelled as such) for a stakeholder demo")
    _database_url(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ingest", help="ingest an image folder or a manifest into a project")
    p.add_argument("--project", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--folder", help="image folder with one sub-folder per class")
    src.add_argument("--manifest", help="CSV or Parquet manifest (path, label, role, attribute columns)")
    p.add_argument("--embeddings", help="precomputed embeddings (.npy or .parquet) for the manifest's rows")
    p.add_argument("--data-root", help="folder that manifest paths are relative to (default: the manifest's)")
    p.add_argument("--role", default="seed", help="role for the folder, or default role for manifest rows")
    p.add_argument("--subgroup", default=None, help="manifest column to use as the subgroup (fairness, colour-by)")
    _database_url(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("embed", help="embed a project's items (cached: only new items are computed)")
    p.add_argument("--project", required=True)
    p.add_argument("--model", default=None)
    p.add_argument("--param", action="append", default=[], help="embedder parameter key=value (repeatable)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: in this process (default); ray: a Ray Data job, one model actor per CPU or GPU, "
                        "on a local Ray instance or the cluster at --address (same cache, same embedding set)")
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="with --engine ray: ray://HEAD:10001 (Ray Client), HEAD:6379 or auto; "
                        "default: start a local Ray instance on loopback")
    p.add_argument("--ray-cpus", type=int, default=None, metavar="N",
                   help="with --engine ray and no --address: CPUs of the local Ray instance (default 2)")
    _database_url(p)
    p.set_defaults(func=cmd_embed)

    from adde_core.loop.policies import policy_names

    p = sub.add_parser("simulate", help="run the loop headless with the oracle reviewer, against baselines",
                       description="Every strategy runs the same loop engine the app runs, on memory storage. "
                                   "Strategies: " + ", ".join(policy_names()))
    p.add_argument("--data", required=True,
                   help="an ADDE project, an image folder (one sub-folder per class) or a CSV/Parquet manifest")
    p.add_argument("--embeddings", help="precomputed embeddings (.npy/.parquet) for the manifest's rows")
    p.add_argument("--model", default=None, help="embedder when the data has no embeddings (default efficientnet)")
    p.add_argument("--strategy", nargs="+", default=["adde", "random", "margin"], choices=policy_names(),
                   metavar="STRATEGY", help="one or more of: " + ", ".join(policy_names()))
    p.add_argument("--subgroup", default=None, help="item attribute (manifest column) to measure fairness over")
    p.add_argument("--resplit", action="store_true", help="redraw the seed/pool split per seed")
    p.add_argument("--budget", type=int, default=300, help="oracle labels in all")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-per-class", type=int, default=10, help="seed size per class when the data has no split")
    p.add_argument("--out", default=None, help="report folder (default simulations/<timestamp>)")
    _database_url(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("info", help="print a project's counts and embedding sets")
    p.add_argument("--project", required=True)
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line and exit 2 instead of a traceback."""
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        args.func(args)
    except AddeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
