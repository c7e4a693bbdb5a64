"""Command line: ``python -m ecmeta_lib {run,report,status,tune,ablate,lifecycle,compare}``.

    python -m ecmeta_lib run --profile quick --seeds 0 1 2 --workers 2
    python -m ecmeta_lib run --profile paper --executor ray --address auto --device cuda
    python -m ecmeta_lib report --profile quick --figures figures
    python -m ecmeta_lib status --profile quick
    python -m ecmeta_lib ablate --profile quick --ablations all --methods pearl sac_aisf_1 \
        --seeds 0 1 2 --task-seed 42 --workers 2 --figures figures
    python -m ecmeta_lib tune --methods sac_aisf_1 --task-seeds 100 101 \
        --set agent.lr=1e-3,3e-3 --out docs/tuning/example.csv
    python -m ecmeta_lib lifecycle --profile quick --scenario-seed 0 --seeds 0 1 2 --workers 2
    python -m ecmeta_lib compare --profile paper_8k --against quick --figures figures/paper_8k
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as ONE line (``prog: error: ...``) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _profile(text: str) -> str:
    """argparse type of --profile: a named profile, or a usage error listing them."""
    from .profiles import PROFILES

    if text not in PROFILES:
        raise argparse.ArgumentTypeError(f"unknown profile {text!r}; choose one of "
                                         f"{', '.join(sorted(PROFILES))}")
    return text


def _int_at_least(minimum: int, what: str, examples: str):
    """An argparse type: an integer >= `minimum`, or a usage error naming `what` it must be."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({examples})")
        return value
    return parse


_seed = _int_at_least(0, "a seed: seeds are non-negative integers", "0, 1, 2, ...")
_workers = _int_at_least(1, "a number of workers: a positive integer", "1, 2, ...")
_slots = _int_at_least(1, "a number of slots: a positive integer", "1, 2, ...")


def _address(text: str) -> str:
    """argparse type of --address: the shape of a Ray address, or a usage error."""
    from .executors import check_address

    try:
        return str(check_address(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    from .ablations import HELDOUT_TASK_SEED
    from .profiles import METHODS

    p = _Parser(prog="python -m ecmeta_lib", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, text in (("run", "train every (method, seed) not finished yet"),
                       ("report", "write Fig. 3, the results table and figure, the adaptation plot "
                                  "and the claims"),
                       ("status", "list the grid's runs and whether they finished")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--profile", default="quick", type=_profile,
                       help="smoke | quick | paper | paper_8k | catalogue")
        s.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2])
        s.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
        s.add_argument("--results", default="results", help="root directory of the runs")
        s.add_argument("--task-seed", type=_seed, default=0,
                       help="seed of the system and the nine conditions")
        if name == "run":
            s.add_argument("--workers", type=_workers, default=None,
                           help="local: parallel worker processes (default 1); ray without "
                                "--address: CPUs of the Ray instance started here (default all)")
            s.add_argument("--device", default="auto",
                           help="auto | cpu | cuda (under Ray: cuda asks one GPU per run)")
            s.add_argument("--executor", choices=("local", "ray"), default="local",
                           help="local process pool (default) or one Ray task per run")
            s.add_argument("--address", default=None, type=_address,
                           help="ray: the cluster (auto | HOST:6379 | ray://HOST:10001); "
                                "default: start Ray on this machine")
            s.add_argument("--max-retries", type=int, default=3,
                           help="ray: reruns of a run whose worker or node died (it resumes)")
            s.add_argument("--no-progress", action="store_true")
        if name == "report":
            s.add_argument("--figures", default="figures", help="output directory")
    t = sub.add_parser("tune", help="choose settings on validation task seeds (>= 100) only")
    t.add_argument("--profile", default="quick", type=_profile,
                   help="base profile: smoke | quick | paper | paper_8k | catalogue")
    t.add_argument("--methods", nargs="+", default=["sac_aisf_1"], choices=list(METHODS))
    t.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1])
    t.add_argument("--task-seeds", type=_seed, nargs="+", default=[100],
                   help="validation task seeds (>= 100)")
    t.add_argument("--set", action="append", default=[], metavar="FIELD=V1[,V2...]",
                   help="profile field (or agent.FIELD) and its candidate values; repeatable")
    t.add_argument("--out", required=True, help="CSV of the runs (appended, reused)")
    t.add_argument("--workers", type=_workers, default=1)
    t.add_argument("--results", default="results/tune", help="root directory of the runs")
    a = sub.add_parser("ablate", help="the default and every design choice of ours switched "
                                      "off, one at a time (ecmeta_lib.ablations)")
    a.add_argument("--profile", default="quick", type=_profile,
                   help="base profile: smoke | quick | paper | paper_8k | catalogue")
    a.add_argument("--ablations", nargs="+", default=["all"],
                   help="'all' or ablation names (--list shows them)")
    a.add_argument("--methods", nargs="+", default=["pearl", "sac_aisf_1"],
                   choices=list(METHODS), help="an ablation runs for the methods it affects")
    a.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2])
    a.add_argument("--task-seed", type=_seed, default=HELDOUT_TASK_SEED,
                   help=f"held-out task seed (default {HELDOUT_TASK_SEED}: reports use 0, "
                        "tuning >= 100)")
    a.add_argument("--results", default="results", help="root directory of the runs")
    a.add_argument("--workers", type=_workers, default=None)
    a.add_argument("--device", default="auto")
    a.add_argument("--executor", choices=("local", "ray"), default="local")
    a.add_argument("--address", default=None, type=_address)
    a.add_argument("--max-retries", type=int, default=3)
    a.add_argument("--no-progress", action="store_true")
    a.add_argument("--figures", default=None,
                   help="also write ablations.{csv,md} and 06_ablations.png here")
    a.add_argument("--list", action="store_true",
                   help="print the ablations against the profile and exit")
    a.add_argument("--status", action="store_true",
                   help="list the runs and whether they finished; run nothing")
    lc = sub.add_parser("lifecycle", help="every controller over one upgrade stream, scored slot "
                                          "by slot (ecmeta_lib.lifecycle_runner)")
    lc.add_argument("--profile", default="quick", type=_profile,
                    help="smoke | quick | paper | catalogue (the learned controllers' and the "
                         "stream's size)")
    lc.add_argument("--scenario-seed", type=_seed, nargs="+", default=[0],
                    help="scenario seed(s) of the stream (reported: 0-4; selection: >= 100)")
    lc.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2],
                    help="training seeds of the learned controllers")
    lc.add_argument("--task-seed", type=_seed, default=0)
    lc.add_argument("--controllers", nargs="+", default=None,
                    help="a subset of the controllers (default: all)")
    lc.add_argument("--results", default="results", help="root directory of the runs")
    lc.add_argument("--workers", type=_workers, default=1)
    lc.add_argument("--executor", choices=("local", "ray"), default="local")
    lc.add_argument("--address", default=None, type=_address)
    lc.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("compare", help="two profiles' trained agents on the same final slots, "
                                       "paired by seed (ecmeta_lib.profile_comparison)")
    c.add_argument("--profile", default="paper_8k", type=_profile,
                   help="the profile compared (default paper_8k: Table I at 8,000 updates)")
    c.add_argument("--against", default="quick", type=_profile,
                   help="the profile it is compared against (default quick)")
    c.add_argument("--methods", nargs="+", default=["pearl", "sac_aisf_1"],
                   choices=list(METHODS))
    c.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2])
    c.add_argument("--task-seed", type=_seed, default=0)
    c.add_argument("--slots", type=_slots, default=None,
                   help="final slots scored (default: the smaller profile's final_slots)")
    c.add_argument("--results", default="results", help="root directory of the runs")
    c.add_argument("--figures", default=None,
                   help="also write profile_comparison{.md,.csv,_scores.csv} here")
    return p


