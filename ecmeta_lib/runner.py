"""Running the experiment grid: (method x seed) runs of a `Study`, cached, resumable and
parallel; the ablation runs; where each run stands. Reading and scoring what the runs wrote is
`ecmeta_lib.analysis`.

Layout on disk::

    results/<profile>/<run-id>/config.json      full config of the run (what the id hashes)
                              /checkpoint.pt    written by training; a killed run resumes from it
                              /curve.csv        learning curve on T1-T3
                              /train_log.csv    training diagnostics
                              /final.csv        final policy on T1-T3 through the harness
                              /adaptation.csv   PEARL only: latency against context transitions
                              /progress.json    last iteration reached, host, pid (while it runs)
                              /done.json        marker: the run finished (with its wall time)
    results/<profile>/baselines-<hash>.csv      oracle and yardsticks on T1-T3 (final.csv's slots)
    results/<profile>/ablations/<name>/<run-id>/  a run of the profile with one design choice
                                                  switched off (`ecmeta_lib.ablations`)

The run id is ``<method>-s<seed>-<hash>`` (``<method>-s<seed>-<ablation>-<hash>`` for an
ablation), the hash covering the profile, method, seed, task seed and package version, so a
changed config gets a new directory instead of a stale result.

Runs execute in a local process pool (default) or as Ray tasks on a cluster
(``executor="ray"``, `ecmeta_lib.executors`); the folders are the same either way.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from . import __version__, executors
from . import ablations as ablation_registry
from .agent_policies import adaptation_curve
from .cache import jsonable, run_key, write_csv, write_json
from .checkpoints import load_agent
from .conditions import TEST_NAMES, make_task_set
from .paths import figures_path, project_root
from .profiles import PROFILES, Profile, get_profile
from .study import ADAPT_CONTEXT, DEFAULT_RESULTS, ResultsError, Study
from .training import train

StudyLike = str | Profile | Study


def notebook_paths(results_dir: Path | str | None,
                   figures_dir: Path | str) -> tuple[Path, Path]:
    """A notebook's results folder (default ``<repo>/results``) and its figures folder (created;
    a relative one is under the repository root, see `paths.figures_path`)."""
    results = Path(results_dir) if results_dir else project_root() / DEFAULT_RESULTS
    return results, figures_path(figures_dir)


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid; with `ablation`, of the profile with that design choice switched
    off (`ecmeta_lib.ablations.variant`)."""

    method: str
    seed: int
    profile: str
    task_seed: int = 0
    ablation: str | None = None

    def resolved_profile(self) -> Profile:
        """The profile the run trains with (the named one, or its ablation variant)."""
        base = get_profile(self.profile)
        if self.ablation is None:
            return base
        return ablation_registry.variant(base, self.ablation)

    def config(self) -> dict[str, Any]:
        cfg = {"method": self.method, "seed": self.seed, "task_seed": self.task_seed,
               "profile": jsonable(self.resolved_profile()), "version": __version__}
        if self.ablation is not None:  # absent otherwise: the grid's config.json files stay valid
            cfg["ablation"] = self.ablation
        return cfg

    @property
    def run_id(self) -> str:
        key = run_key(self.method, self.resolved_profile(), self.seed, self.task_seed)
        tag = f"-{self.ablation}" if self.ablation is not None else ""
        return f"{self.method}-s{self.seed}{tag}-{key[:10]}"

    def run_dir(self, results_root: Path | str) -> Path:
        """``<results_root>/<profile>/<run id>``, or ``.../ablations/<name>/<run id>``."""
        root = Path(results_root) / self.profile
        if self.ablation is not None:
            root = root / "ablations" / self.ablation
        return root / self.run_id


def validate_grid(profile: StudyLike, methods: Sequence[str] | None = None,
                  seeds: Sequence[int] | None = None, *, task_seed: int | None = None,
                  results_root: Path | str | None = None) -> Study:
    """The grid's `Study` (`Study.of`: a `ValueError` names an unknown profile or method and a
    bad seed); the grid trains named profiles only (their name is the results folder)."""
    study = Study.of(profile, methods, seeds, task_seed=task_seed, results_root=results_root)
    if PROFILES.get(study.name) != study.profile:
        raise ValueError(f"the grid runs named profiles ({', '.join(PROFILES)}); "
                         f"{study.name!r} is not one of them as given")
    return study


def grid_specs(study: Study) -> list[RunSpec]:
    """The study's cells, method-major."""
    return [RunSpec(m, s, study.name, study.task_seed) for m in study.methods for s in study.seeds]


RUN_THREADS = 1
"""Torch CPU threads of one run (and the CPUs a run asks Ray for)."""
EXECUTORS = ("local", "ray")


