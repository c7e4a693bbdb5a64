"""Two training profiles' agents side by side on the same slots (e.g. Table I as specified,
`paper_8k`, against the `quick` profile at the same 8,000 gradient steps).

Each profile's final.csv is scored on its own ``final_slots`` (200 for `paper`, 100 for `quick`),
so the files alone would compare different slot sets. `rescore` therefore scores every finished
run's best agent again on the first ``n_slots`` slots of ``FINAL_SEED`` (the stream both files
start with; the oracle is the same per slot), on T1-T3, and PEARL at each requested context size.
`compare` pairs the two profiles by training seed on those slots: the gap difference of each seed,
its Student-t CI over seeds and a one-sided paired t test (`stats.paired_test`).

Rescoring a run at its own ``final_slots`` gives its final.csv back (a test checks it), so the
numbers here are final.csv's numbers on a common stream, not a second evaluation protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .conditions import TEST_NAMES
from .evaluation import FINAL_SEED, evaluate
from .profiles import training_conditions
from .stats import mean_ci, paired_test
from .study import ResultsError, Study

COLUMNS = ("profile", "method", "seed", "condition", "n_context", "n_slots", "mean_latency_s",
           "oracle_latency_s", "gap_to_oracle_pct", "best_iteration")
"""Columns of `rescore`'s frame: one row per (run, condition, context size)."""


def require_finished(study: Study, table: pd.DataFrame, n_slots: int) -> None:
    """`ResultsError` naming the unfinished runs of `table` (and the command that trains them),
    or a `n_slots` larger than the profile scored; None if `rescore` can read every run."""
    prof = study.profile
    if not 1 <= n_slots <= prof.final_slots:
        raise ResultsError(f"n_slots must be in 1..{prof.final_slots} (profile {prof.name!r} "
                           f"scores {prof.final_slots} final slots), got {n_slots}")
    missing = table[~table.done]
    if len(missing):
        runs = ", ".join(f"{r.method}-s{r.seed}" for r in missing.itertuples())
        raise ResultsError(
            f"profile {prof.name!r} (task seed {study.task_seed}) has runs not finished (or "
            f"not started): {runs}; "
            f"train them with: python -m ecmeta_lib run --profile {prof.name} --methods "
            f"{' '.join(sorted(set(missing.method)))} --seeds "
            f"{' '.join(str(s) for s in sorted(set(missing.seed)))} --task-seed "
            f"{study.task_seed} --results {study.results_root}")


