"""Command line: ``python -m akp experiment|list|show|verdict|rename|note|tag|delete``, over the app's run store.

The commands that change an experiment (rename, note, tag, delete) act as
``--user`` (default ``$AKP_USER`` or ``local``) and follow the owner rules of
:mod:`akp.access`: only the owner or an admin (``$AKP_ADMINS``) may.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence

from akp.access import LOCAL_USER, admins_from_env, check_can_manage, check_user
from akp.annotations import check_tags
from akp.datasets import SYNTHETIC_OPTIONS, DatasetError
from akp.errors import AccessError, AKPError
from akp.experiment import ExperimentError, load_spec, preset_names
from akp.runs import ACTIVE_STATES, FAILED, RUNNING
from akp.schedule import ScheduleError
from akp.store import RunStore, StoreError


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)


def summary_table(store: RunStore, experiment_id: str) -> str:
    """Per condition: number of runs, states, and test accuracy (mean, min, max)."""
    by_cond: dict[str, list[dict]] = defaultdict(list)
    for run in store.runs(experiment_id):
        by_cond[run["condition"]].append(run)
    rows = []
    for cond, runs in by_cond.items():
        states = defaultdict(int)
        for r in runs:
            states[r["state"]] += 1
        accs = [r["test_acc"] for r in runs if r["test_acc"] is not None]
        acc = (f"{sum(accs) / len(accs):.3f} [{min(accs):.3f}, {max(accs):.3f}]" if accs else "-")
        rows.append([cond, len(runs), ", ".join(f"{k} {v}" for k, v in sorted(states.items())), acc])
    return _table(rows, ["condition", "runs", "states", "test acc mean [min, max]"])


class ProgressBar:
    """A one-line text progress bar on stderr: runs done, current run's epoch and batch."""

    def __init__(self, total_runs: int, stream=sys.stderr) -> None:
        self.total, self.done, self.stream = total_runs, 0, stream
        self._last = 0.0

    def update(self, label: str, epoch: int, epochs: int, batch: int, n_batches: int) -> None:
        now = time.monotonic()
        if now - self._last < 0.2 and batch != n_batches:
            return
        self._last = now
        frac = (self.done + (epoch + batch / n_batches) / epochs) / self.total
        bar = "#" * int(30 * frac)
        self.stream.write(f"\r[{bar:<30}] {100 * frac:5.1f}%  run {self.done + 1}/{self.total} {label} "
                          f"epoch {epoch + 1}/{epochs}   ")
        self.stream.flush()

    def finish_run(self) -> None:
        self.done += 1

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def cmd_experiment(args: argparse.Namespace) -> int:
    spec = load_spec(args.preset_or_file, dataset=args.dataset)
    if args.dataset:
        # Synthetic-only options do not apply to a folder, an .npz file or a registered dataset.
        spec.dataset = args.dataset
        spec.dataset_options = {k: v for k, v in spec.dataset_options.items() if k not in SYNTHETIC_OPTIONS
                                or k == "size"}
    spec = spec.with_overrides(seeds=args.seeds, epochs=args.epochs)
    from akp.executors import resolve_settings
    from akp.jobs import JobManager

    owner = _user(args)
    resolve_settings(args.executor, args.workers)  # a bad --executor, --workers, AKP_* or RAY_ADDRESS stops here
    store = RunStore(args.home)
    # The manager (and its executor: Ray starts or joins here) before the experiment: a failure creates nothing.
    # No repair here: this process trains its own experiment and exits; the app's manager repairs old runs.
    manager = JobManager(store, max_workers=args.workers, executor=args.executor, max_queued=100_000,
                         cache_projections=False, repair=False)
    try:  # quotas, queue cap and memory are checked before anything is written; refused: one line, exit 2
        experiment_id = manager.launch(spec, user=owner)
    except BaseException:
        manager.shutdown(wait=True)
        raise
    print(f"experiment {experiment_id}: {spec.name}, {len(spec.conditions)} conditions x "
          f"{len(spec.seeds)} seeds x {spec.epochs} epochs, store {store.home}, executor "
          f"{manager.executor.describe()}", flush=True)
    _run_all(store, experiment_id, manager, quiet=args.quiet)
    print(summary_table(store, experiment_id))
    failed = [r for r in store.runs(experiment_id) if r["state"] == FAILED]
    for r in failed:
        print(f"run {r['run_id']} failed: {(r['error'] or '').splitlines()[0]}", file=sys.stderr)
    return 1 if failed else 0