def _progress_hook(path: Path, iterations: int):
    """train()'s hook: after each iteration (and its checkpoint, if any) record how far the run
    got, where and in which process, for `run_status` and for tests that kill a worker."""
    host, pid = socket.gethostname(), os.getpid()

    def hook(iteration: int, agent: Any) -> None:
        write_json(path / "progress.json",
                           {"iteration": iteration, "iterations": iterations, "host": host,
                            "pid": pid, "time": time.time()})
    return hook


def _execute(spec: RunSpec, run_dir: str, device: str) -> dict[str, Any]:
    """Train one run (resuming if a checkpoint exists), then PEARL's adaptation curves.

    Idempotent: a run that finished returns its done.json at once, so an executor may retry it
    (Ray does after a worker or node died) without recomputing anything."""
    path = Path(run_dir)
    if (path / "done.json").exists():
        return json.loads((path / "done.json").read_text())
    path.mkdir(parents=True, exist_ok=True)
    cfg_file = path / "config.json"
    if cfg_file.exists():
        if json.loads(cfg_file.read_text()) != jsonable(spec.config()):
            raise RuntimeError(f"{cfg_file} does not match the run's config; refusing to reuse it")
    else:
        write_json(cfg_file, spec.config())
    start = time.perf_counter()
    profile = spec.resolved_profile()
    result = train(spec.method, profile, spec.seed, path, task_seed=spec.task_seed,
                   device=device, progress=False, num_threads=RUN_THREADS,
                   hook=_progress_hook(path, profile.iterations))
    if spec.method == "pearl" and not (path / "adaptation.csv").exists():
        task_set = make_task_set(spec.task_seed, profile.env.system, profile.env.conditions)
        agent = load_agent(path)
        frames = [adaptation_curve(agent, name, n_context=ADAPT_CONTEXT,
                                   eval_slots=profile.final_slots, task_set=task_set,
                                   config=profile.env)
                  for name in TEST_NAMES]
        out = pd.concat(frames, ignore_index=True).assign(method=spec.method, seed=spec.seed)
        write_csv(path / "adaptation.csv", out)
    done = {"run_id": spec.run_id, "wall_s": time.perf_counter() - start,
            "resumed_from": result.resumed_from, "host": socket.gethostname()}
    write_json(path / "done.json", done)
    return done


PROGRESS_MIRROR_ENV = "ECMETA_PROGRESS_FILE"
"""If set, the grid's progress bar is also written (as text) to this file: the notebook runner
tails it, so `make reproduce` shows the grid's bar and ETA on the terminal while a notebook's
own output goes to the notebook."""


class _GridBar:
    """The grid's tqdm bar, mirrored to ``$ECMETA_PROGRESS_FILE`` when that is set."""

    def __init__(self, **kwargs: Any) -> None:
        self.bars = [tqdm(**kwargs)]
        target = os.environ.get(PROGRESS_MIRROR_ENV)
        if target and not kwargs.get("disable"):
            from tqdm import tqdm as text_tqdm

            self._file = open(target, "a", buffering=1)  # noqa: SIM115 - closed in close()
            # position 0: its own line, no cursor-movement escapes in the mirrored text
            self.bars.append(text_tqdm(**kwargs, file=self._file, mininterval=1.0, position=0,
                                       ascii=True, dynamic_ncols=False, ncols=100))

    def update(self, n: int = 1) -> None:
        for b in self.bars:
            b.update(n)

    def set_postfix_str(self, text: str) -> None:
        for b in self.bars:
            b.set_postfix_str(text)

    def close(self) -> None:
        for b in self.bars:
            b.close()
        if len(self.bars) > 1:
            self._file.write("\n")
            self._file.close()


def run_grid(profile: StudyLike, methods: Sequence[str] | None = None,
             seeds: Sequence[int] | None = None, *, workers: int | None = None,
             results_root: Path | str | None = None, task_seed: int | None = None,
             device: str = "auto", progress: bool = True,
             executor: str = "local", address: str | None = None,
             max_retries: int = 3) -> pd.DataFrame:
    """Run every (method, seed) of the grid that is not finished yet; return the run table.

    `profile` is a name or a `Study`; the other arguments, when given, replace the study's
    (defaults: every method, seeds 0-2, task seed 0, ``results/``).

    Args:
        executor: "local" (default): in this process, or in a pool of `workers` processes;
            "ray": one Ray task per run (`ecmeta_lib.executors.run_ray`), asking for
            `RUN_THREADS` CPUs and, with ``device="cuda"``, one GPU.
        workers: local: parallel processes (default 1). Ray without `address`: CPUs of the
            Ray instance started on this machine (default all). Ignored with `address`.
        address: Ray only: the cluster to run on ("auto", HOST:PORT or ray://HOST:PORT);
            None starts Ray on this machine (or uses a Ray session already open).
        max_retries: Ray only: reruns of a run whose worker or node died; it resumes from its
            last checkpoint. `results_root` must be one folder every node shares (checked
            first, with an error naming each node that cannot use it).
        progress: show the grid's bar and one line per finished run.
    A finished run (done.json) is never recomputed; a run that raises stops the local grid at
    once, while under Ray the other runs finish first (`executors.GridRunError` lists failures).
    """
    study = validate_grid(profile, methods, seeds, task_seed=task_seed, results_root=results_root)
    run_specs(grid_specs(study), workers=workers, results_root=study.results_root,
              device=device, progress=progress, executor=executor, address=address,
              max_retries=max_retries, desc=f"grid[{study.name}]")
    return run_table(study)