def _with_provenance(command: str, argv: Sequence[str], figures: str | None,
                     work: Callable[[], int]) -> int:
    """Run `work()` (a command's body, returning its exit status); when it wrote files into
    `figures`, record their provenance there (`provenance.write_command_provenance`)."""
    import time

    from .provenance import file_mtimes, source_changes, write_command_provenance

    if figures is None:
        return work()
    folder = Path(figures)
    changed, before, start = source_changes(), file_mtimes(folder), time.perf_counter()
    status = work()
    written = [n for n, t in file_mtimes(folder).items()
               if before.get(n) != t and not n.startswith("PROVENANCE")]
    if status == 0 and written:
        write_command_provenance(folder, command, argv, written, time.perf_counter() - start,
                                 changed)
    return status


def _compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .profile_comparison import compare_profiles, comparison_markdown
    from .study import ResultsError

    if args.profile == args.against:
        parser.error(f"--profile and --against are both {args.profile!r}; name two profiles")
    try:
        scores, comp = compare_profiles(args.profile, args.against, args.methods, args.seeds,
                                        task_seed=args.task_seed, results_root=args.results,
                                        n_slots=args.slots, out_dir=args.figures)
    except (ValueError, ResultsError, FileNotFoundError) as exc:
        parser.error(str(exc))
    print(comparison_markdown(comp, args.profile, args.against, int(scores.n_slots.iloc[0]),
                              scores))
    return 0