def rescore(study: Study, table: pd.DataFrame, n_slots: int,
            n_contexts: Sequence[int] | None = None) -> pd.DataFrame:
    """Every run of `table` (`runner.run_table(study)`, all finished) scored on the first `n_slots`
    final slots of T1-T3: its best agent (agent.pt), greedy; PEARL adapted with each of
    `n_contexts` transitions (default: none and the profile's ``eval_context``).

    Raises `ResultsError` as `require_finished` does."""
    from .agent_policies import make_policy
    from .checkpoints import load_agent

    require_finished(study, table, n_slots)
    prof = study.profile
    contexts = tuple(n_contexts) if n_contexts is not None else (0, prof.eval_context)
    rows = []
    for run in table.itertuples():
        agent = load_agent(Path(run.dir))
        best = pd.read_csv(Path(run.dir) / "final.csv").best_iteration.iloc[0]
        for n in (contexts if agent.encoder is not None else (0,)):
            for name in TEST_NAMES:
                s = evaluate(make_policy(agent, run.method, n), name, n_slots=n_slots,
                             seed=FINAL_SEED, task_set=study.task_set, config=prof.env,
                             with_oracle=True).summary
                rows.append({"profile": prof.name, "method": run.method, "seed": run.seed,
                             "condition": name, "n_context": n, "n_slots": n_slots,
                             "mean_latency_s": s["mean_latency_s"],
                             "oracle_latency_s": s["oracle_latency_s"],
                             "gap_to_oracle_pct": s["gap_to_oracle_pct"],
                             "best_iteration": int(best)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def compare(scores: pd.DataFrame, a: str, b: str, alternative: str = "greater") -> pd.DataFrame:
    """Profile `a` against profile `b` per (method, context size, condition), from `rescore`'s
    rows of both: each profile's mean gap to the oracle with its t CI over seeds, and the paired
    difference a - b (same seed index, same slots) with its CI and one-sided p (`alternative`:
    "greater" tests that `a`'s gap is larger). Only seeds both profiles have are paired."""
    for p in (a, b):
        if p not in set(scores.profile):
            raise ValueError(f"no scores of profile {p!r}; have {sorted(set(scores.profile))}")
    slots = scores.groupby("profile").n_slots.unique()
    if any(len(v) != 1 for v in slots) or slots[a][0] != slots[b][0]:
        raise ValueError(f"the profiles were scored on different slots: {dict(slots)}")
    key = ["method", "n_context", "condition"]
    wide = scores.pivot_table(index=[*key, "seed"], columns="profile",
                              values="gap_to_oracle_pct").reset_index()
    rows = []
    for (method, n, cond), g in wide.groupby(key, sort=False):
        both = g.dropna(subset=[a, b])
        ma, la, ha = mean_ci(g[a].dropna())
        mb, lb, hb = mean_ci(g[b].dropna())
        test = paired_test((both[a] - both[b]).to_numpy(), alternative=alternative)
        rows.append({"method": method, "n_context": int(n), "condition": cond,
                     "own_condition": cond in training_conditions(method),
                     f"gap_{a}_pct": ma, f"ci_low_{a}": la, f"ci_high_{a}": ha,
                     f"gap_{b}_pct": mb, f"ci_low_{b}": lb, f"ci_high_{b}": hb,
                     "n_pairs": test["n"], "diff_pct": test["mean"],
                     "diff_ci_low": test["ci_low"], "diff_ci_high": test["ci_high"],
                     "p_value": test["p_value"], "alternative": alternative})
    return pd.DataFrame(rows)


def comparison_markdown(comp: pd.DataFrame, a: str, b: str, n_slots: int,
                        scores: pd.DataFrame | None = None) -> str:
    """The comparison as a Markdown table: gap to the oracle (%, mean [95 % t CI over seeds])
    of each profile and their paired difference with its one-sided p; with `scores`, a line per
    profile and method giving the iteration whose weights were kept (validation) per seed."""
    from .profiles import label

    def cell(m: float, lo: float, hi: float) -> str:
        return f"{m:+.1f}" + ("" if not np.isfinite(lo) else f" [{lo:+.1f}, {hi:+.1f}]")

    head = ["method", "condition", f"{a} gap", f"{b} gap", f"{a} - {b} (paired)", "p", "n"]
    lines = [f"Gap to the per-slot oracle (%, mean [95 % t CI over training seeds]) on the same "
             f"{n_slots} final slots (`FINAL_SEED`) of each test condition; the difference is "
             f"paired by training seed, p one-sided ({a} worse).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in comp.itertuples():
        name = f"PEARL({r.n_context} transitions)" if r.method == "pearl" else label(r.method)
        cond = r.condition + (" (own)" if r.own_condition else "")
        p = "" if not np.isfinite(r.p_value) else f"{r.p_value:.3g}"
        lines.append("| " + " | ".join([
            name, cond, cell(getattr(r, f"gap_{a}_pct"), getattr(r, f"ci_low_{a}"),
                             getattr(r, f"ci_high_{a}")),
            cell(getattr(r, f"gap_{b}_pct"), getattr(r, f"ci_low_{b}"),
                 getattr(r, f"ci_high_{b}")),
            cell(r.diff_pct, r.diff_ci_low, r.diff_ci_high), p, str(r.n_pairs)]) + " |")
    if scores is not None:
        from .profiles import get_profile

        lines.append("")
        for (prof, method), g in scores.groupby(["profile", "method"], sort=False):
            best = g.drop_duplicates("seed").sort_values("seed")
            lines.append(f"* {prof}, {label(method)}: weights kept from iteration "
                         + ", ".join(f"{int(i)}" for i in best.best_iteration)
                         + f" of {get_profile(prof).iterations} (seeds "
                         + ", ".join(str(s) for s in best.seed) + ")")
    return "\n".join(lines) + "\n"


def compare_profiles(a: str, b: str, methods: Sequence[str], seeds: Sequence[int], *,
                     task_seed: int = 0, results_root: Path | str = "results",
                     n_slots: int | None = None,
                     out_dir: Path | str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`rescore` both profiles' runs of `methods` x `seeds` on the first `n_slots` final slots
    (default: the smaller profile's ``final_slots``) and `compare` them. With `out_dir`, writes
    ``profile_comparison_scores.csv`` (per run), ``profile_comparison.csv`` and ``.md`` there.
    Every run is checked finished before any is scored."""
    from .runner import run_table

    studies = [Study.of(p, methods, seeds, task_seed=task_seed, results_root=results_root)
               for p in (a, b)]
    if studies[0].profile.env != studies[1].profile.env:
        raise ValueError(f"profiles {a!r} and {b!r} simulate different systems; their gaps "
                         "are not comparable slot by slot")
    n = n_slots or min(s.profile.final_slots for s in studies)
    tables = [run_table(s) for s in studies]
    for s, t in zip(studies, tables, strict=True):  # every run present before any is scored
        require_finished(s, t, n)
    scores = pd.concat([rescore(s, t, n) for s, t in zip(studies, tables, strict=True)],
                       ignore_index=True)
    comp = compare(scores, a, b)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        scores.to_csv(out / "profile_comparison_scores.csv", index=False, float_format="%.6g")
        comp.to_csv(out / "profile_comparison.csv", index=False, float_format="%.6g")
        (out / "profile_comparison.md").write_text(comparison_markdown(comp, a, b, n, scores))
    return scores, comp