def run_specs(specs: Sequence[RunSpec], *, workers: int | None = None,
              results_root: Path | str = DEFAULT_RESULTS, device: str = "auto",
              progress: bool = True, executor: str = "local", address: str | None = None,
              max_retries: int = 3, desc: str = "grid") -> None:
    """Run every spec that is not finished yet, in its `RunSpec.run_dir`, on the executor
    (arguments as in `run_grid`, which calls this for its cells; `run_ablations` too)."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if address is not None and executor != "ray":
        raise ValueError("an address is a Ray cluster's: use it with executor='ray'")
    executors.check_address(address)
    Path(results_root).mkdir(parents=True, exist_ok=True)
    todo = [s for s in specs if not (s.run_dir(results_root) / "done.json").exists()]
    bar = _GridBar(total=len(specs), initial=len(specs) - len(todo), desc=desc,
                   disable=not progress)

    def on_done(job: executors.Job, done: dict[str, Any]) -> None:
        bar.update()
        if progress:
            resumed = done.get("resumed_from", 0)
            tqdm.write(f"{job.key}: done in {done['wall_s']:.0f} s on {done.get('host', '?')}"
                       + (f" (resumed from iteration {resumed})" if resumed else ""),
                       file=sys.stderr)  # beside the bar; stdout keeps the table

    def on_poll(pending: Sequence[executors.Job]) -> None:
        running = []
        for job in pending:
            info = _read_json(Path(job.args[1]) / "progress.json")
            if info:
                running.append(f"{job.key.rsplit('-', 1)[0]} {info['iteration']}/"
                               f"{info['iterations']}")
        bar.set_postfix_str(", ".join(running))

    if todo and executor == "local":
        jobs = [executors.Job(s.run_id, (s, str(s.run_dir(results_root)), device))
                for s in todo]
        executors.run_local(_execute, jobs, workers=workers or 1, on_done=on_done,
                            on_poll=on_poll if progress else None,
                            on_start=lambda job: bar.set_postfix_str(job.key))
    elif todo:
        shared = Path(results_root).resolve()  # workers may start in another folder
        # Ray hands each task its own GPU as "cuda" (CUDA_VISIBLE_DEVICES): no index to pass
        task_device = "cuda" if device.startswith("cuda") else device
        jobs = [executors.Job(s.run_id, (s, str(s.run_dir(shared)), task_device))
                for s in todo]
        executors.run_ray(_execute, jobs, results_root=shared,
                          resources=executors.task_resources(device, RUN_THREADS),
                          address=address, num_cpus=workers, max_retries=max_retries,
                          on_done=on_done, on_poll=on_poll if progress else None)
    bar.close()


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None if it is missing or being replaced."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_status(profile: StudyLike, methods: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, *, results_root: Path | str | None = None,
               task_seed: int | None = None) -> pd.DataFrame:
    """`run_table` plus where each run stands, read from its folder (so it works the same for
    runs made by any executor, on any node sharing the folder): ``state`` is done, started
    (it has reached an iteration: running now, or stopped and resumable) or pending;
    ``iteration`` is the last one reached (of ``iterations``), ``host`` where, and
    ``updated_s_ago`` how long ago (a large value with state started: nothing runs it)."""
    study = validate_grid(profile, methods, seeds, task_seed=task_seed, results_root=results_root)
    table = run_table(study)
    now = time.time()
    rows = []
    for row in table.itertuples():
        info = _read_json(Path(row.dir) / "progress.json") or {}
        done = _read_json(Path(row.dir) / "done.json") if row.done else None
        state = "done" if row.done else "started" if info else "pending"
        rows.append({"state": state, "iteration": info.get("iteration", 0),
                     "iterations": info.get("iterations", study.profile.iterations),
                     "host": (done or {}).get("host", info.get("host", "")),
                     "updated_s_ago": round(now - info["time"]) if "time" in info else None})
    return pd.concat([table, pd.DataFrame(rows, index=table.index)], axis=1)


def run_table(profile: StudyLike, methods: Sequence[str] | None = None,
              seeds: Sequence[int] | None = None, *, results_root: Path | str | None = None,
              task_seed: int | None = None) -> pd.DataFrame:
    """One row per grid cell with its directory and whether it finished."""
    study = validate_grid(profile, methods, seeds, task_seed=task_seed, results_root=results_root)
    return spec_table(grid_specs(study), results_root=study.results_root)


def _done_wall(done: Path) -> float:
    """The wall time in a run's done.json; `ResultsError` naming it if it does not decode."""
    try:
        return float(json.loads(done.read_text())["wall_s"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"{done} is corrupt ({type(exc).__name__}: {exc}); delete it to "
                           "rerun that run") from None


def spec_table(specs: Sequence[RunSpec], *, results_root: Path | str = DEFAULT_RESULTS,
               ablation_column: bool = False) -> pd.DataFrame:
    """One row per spec: method, seed, run id, directory, whether it finished, its wall time
    (and, with `ablation_column`, its ablation: `ablations.DEFAULT` for the profile's own)."""
    rows = []
    for spec in specs:
        path = spec.run_dir(results_root)
        done = path / "done.json"
        wall = _done_wall(done) if done.exists() else float("nan")
        row = {"method": spec.method, "seed": spec.seed, "run_id": spec.run_id,
               "dir": str(path), "done": done.exists(), "wall_s": wall}
        if ablation_column:
            row = {"ablation": spec.ablation or ablation_registry.DEFAULT, **row}
        rows.append(row)
    return pd.DataFrame(rows)


def ablation_specs(profile: str, ablations: str | Sequence[str] = "all",
                   methods: Sequence[str] = ("pearl",), seeds: Sequence[int] = (0, 1, 2), *,
                   task_seed: int = ablation_registry.HELDOUT_TASK_SEED) -> list[RunSpec]:
    """The default runs (the grid's own cells on `task_seed`) and every ablation's runs, for
    each method the ablation applies to (`Ablation.applies_to`); ablations inactive in the
    profile (switch already off) are left out."""
    study = validate_grid(profile, methods, seeds, task_seed=task_seed)
    names = ablation_registry.select(ablations, study.profile)
    specs = grid_specs(study)
    for name in names:
        ab = ablation_registry.get_ablation(name)
        specs += [RunSpec(m, s, study.name, study.task_seed, name)
                  for m in study.methods if ab.applies_to(m) for s in study.seeds]
    return specs


def run_ablations(profile: str, ablations: str | Sequence[str] = "all",
                  methods: Sequence[str] = ("pearl",), seeds: Sequence[int] = (0, 1, 2), *,
                  task_seed: int = ablation_registry.HELDOUT_TASK_SEED,
                  results_root: Path | str = DEFAULT_RESULTS, **run_kwargs: Any) -> pd.DataFrame:
    """Run the default and every ablation not finished yet (`ablation_specs`) through the same
    executors as the grid (`run_specs`: workers, device, executor, address, ...); return
    `ablation_table`."""
    specs = ablation_specs(profile, ablations, methods, seeds, task_seed=task_seed)
    run_specs(specs, results_root=results_root, desc=f"ablations[{profile}]", **run_kwargs)
    return spec_table(specs, results_root=results_root, ablation_column=True)


def ablation_table(profile: str, ablations: str | Sequence[str] = "all",
                   methods: Sequence[str] = ("pearl",), seeds: Sequence[int] = (0, 1, 2), *,
                   task_seed: int = ablation_registry.HELDOUT_TASK_SEED,
                   results_root: Path | str = DEFAULT_RESULTS) -> pd.DataFrame:
    """`run_table` of the ablation study (column ``ablation``; `ablations.DEFAULT` for the
    profile's own runs), without running anything."""
    specs = ablation_specs(profile, ablations, methods, seeds, task_seed=task_seed)
    return spec_table(specs, results_root=results_root, ablation_column=True)


def finished_table(profile: StudyLike, methods: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None, *,
                   results_root: Path | str | None = None) -> pd.DataFrame:
    """`run_table` of runs that must already exist (the notebooks that only read results):
    never trains; a missing run raises `FileNotFoundError` naming it and the command that
    produces it."""
    study = validate_grid(profile, methods, seeds, results_root=results_root)
    table = run_table(study)
    if not table.done.all():
        missing = ", ".join(table[~table.done].run_id)
        raise FileNotFoundError(
            f"{(~table.done).sum()} run(s) of the {study.name!r} grid are missing in "
            f"{study.results_root} ({missing}). Produce them with notebook 03 or with\n    "
            f"python -m ecmeta_lib run --profile {study.name} --seeds "
            f"{' '.join(map(str, study.seeds))} --results {study.results_root}")
    return table