def _run_all(store: RunStore, experiment_id: str, manager, *, quiet: bool) -> None:
    """Watch the experiment's runs train in ``manager`` (a JobManager, shut down at the end), with a progress bar."""
    runs = store.runs(experiment_id)
    bar = None if quiet else ProgressBar(len(runs))
    try:
        while not manager.wait(experiment_id, timeout=0.25):
            if bar is not None:
                snaps = manager.status(experiment_id)
                bar.done = sum(1 for s in snaps if s["state"] not in ACTIVE_STATES)
                running = [s for s in snaps if s["state"] == RUNNING]
                if running:
                    s = running[0]
                    bar.update(f"{s['condition']} seed {s['seed']}", s["epoch"], s["epochs"],
                               s["batch"], max(1, s["n_batches"]))
    except KeyboardInterrupt:
        manager.cancel(experiment_id)
        raise
    finally:
        manager.shutdown(wait=True)
        if bar is not None:
            bar.close()


def cmd_resume(args: argparse.Namespace) -> int:
    """Train an experiment's unfinished runs again, each from its last checkpoint (``akp resume ID``)."""
    from akp.executors import resolve_settings
    from akp.jobs import JobManager
    from akp.runner import resume_point
    from akp.runs import RESUMABLE_STATES

    resolve_settings(args.executor, args.workers)  # a bad --executor, --workers or AKP_* stops here, unchanged
    store = RunStore(args.home)
    spec = store.spec(args.experiment_id)
    # Made before reading the runs: it marks those a dead process left running as interrupted.
    manager = JobManager(store, max_workers=args.workers, executor=args.executor, cache_projections=False,
                         repair=False)  # trains this experiment only; the app's manager repairs old runs
    try:
        todo = [r for r in store.runs(args.experiment_id) if r["state"] in (*RESUMABLE_STATES, "queued")]
        if not todo:
            print(f"experiment {args.experiment_id}: nothing to resume (no interrupted, failed, cancelled "
                  "or queued runs)")
            return 0
        for r in todo:
            start, problem = resume_point(store, r["run_id"])
            where = (f"from epoch 0 ({problem})" if problem else
                     f"from epoch {start + 1} of {spec.epochs}" if start else "from epoch 1 (no checkpoint)")
            print(f"run {r['run_id']} ({r['state']}): continues {where}", flush=True)
        manager.resume(args.experiment_id)
        bar = None if args.quiet else ProgressBar(len(todo))
        try:
            while not manager.wait(args.experiment_id, timeout=0.25):
                running = [s for s in manager.status(args.experiment_id) if s["state"] == RUNNING]
                if bar is not None and running:
                    s = running[0]
                    bar.update(f"{s['condition']} seed {s['seed']}", s["epoch"], s["epochs"], s["batch"],
                               max(1, s["n_batches"]))
        except KeyboardInterrupt:
            manager.cancel(args.experiment_id)
            raise
        finally:
            if bar is not None:
                bar.close()
    finally:
        manager.shutdown(wait=True)
    print(summary_table(store, args.experiment_id))
    failed = [r for r in store.runs(args.experiment_id) if r["state"] == FAILED]
    for r in failed:
        print(f"run {r['run_id']} failed: {(r['error'] or '').splitlines()[0]}", file=sys.stderr)
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    store = RunStore(args.home)
    rows = [[e["id"], e["name"], e["owner"], time.strftime("%Y-%m-%d %H:%M", time.localtime(e["created"])),
             e["n_runs"], ", ".join(f"{k} {v}" for k, v in sorted(e["states"].items())),
             ", ".join(e["tags"]) or "-"] for e in store.experiments()]
    if not rows:
        print(f"no experiments in {store.home}; try: python -m akp experiment smoke")
        return 0
    print(_table(rows, ["id", "name", "owner", "created", "runs", "states", "tags"]))
    return 0


def _user(args: argparse.Namespace) -> str:
    """Who the command acts as: ``--user``, else ``$AKP_USER``, else ``local``."""
    return check_user(getattr(args, "user", None) or os.environ.get("AKP_USER") or LOCAL_USER, "--user")


