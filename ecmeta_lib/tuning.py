"""Choosing settings on validation data only: ``python -m ecmeta_lib tune``.

A candidate is a base profile with some fields overridden (``--set agent.lr=1e-3,3e-3`` gives
two candidates; several ``--set`` give their product). Every (candidate, method, seed, task seed)
is trained with `train` and scored by its final policy's gap to the per-slot oracle on that task
seed's test conditions: its own Ti for ``sac_aisf_i``, the mean over T1-T3 for the others. Only
task seeds >= `MIN_VALIDATION_TASK_SEED` are accepted: the reported results use task seed 0 (and
a held-out seed nobody tunes on), so nothing is ever chosen on the conditions that are reported.

Writes one row per run to ``<out>`` (CSV; runs already in it are not redone) and prints the
candidates' mean score with a 95 % Student-t CI over seeds (each seed's score first averaged
over the task seeds, so the CI is over independent training seeds only).
"""

from __future__ import annotations

import ast
import itertools
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from .agents.config import FIELD_GROUP
from .cache import write_csv
from .stats import mean_ci

MIN_VALIDATION_TASK_SEED = 100
"""Task seeds below this are reported (0) or reserved as never-tuned (see the README)."""


def parse_overrides(specs: Sequence[str]) -> list[dict[str, Any]]:
    """``["agent.lr=1e-3,3e-3", "t_train=40"]`` -> the product of the listed values, as dicts."""
    axes: list[list[tuple[str, Any]]] = []
    for spec in specs:
        if "=" not in spec:
            raise ValueError(f"--set needs FIELD=V1[,V2...], got {spec!r}")
        key, values = spec.split("=", 1)
        parsed = []
        for text in values.split(","):
            try:
                parsed.append((key.strip(), ast.literal_eval(text.strip())))
            except (ValueError, SyntaxError):
                parsed.append((key.strip(), text.strip()))
        axes.append(parsed)
    return [dict(combo) for combo in itertools.product(*axes)] if axes else [{}]


def apply_overrides(profile: Any, overrides: dict[str, Any], *, couple: bool = False) -> Any:
    """A copy of `profile` with ``field`` / ``agent.field`` values replaced (validated by the
    dataclasses themselves). ``couple``: the agent's dependent choices that its compatibility
    rules no longer allow are switched off with them (`SACConfig.switch`), as an ablation does."""
    agent_kw = {k[len("agent."):]: v for k, v in overrides.items() if k.startswith("agent.")}
    prof_kw = {k: v for k, v in overrides.items() if not k.startswith("agent.")}
    unknown = [k for k in prof_kw if not hasattr(profile, k)]
    unknown += [f"agent.{k}" for k in agent_kw if k not in FIELD_GROUP]
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}")
    agent = profile.agent.switch(**agent_kw) if couple else profile.agent.with_(**agent_kw)
    return replace(profile, agent=agent, **prof_kw)


def _label(overrides: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "(base)"


def _score(final: pd.DataFrame, method: str) -> float:
    if method.startswith("sac_aisf_"):
        own = f"T{method[-1]}"
        return float(final.loc[final["condition"] == own, "gap_to_oracle_pct"].iloc[0])
    return float(final["gap_to_oracle_pct"].mean())


def _run_one(job: dict[str, Any]) -> dict[str, Any]:
    from .cache import run_key
    from .profiles import get_profile
    from .training import train

    prof = apply_overrides(get_profile(job["profile"]), job["overrides"])
    key = run_key(job["method"], prof, job["seed"], job["task_seed"])
    run_dir = Path(job["root"]) / f"{job['method']}-s{job['seed']}-t{job['task_seed']}-{key[:10]}"
    res = train(job["method"], prof, job["seed"], run_dir, task_seed=job["task_seed"],
                progress=False, num_threads=1)
    final = res.final
    return {"candidate": _label(job["overrides"]), "method": job["method"], "seed": job["seed"],
            "task_seed": job["task_seed"], "score_gap_pct": _score(final, job["method"]),
            **{f"gap_{c}_pct": g for c, g in zip(final["condition"], final["gap_to_oracle_pct"],
                                                 strict=True)},
            "critic_rmse_s": float(final["critic_rmse_s"].iloc[0]),
            "best_iteration": int(res.best_iteration), "wall_s": round(res.wall_s, 1),
            "run_dir": str(run_dir)}


def tune(profile: str, methods: Sequence[str], seeds: Sequence[int], task_seeds: Sequence[int],
         overrides: Sequence[str], *, out: str | os.PathLike, workers: int = 1,
         results_root: str | os.PathLike = "results/tune") -> pd.DataFrame:
    """Train every candidate x method x seed x task seed not yet in `out`; return the summary
    (candidate, method, seeds, mean score, CI)."""
    low = [t for t in task_seeds if t < MIN_VALIDATION_TASK_SEED]
    if low:
        raise ValueError(f"task seeds {low} are below {MIN_VALIDATION_TASK_SEED}: selection runs "
                         "only on validation task seeds, never on reported ones")
    from .profiles import get_profile, training_conditions

    base = get_profile(profile)
    for m in methods:
        training_conditions(m)
    cands = parse_overrides(overrides)
    for c in cands:
        apply_overrides(base, c)  # refuses a bad field or value before any training
    out = Path(out)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(
        columns=["candidate", "method", "seed", "task_seed"])
    have = set(zip(done["candidate"], done["method"], done["seed"], done["task_seed"],
                   strict=True))
    jobs = [{"profile": profile, "overrides": c, "method": m, "seed": int(s),
             "task_seed": int(t), "root": str(Path(results_root) / profile)}
            for c in cands for m in methods for t in task_seeds for s in seeds
            if (_label(c), m, int(s), int(t)) not in have]
    rows: list[dict[str, Any]] = []

    def keep(row: dict[str, Any]) -> None:  # append as each run ends: nothing computed is lost
        nonlocal done
        rows.append(row)
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        write_csv(out, done)
        print(f"{row['candidate']} | {row['method']} s{row['seed']} t{row['task_seed']}: "
              f"{row['score_gap_pct']:+.2f} %  ({row['wall_s']} s)", flush=True)

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for row in pool.map(_run_one, jobs):
                keep(row)
    else:
        for job in jobs:
            keep(_run_one(job))
    return summarise(done)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean score per (candidate, method) with a 95 % t CI over training seeds."""
    out = []
    for (cand, method), g in runs.groupby(["candidate", "method"], sort=False):
        per_seed = g.groupby("seed")["score_gap_pct"].mean().to_numpy(float)
        mean, lo, hi = mean_ci(per_seed)
        out.append({"candidate": cand, "method": method, "seeds": len(per_seed),
                    "task_seeds": g["task_seed"].nunique(),
                    "mean_gap_pct": mean, "ci_low": lo, "ci_high": hi,
                    "critic_rmse_s": float(g["critic_rmse_s"].mean())})
    return pd.DataFrame(out).sort_values(["method", "mean_gap_pct"]).reset_index(drop=True)
