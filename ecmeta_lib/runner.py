"""The experiment grid: (method x seed) runs for a profile, cached, resumable and parallel.

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

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import __version__, executors
from . import ablations as ablation_registry
from .agent_policies import adaptation_curve, collect_context
from .cache import cached_csv, digest, jsonable, run_key, write_csv, write_json
from .checkpoints import load_agent
from .conditions import DT_NAMES, TEST_NAMES, make_task_set
from .env import EdgeCloudEnv
from .evaluation import FINAL_SEED, evaluate
from .paths import figures_path, project_root
from .policies import BlindGreedyPolicy, GreedyPolicy, IdentifyGreedyPolicy, RandomPolicy
from .profiles import METHODS, Profile, get_profile
from .stats import CI_SLOTS, slot_bootstrap_ci
from .training import train

DEFAULT_RESULTS = Path("results")


def notebook_paths(results_dir: Path | str | None,
                   figures_dir: Path | str) -> tuple[Path, Path]:
    """A notebook's results folder (default ``<repo>/results``) and its figures folder (created;
    a relative one is under the repository root, see `paths.figures_path`)."""
    results = Path(results_dir) if results_dir else project_root() / DEFAULT_RESULTS
    return results, figures_path(figures_dir)


ADAPT_CONTEXT = (0, 1, 2, 5, 10, 20, 50)


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


def validate_grid(profile: str, methods: Sequence[str], seeds: Sequence[int]) -> None:
    get_profile(profile)  # raises on an unknown profile
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; valid: {', '.join(METHODS)}")
    if not seeds:
        raise ValueError("at least one seed is needed")
    bad = [s for s in seeds if not isinstance(s, int) or s < 0]
    if bad:
        raise ValueError(f"seeds must be non-negative integers, got {bad}")


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


def run_grid(profile: str, methods: Sequence[str] = METHODS, seeds: Sequence[int] = (0, 1, 2), *,
             workers: int | None = None, results_root: Path | str = DEFAULT_RESULTS,
             task_seed: int = 0, device: str = "auto", progress: bool = True,
             executor: str = "local", address: str | None = None,
             max_retries: int = 3) -> pd.DataFrame:
    """Run every (method, seed) of the grid that is not finished yet; return the run table.

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
    validate_grid(profile, methods, seeds)
    specs = [RunSpec(m, int(s), profile, task_seed) for m in methods for s in seeds]
    run_specs(specs, workers=workers, results_root=results_root, device=device,
              progress=progress, executor=executor, address=address, max_retries=max_retries,
              desc=f"grid[{profile}]")
    return run_table(profile, methods, seeds, results_root=results_root, task_seed=task_seed)


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


def run_status(profile: str, methods: Sequence[str] = METHODS,
               seeds: Sequence[int] = (0, 1, 2), *, results_root: Path | str = DEFAULT_RESULTS,
               task_seed: int = 0) -> pd.DataFrame:
    """`run_table` plus where each run stands, read from its folder (so it works the same for
    runs made by any executor, on any node sharing the folder): ``state`` is done, started
    (it has reached an iteration: running now, or stopped and resumable) or pending;
    ``iteration`` is the last one reached (of ``iterations``), ``host`` where, and
    ``updated_s_ago`` how long ago (a large value with state started: nothing runs it)."""
    table = run_table(profile, methods, seeds, results_root=results_root, task_seed=task_seed)
    now = time.time()
    rows = []
    for row in table.itertuples():
        info = _read_json(Path(row.dir) / "progress.json") or {}
        done = _read_json(Path(row.dir) / "done.json") if row.done else None
        state = "done" if row.done else "started" if info else "pending"
        rows.append({"state": state, "iteration": info.get("iteration", 0),
                     "iterations": info.get("iterations", get_profile(profile).iterations),
                     "host": (done or {}).get("host", info.get("host", "")),
                     "updated_s_ago": round(now - info["time"]) if "time" in info else None})
    return pd.concat([table, pd.DataFrame(rows, index=table.index)], axis=1)


def run_table(profile: str, methods: Sequence[str] = METHODS, seeds: Sequence[int] = (0, 1, 2), *,
              results_root: Path | str = DEFAULT_RESULTS, task_seed: int = 0) -> pd.DataFrame:
    """One row per grid cell with its directory and whether it finished."""
    return spec_table([RunSpec(m, int(s), profile, task_seed) for m in methods for s in seeds],
                      results_root=results_root)