def cmd_rename(args: argparse.Namespace) -> int:
    """``akp rename ID NAME``: give an experiment a new name."""
    store = RunStore(args.home)
    name = store.rename_experiment(args.experiment_id, args.name, user=_user(args))
    print(f"experiment {args.experiment_id}: renamed to {name}")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    """``akp note ID TEXT`` (or ``--clear``): replace an experiment's notes."""
    if (args.text is None) == (not args.clear):
        raise AKPError.at("text", "give the notes as TEXT, or --clear to remove them (not both)")
    store = RunStore(args.home)
    text = store.set_notes(args.experiment_id, "" if args.clear else args.text, user=_user(args))
    print(f"experiment {args.experiment_id}: " + (f"notes set ({len(text)} characters)" if text else "notes cleared"))
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    """``akp tag ID TAG... [--remove]``: add tags to an experiment (or remove them)."""
    store = RunStore(args.home)
    given = check_tags(args.tags)  # bad tags are named before anything is read or written
    have = store.experiment(args.experiment_id)["tags"]
    tags = [t for t in have if t not in given] if args.remove else have + [t for t in given if t not in have]
    tags = store.set_tags(args.experiment_id, tags, user=_user(args))
    print(f"experiment {args.experiment_id}: tags {', '.join(tags) or '(none)'}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``akp delete ID [--yes]``: delete an experiment, its runs and files, after asking (unless --yes)."""
    store = RunStore(args.home)
    user = _user(args)
    record = store.experiment(args.experiment_id)
    # Refusals first, so nobody is asked to confirm what would then be refused.
    check_can_manage(record, user, admins_from_env(), action="delete")
    runs = store.runs(args.experiment_id)
    active = sum(1 for r in runs if r["state"] in ACTIVE_STATES)
    if active:
        raise StoreError.at("experiment_id", f"experiment {args.experiment_id} has {active} queued or running "
                                             "runs; cancel them first, then delete it (nothing was deleted)")
    if not args.yes:
        if not sys.stdin.isatty():
            raise AKPError.at("--yes", "not asking on a non-interactive input; pass --yes to delete "
                                       f"experiment {args.experiment_id} (nothing was deleted)")
        try:
            answer = input(f"Delete experiment {args.experiment_id} ({record['name']}, {len(runs)} runs, owner "
                           f"{record['owner']}) and all its files? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    store.delete_experiment(args.experiment_id, user=user)
    print(f"experiment {args.experiment_id}: deleted ({len(runs)} runs)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = RunStore(args.home)
    exp = store.experiment(args.experiment_id)
    spec = store.spec(args.experiment_id)
    print(f"experiment {exp['id']}: {exp['name']} (dataset {spec.dataset}, {spec.epochs} epochs, "
          f"seeds {spec.seeds})")
    print(f"owner {exp['owner']}; tags {', '.join(exp['tags']) or '(none)'}")
    if exp["notes"]:
        print("notes: " + exp["notes"].replace("\n", "\n       "))
    print(summary_table(store, args.experiment_id))
    print()
    rows = [[r["run_id"], r["condition"], r["seed"], r["state"], r["epochs_done"],
             "-" if r["test_acc"] is None else f"{r['test_acc']:.3f}",
             "-" if r["gap"] is None else f"{r['gap']:+.3f}"] for r in store.runs(args.experiment_id)]
    print(_table(rows, ["run", "condition", "seed", "state", "epochs", "test acc", "gap"]))
    return 0


def cmd_verdict(args: argparse.Namespace) -> int:
    from akp.analysis import akp_test, sensitivity_table  # lazy: the other commands do not need the analysis stack
    from akp.analysis.report import verdict_report

    store = RunStore(args.home)
    spec = store.spec(args.experiment_id)
    allowed = spec.capture_layers
    layer = args.layer or getattr(spec, "primary_layer", None) or "embedding"
    if layer not in allowed:
        raise ValueError(f"layer: {layer!r} was not captured in this experiment; allowed: {', '.join(allowed)}")
    result = akp_test(store, args.experiment_id, layer=layer, epoch=args.epoch, threshold=args.threshold,
                      distance=args.distance, debiased=args.debiased, permutations=args.permutations,
                      seed=args.seed)
    exploratory = [] if args.no_exploratory else sensitivity_table(
        store, args.experiment_id, layers=allowed, primary_layer=layer, permutations=args.permutations,
        seed=args.seed, threshold=args.threshold)
    report = verdict_report(result, exploratory)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print_verdict(args.experiment_id, report)
    return 0


def cmd_convergence(args: argparse.Namespace) -> int:
    """Within-route CKA from the untrained network on, with the untrained floor and a trend per route."""
    from akp.analysis.convergence import route_convergence

    store = RunStore(args.home)
    spec = store.spec(args.experiment_id)
    layer = args.layer or spec.primary_layer
    if layer not in spec.capture_layers:
        raise ValueError(f"layer: {layer!r} was not captured in this experiment; "
                         f"allowed: {', '.join(spec.capture_layers)}")
    rule = spec.family_rule
    threshold = args.threshold if args.threshold is not None else rule["threshold"]
    result = route_convergence(store, args.experiment_id, layer=layer, threshold=threshold, rule=rule["rule"],
                               max_gap=rule["max_gap"], seed=args.seed)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, allow_nan=True))
        return 0
    f = result.floor
    print(f"experiment {args.experiment_id}, layer {layer}: untrained floor (epoch -1) CKA mean {f.mean:.3f} "
          f"[min {f.min:.3f}, max {f.max:.3f}] over {f.n_pairs} pairs")
    rows = [[t.family, t.condition, t.n_seeds, f"{t.slope:+.4f}" if t.slope == t.slope else "-",
             "-" if t.ci is None else f"[{t.ci[0]:+.4f}, {t.ci[1]:+.4f}]",
             f"{t.change:+.3f}" if t.change == t.change else "-", t.status] for t in result.trends]
    print(_table(rows, ["family", "route", "seeds", "slope/epoch", "95% CI", "change", "trend"]))
    return 0


def _print_verdict(experiment_id: str, r: dict) -> None:
    counts = r["family_counts"]
    threshold = "-" if r["threshold"] is None else f"{r['threshold']:.3f}"
    print(f"experiment {experiment_id}, primary layer {r['primary_layer']}, distance {r['distance']}"
          f"{', debiased' if r['debiased'] else ''}: happy {counts['happy']}, unhappy {counts['unhappy']} runs "
          f"(rule {r['rule']}, threshold {threshold} from {r['threshold_source']}); unit: {r['unit']}")
    if r["dispersion"]:
        rows = [[f, f"{r['dispersion'][f]:.4f}"] for f in ("happy", "unhappy")]
        print(_table(rows, ["family", f"mean distance to centre ({r['unit']}s)"]))
        low, high = r["difference_ci"] or (float("nan"), float("nan"))
        print(f"unhappy - happy = {r['dispersion_difference']:+.4f}, 95% CI [{low:+.4f}, {high:+.4f}]; "
              f"one-sided p = {r['p_value']:.3g} (principle), {r['p_anti']:.3g} (reverse), "
              f"{r['permutations']} {'labellings (exact)' if r['exact'] else 'permutations'}")
    if r["exploratory"]:
        rows = [[e["layer"], e["measure"], e["verdict_code"], _p(e["p_value"]), _p(e["p_holm"]), _p(e["p_anti_holm"])]
                for e in r["exploratory"]]
        print("exploratory (Holm-adjusted over these rows):")
        print(_table(rows, ["layer", "measure", "verdict", "p", "p Holm", "p reverse Holm"]))
    for e in r["excluded"]:
        print(f"excluded {e['run_id']}: {e['reason']}")
    for c in r["caveats"]:
        print(f"caveat: {c}")
    print(f"verdict: {r['verdict']}")


def _p(p: float | None) -> str:
    return "-" if p is None else f"{p:.3g}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="akp", description="AKP Lab command line (also: python -m akp).")
    sub = parser.add_subparsers(dest="command", required=True)
    home_help = "run store directory (default: $AKP_HOME or ./akp-data)"

    p = sub.add_parser("experiment", help="run an experiment headless and print a summary")
    p.add_argument("preset_or_file", help=f"a preset ({', '.join(preset_names())}) or a spec JSON file")
    p.add_argument("--seeds", type=int, help="number of seeds (overrides the spec: seeds 0..N-1)")
    p.add_argument("--epochs", type=int, help="training budget in epochs (overrides the spec)")
    p.add_argument("--dataset", help="image folder, MedMNIST .npz or registered dataset id (overrides the spec)")
    p.add_argument("--user", help="record this user as the owner (default: $AKP_USER or local)")
    p.add_argument("--home", help=home_help)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--executor", help="where runs train: thread, process or ray (default: $AKP_EXECUTOR or "
                   "thread; ray joins $RAY_ADDRESS, else starts a local Ray)")
    p.add_argument("--workers", type=int, default=1, help="runs trained at once (default: 1)")
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("resume", help="train an experiment's unfinished runs again, from their last checkpoints")
    p.add_argument("experiment_id")
    p.add_argument("--home", help=home_help)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--executor", help="where runs train: thread, process or ray (default: $AKP_EXECUTOR or "
                   "thread)")
    p.add_argument("--workers", type=int, default=1, help="runs trained at once (default: 1)")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("list", help="list the experiments in the store")
    p.add_argument("--home", help=home_help)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("verdict", help="test the Anna Karenina Principle on an experiment's finished runs")
    p.add_argument("experiment_id")
    p.add_argument("--layer", help="captured layer to compare (default: the spec's primary layer)")
    p.add_argument("--epoch", type=int, help="captured epoch (default: the last one all runs share)")
    p.add_argument("--threshold", type=float,
                   help="happy if test accuracy >= this (default: the spec's family rule; else the largest gap)")
    p.add_argument("--distance", choices=["1-cka", "angular"], default="1-cka")
    p.add_argument("--debiased", action="store_true", help="debiased CKA (Song et al. 2012)")
    p.add_argument("--permutations", type=int, default=999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--no-exploratory", action="store_true", help="skip the exploratory layers and measures")
    p.add_argument("--home", help=home_help)
    p.set_defaults(func=cmd_verdict)

    p = sub.add_parser("convergence", help="within-route CKA over epochs from the untrained network, per route")
    p.add_argument("experiment_id")
    p.add_argument("--layer", help="captured layer (default: the spec's primary layer)")
    p.add_argument("--threshold", type=float, help="happy threshold (default: the spec's family rule)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--home", help=home_help)
    p.set_defaults(func=cmd_convergence)

    user_help = "act as this user (default: $AKP_USER or local); only the owner or an admin may change it"
    p = sub.add_parser("rename", help="give an experiment a new name (owner or admin)")
    p.add_argument("experiment_id")
    p.add_argument("name")
    p.add_argument("--user", help=user_help)
    p.add_argument("--home", help=home_help)
    p.set_defaults(func=cmd_rename)

    p = sub.add_parser("note", help="replace an experiment's notes (owner or admin)")
    p.add_argument("experiment_id")
    p.add_argument("text", nargs="?", help="the notes (free text)")
    p.add_argument("--clear", action="store_true", help="remove the notes")
    p.add_argument("--user", help=user_help)
    p.add_argument("--home", help=home_help)
    p.set_defaults(func=cmd_note)

    p = sub.add_parser("tag", help="add tags to an experiment, or remove them (owner or admin)")
    p.add_argument("experiment_id")
    p.add_argument("tags", nargs="+", metavar="TAG")
    p.add_argument("--remove", action="store_true", help="remove these tags instead of adding them")
    p.add_argument("--user", help=user_help)
    p.add_argument("--home", help=home_help)
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("delete", help="delete an experiment with its runs and files (owner or admin)")
    p.add_argument("experiment_id")
    p.add_argument("--yes", action="store_true", help="do not ask (required when the input is not a terminal)")
    p.add_argument("--user", help=user_help)
    p.add_argument("--home", help=home_help)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("show", help="show one experiment's runs")
    p.add_argument("experiment_id")
    p.add_argument("--home", help=home_help)
    p.set_defaults(func=cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, with the validation message)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ExperimentError, ScheduleError, StoreError, DatasetError, ValueError, AccessError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except RecursionError:
        print("error: experiment file: nested too deeply to be a spec", file=sys.stderr)
        return 2
    except TypeError as exc:  # a value of the wrong type deep inside a spec file
        print(f"error: experiment file: a field has the wrong type ({_one_line(exc)})", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `akp list | head -1`): stop quietly, as the Python docs advise.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted: unfinished runs are marked cancelled", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """The first line of an error, cut to a readable length (a 100 MB value must not flood the terminal)."""
    text = (str(exc).splitlines() or [""])[0]
    return text if len(text) <= 300 else text[:297] + "..."