def _lifecycle(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from . import executors as ex
    from .lifecycle_plots import summary_table
    from .lifecycle_runner import CONTROLLERS, run_lifecycle

    controllers = args.controllers or list(CONTROLLERS)
    unknown = [c for c in controllers if c not in CONTROLLERS]
    if unknown:
        parser.error(f"unknown controller(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(CONTROLLERS)}")
    try:
        table = run_lifecycle(args.profile, args.scenario_seed, args.seeds,
                              task_seed=args.task_seed, controllers=controllers,
                              results_root=args.results, workers=args.workers,
                              executor=args.executor, address=args.address,
                              progress=not args.no_progress)
    except (ex.RayUnavailableError, ex.RayConnectionError, ex.ResultsNotSharedError,
            ex.GridRunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(table).round(2).to_string(index=False))
    print(f"lifecycle.csv: {Path(args.results) / args.profile / 'lifecycle' / 'lifecycle.csv'}")
    return 0


def _results_error(args: argparse.Namespace) -> str | None:
    """Why `report`/`status` cannot read ``--results`` for the profile (None if it can)."""
    root = Path(args.results)
    make = (f"make them with: python -m ecmeta_lib run --profile {args.profile} "
            f"--results {args.results}")
    if not root.is_dir():
        return f"results folder {str(root)!r} does not exist; {make}"
    folder = root / args.profile
    if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
        return f"no runs of profile {args.profile!r} in {str(root)!r}; {make}"
    return None


def _ablate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from . import ablations, analysis, executors, plots, runner
    from .study import ResultsError, Study

    prof = Study.of(args.profile).profile
    if args.list:
        print(ablations.registry_table(prof).to_string(index=False))
        return 0
    names = args.ablations[0] if args.ablations == ["all"] else args.ablations
    try:
        ablations.select(names)  # an unknown name: a usage error, before anything starts
        kwargs = dict(methods=args.methods, seeds=args.seeds, task_seed=args.task_seed,
                      results_root=args.results)
        if args.status:
            print(runner.ablation_table(args.profile, names, **kwargs)
                  .drop(columns="dir").to_string(index=False))
            return 0
        inactive = [n for n in ablations.select(names) if not ablations.is_active(n, prof)]
        if inactive:
            print(f"skipped (already off in {args.profile!r}): {', '.join(inactive)}",
                  file=sys.stderr)
        table = runner.run_ablations(args.profile, names, **kwargs, workers=args.workers,
                                     device=args.device, progress=not args.no_progress,
                                     executor=args.executor, address=args.address,
                                     max_retries=args.max_retries)
    except (ValueError, ResultsError) as exc:
        parser.error(str(exc))
    except (executors.RayUnavailableError, executors.RayConnectionError,
            executors.ResultsNotSharedError, executors.GridRunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table.drop(columns="dir").to_string(index=False))
    if args.figures:
        try:
            finals = analysis.load_finals(table)
            adapt = analysis.load_adaptation(table) if "pearl" in args.methods else None
        except (ResultsError, FileNotFoundError) as exc:
            parser.error(str(exc))
        eff = ablations.effects(finals, adapt, prof.eval_context)
        ablations.save_effects(eff, args.figures)
        plots.ablations_figure(eff, args.figures)
        print(ablations.effects_markdown(eff))
    return 0


def _report(study, figures: str) -> int:  # noqa: ANN001 - a study.Study
    """Fig. 3, the results table and figure, the adaptation plot and the claims of `study`:
    every results file is read (and checked) before anything is computed or drawn."""
    from . import analysis, claims, plots, runner

    table = runner.run_table(study)
    finals = analysis.load_finals(table)
    curves = analysis.load_curves(table)
    adapt = analysis.load_adaptation(table) if "pearl" in study.methods else None
    base = analysis.baselines(study)
    plots.fig3(curves, analysis.curve_baselines(study), figures,
               gradient_steps_per_iteration=study.profile.t_train)
    res = analysis.results_table(finals, base, figures)
    plots.final_latency(res, figures)
    if adapt is not None:
        plots.adaptation(adapt, base, finals, figures,
                         yardsticks=analysis.yardstick_adaptation(study))
    claims.save_claims(claims.claim_tests(curves, finals, adapt, study.profile.eval_context),
                       figures)
    print(analysis.table_markdown(res))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command == "ablate":
        return _with_provenance("ablate", argv, args.figures, lambda: _ablate(parser, args))
    if args.command == "lifecycle":
        return _lifecycle(parser, args)
    if args.command == "compare":
        return _with_provenance("compare", argv, args.figures, lambda: _compare(parser, args))
    if args.command == "tune":
        from .tuning import tune

        summary = tune(args.profile, args.methods, args.seeds, args.task_seeds, args.set,
                       out=args.out, workers=args.workers, results_root=args.results)
        print(summary.to_string(index=False))
        return 0
    from .study import ResultsError, Study

    try:  # every argument is checked here, before a progress bar or a worker starts
        study = Study.of(args.profile, args.methods, args.seeds, task_seed=args.task_seed,
                         results_root=args.results)
    except ValueError as exc:
        parser.error(str(exc))
    if args.command in ("report", "status"):
        problem = _results_error(args)
        if problem:
            parser.error(problem)
    from . import runner

    try:
        if args.command == "run":
            from . import executors as ex

            try:
                table = runner.run_grid(study, workers=args.workers, device=args.device,
                                        progress=not args.no_progress, executor=args.executor,
                                        address=args.address, max_retries=args.max_retries)
            except (ex.RayUnavailableError, ex.RayConnectionError,
                    ex.ResultsNotSharedError, ex.GridRunError) as exc:  # the message says it all
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(table.to_string(index=False))
        elif args.command == "status":
            print(runner.run_status(study).to_string(index=False))
        else:
            _with_provenance("report", argv, args.figures, lambda: _report(study, args.figures))
    except (ResultsError, FileNotFoundError) as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