def spec_table(specs: Sequence[RunSpec], *, results_root: Path | str = DEFAULT_RESULTS,
               ablation_column: bool = False) -> pd.DataFrame:
    """One row per spec: method, seed, run id, directory, whether it finished, its wall time
    (and, with `ablation_column`, its ablation: `ablations.DEFAULT` for the profile's own)."""
    rows = []
    for spec in specs:
        path = spec.run_dir(results_root)
        done = path / "done.json"
        wall = json.loads(done.read_text())["wall_s"] if done.exists() else float("nan")
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
    validate_grid(profile, methods, seeds)
    names = ablation_registry.select(ablations, get_profile(profile))
    specs = [RunSpec(m, int(s), profile, task_seed) for m in methods for s in seeds]
    for name in names:
        ab = ablation_registry.get_ablation(name)
        specs += [RunSpec(m, int(s), profile, task_seed, name)
                  for m in methods if ab.applies_to(m) for s in seeds]
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


def complete_ablation_rows(table: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """The rows of an `ablation_table` that can be reported, and the (ablation, method) pairs
    that cannot yet.

    A pair is complete when every seed of it and every seed of the default's runs of the same
    method are done; the default's rows are kept for the methods of the complete pairs. A study
    run for one method (``ablate --methods pearl``) thus reports that method's column."""
    done = table.groupby(["ablation", "method"], sort=False).done.all()
    default = ablation_registry.DEFAULT
    pairs = [k for k in done.index if k[0] != default]
    ok = {(a, m) for a, m in pairs if done[(a, m)] and done.get((default, m), False)}
    keep = ok | {(default, m) for _, m in ok}
    mask = [(a, m) in keep for a, m in zip(table.ablation, table.method, strict=True)]
    return table[mask], [k for k in pairs if k not in ok]


def finished_table(profile: str, methods: Sequence[str], seeds: Sequence[int], *,
                   results_root: Path | str = DEFAULT_RESULTS) -> pd.DataFrame:
    """`run_table` of runs that must already exist (the notebooks that only read results):
    never trains; a missing run raises `FileNotFoundError` naming it and the command that
    produces it."""
    table = run_table(profile, methods, seeds, results_root=results_root)
    if not table.done.all():
        missing = ", ".join(table[~table.done].run_id)
        raise FileNotFoundError(
            f"{(~table.done).sum()} run(s) of the {profile!r} grid are missing in "
            f"{results_root} ({missing}). Produce them with notebook 03 or with\n    "
            f"python -m ecmeta_lib run --profile {profile} --seeds "
            f"{' '.join(map(str, seeds))} --results {results_root}")
    return table


def _gather(table: pd.DataFrame, filename: str) -> pd.DataFrame:
    frames = []
    for row in table.itertuples():
        path = Path(row.dir) / filename
        if row.done and path.exists():
            extra = {"ablation": row.ablation} if "ablation" in table.columns else {}
            frames.append(pd.read_csv(path).assign(method=row.method, seed=row.seed, **extra))
    if not frames:
        raise FileNotFoundError(f"no finished run has {filename}; run the grid first")
    return pd.concat(frames, ignore_index=True)


def load_curves(table: pd.DataFrame) -> pd.DataFrame:
    """Learning curves of every finished run (method, seed, env_steps, condition, latency)."""
    return _gather(table, "curve.csv")


def load_finals(table: pd.DataFrame) -> pd.DataFrame:
    """Final evaluations of every finished run on T1-T3."""
    return _gather(table, "final.csv")


def load_adaptation(table: pd.DataFrame) -> pd.DataFrame:
    """PEARL's adaptation curves of every finished PEARL run."""
    return _gather(table[table.method == "pearl"], "adaptation.csv")


def load_train_logs(table: pd.DataFrame) -> pd.DataFrame:
    return _gather(table, "train_log.csv")


def yardsticks(profile: str) -> list[Any]:
    """The deterministic policies scored beside the learned ones: greedy (knows the condition),
    random, blind greedy (never learns the condition) and identify-then-greedy with the
    profile's ``eval_context`` transitions (PEARL's budget)."""
    return [GreedyPolicy(), RandomPolicy(seed=FINAL_SEED), BlindGreedyPolicy(),
            IdentifyGreedyPolicy(get_profile(profile).eval_context)]


def baselines(profile: str, *, results_root: Path | str = DEFAULT_RESULTS, task_seed: int = 0,
              seed: int = FINAL_SEED) -> pd.DataFrame:
    """Oracle and the `yardsticks` on T1-T3, cached on disk.

    Scored on the very slots of the learned methods' final.csv (seed ``FINAL_SEED``,
    ``final_slots`` slots), so every row of the results table shares one slot stream and one
    oracle. A deterministic policy has no seed: its interval is a slot bootstrap
    (``ci_kind`` says so)."""
    prof = get_profile(profile)
    sticks = yardsticks(profile)
    key = digest({"profile": prof, "task_seed": task_seed, "seed": seed, "version": __version__,
                 "policies": sorted(type(p).__name__ for p in sticks)})
    path = Path(results_root) / profile / f"baselines-{key}.csv"
    return cached_csv(path, lambda: _score_baselines(prof, sticks, task_seed, seed))


def _score_baselines(prof: Any, sticks: Sequence[Any], task_seed: int,
                     seed: int) -> pd.DataFrame:
    task_set = make_task_set(task_seed, prof.env.system, prof.env.conditions)
    rows = []
    for name in TEST_NAMES:
        oracle_lat = None
        for policy in sticks:
            res = evaluate(policy, name, n_slots=prof.final_slots, seed=seed,
                           task_set=task_set, config=prof.env)
            lo, hi = slot_bootstrap_ci(res.per_slot.mean_latency_s.to_numpy(), seed=seed)
            rows.append({**res.summary, "method": policy.name, "condition": name,
                         "ci_low_s": lo, "ci_high_s": hi, "ci_kind": CI_SLOTS})
            oracle_lat = res.per_slot["oracle_latency_s"].to_numpy()
        assert oracle_lat is not None
        lo, hi = slot_bootstrap_ci(oracle_lat, seed=seed)
        rows.append({"policy": "oracle", "method": "oracle", "condition": name, "seed": seed,
                     "task_seed": task_seed, "n_slots": prof.final_slots,
                     "mean_latency_s": float(oracle_lat.mean()), "ci_low_s": lo,
                     "ci_high_s": hi, "ci_kind": CI_SLOTS,
                     "oracle_latency_s": float(oracle_lat.mean()), "gap_to_oracle_pct": 0.0,
                     "accuracy_violation_rate": float("nan"), "cloud_share": float("nan")})
    return pd.DataFrame(rows)


def yardstick_adaptation(profile: str, *, results_root: Path | str = DEFAULT_RESULTS,
                         task_seed: int = 0, n_context: Sequence[int] = ADAPT_CONTEXT,
                         seed: int = FINAL_SEED) -> pd.DataFrame:
    """The yardsticks on PEARL's adaptation grid, cached: `IdentifyGreedyPolicy` with n context
    slots for every n of `n_context` (n = 0 is `BlindGreedyPolicy`), on final.csv's slots.
    Columns: method, condition, n_context, mean_latency_s, oracle_latency_s, gap_to_oracle_pct."""
    prof = get_profile(profile)
    key = digest({"profile": prof, "task_seed": task_seed, "seed": seed, "version": __version__,
                 "n": list(n_context), "what": "identify_greedy"})
    path = Path(results_root) / profile / f"yardstick-adaptation-{key}.csv"

    def compute() -> pd.DataFrame:
        task_set = make_task_set(task_seed, prof.env.system, prof.env.conditions)
        rows = []
        for name in TEST_NAMES:
            for n in n_context:
                s = evaluate(IdentifyGreedyPolicy(int(n)), name, n_slots=prof.final_slots,
                             seed=seed, task_set=task_set, config=prof.env).summary
                rows.append({"method": "identify_greedy", "condition": name,
                             "n_context": int(n),
                             **{k: s[k] for k in ("mean_latency_s", "oracle_latency_s",
                                                  "gap_to_oracle_pct")}})
        return pd.DataFrame(rows)

    return cached_csv(path, compute)


def latent_posteriors(run_dir: Path | str, profile: str, *,
                      n_context: Sequence[int] = ADAPT_CONTEXT, repeats: int = 3,
                      task_seed: int = 0) -> pd.DataFrame:
    """Posterior q(z|c) of a trained PEARL run on every condition (six DTs and T1-T3) as the
    context grows: one row per (condition, n_context, repeat) with the posterior mean (flattened
    over users when z is per user) projected on its first two principal components (z0, z1,
    fitted on the largest contexts) and the mean posterior variance (its narrowing)."""
    prof = get_profile(profile)
    agent = load_agent(run_dir)
    if agent.encoder is None:
        raise ValueError(f"{run_dir} is not a PEARL run (its agent has no context encoder)")
    task_set = make_task_set(task_seed, prof.env.system, prof.env.conditions)
    rows, mus = [], []
    for name in DT_NAMES + TEST_NAMES:
        env = EdgeCloudEnv(condition=name, task_set=task_set, config=prof.env)
        for rep in range(repeats):
            full = collect_context(agent, env, max(n_context), seed=7_000 + rep)
            for n in n_context:
                ctx = {k: v[:n] for k, v in full.items()}
                with torch.no_grad():
                    mu, var = agent.posterior(ctx if n > 0 else None)
                mus.append(mu.cpu().numpy().ravel())  # (L,) or per-user (U, L)
                rows.append({"condition": name, "kind": "DT" if name in DT_NAMES else "test",
                             "n_context": int(n), "repeat": rep,
                             "posterior_var": float(var.mean())})
    out = pd.DataFrame(rows)
    mu = np.asarray(mus)
    big = (out.n_context == max(n_context)).to_numpy()
    center = mu[big].mean(axis=0)
    _, _, vt = np.linalg.svd(mu[big] - center, full_matrices=False)
    proj = (mu - center) @ vt[:2].T
    out["z0"] = proj[:, 0]
    out["z1"] = proj[:, 1] if proj.shape[1] > 1 else 0.0
    return out


def latent_probe(run_dir: Path | str, profile: str, *, n_context: int = 20, task_seed: int = 0,
                 context_seed: int = 7_000) -> pd.DataFrame:
    """Does z_u carry the condition? A linear probe of a per-user-latent PEARL run.

    On every condition, the meta-policy collects ``n_context`` context transitions (as in
    adaptation) and each user's posterior mean z_u is taken; a least-squares linear map from
    [z_u, 1] to the log compute intensity of each of the user's models (the condition's
    ``flop_per_bit``, which the agent never reads) is fitted on the six DTs (6 x U samples) and
    scored on the unseen T1-T3 (3 x U samples). Returns one row per model: R^2 on the DTs (fit)
    and on T1-T3 (held out), and the mean per-user KL of the held-out posteriors (nats)."""
    prof = get_profile(profile)
    agent = load_agent(run_dir)
    if agent.encoder is None or not agent.cfg.encoder.latent_per_user:
        raise ValueError(f"{run_dir} is not a per-user-latent PEARL run")
    task_set = make_task_set(task_seed, prof.env.system, prof.env.conditions)
    feats: dict[str, np.ndarray] = {}
    kls: list[float] = []
    for name in DT_NAMES + TEST_NAMES:
        env = EdgeCloudEnv(condition=name, task_set=task_set, config=prof.env)
        ctx = collect_context(agent, env, n_context, seed=context_seed)
        with torch.no_grad():
            mu, var = agent.posterior(ctx)
        feats[name] = mu.cpu().numpy()  # (U, L)
        if name in TEST_NAMES:
            kls.append(float(agent.encoder.kl_to_prior(mu, var)))

    def design(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([feats[n] for n in names])
        y = np.concatenate([np.log(task_set[n].flop_per_bit) for n in names])
        return np.hstack([x, np.ones((len(x), 1))]), y

    x_fit, y_fit = design(DT_NAMES)
    x_test, y_test = design(TEST_NAMES)
    coef, *_ = np.linalg.lstsq(x_fit, y_fit, rcond=None)

    def r2(x: np.ndarray, y: np.ndarray, j: int) -> float:
        resid = y[:, j] - x @ coef[:, j]
        return float(1.0 - resid.var() / y[:, j].var())

    return pd.DataFrame([{"model": j, "r2_fit_dts": r2(x_fit, y_fit, j),
                          "r2_heldout_tests": r2(x_test, y_test, j),
                          "n_context": n_context, "kl_per_user_heldout": float(np.mean(kls))}
                         for j in range(y_fit.shape[1])])
