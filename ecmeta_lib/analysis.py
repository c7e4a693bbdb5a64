"""Analysis: what the grid wrote, read back and scored (torch only for the latent probes).

* the runs' files as tidy frames (`load_curves`, `load_finals`, `load_adaptation`,
  `load_train_logs`) of a run table (`runner.run_table`, `runner.finished_table`);
* the deterministic policies scored on the very slots of final.csv (`yardsticks`, `baselines`,
  `yardstick_adaptation`), cached under ``results/<profile>/``;
* the results table (`results_table`, `table_markdown`), the seed bands the figures draw
  (`seed_bands`), the decisions summary (`decision_summary`) and the completeness of an
  ablation study (`complete_ablation_rows`);
* PEARL's posterior q(z|c) (`latent_posteriors`, `latent_separation`, `latent_probe`).

Each function that needs the profile, task seed or results folder takes a `Study` (or the names
`Study.of` resolves), so the task set is drawn once per study. Figures live in `ecmeta_lib.plots`:
they receive these frames and draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import ablations as ablation_registry
from .cache import cached_csv, digest
from .conditions import DT_NAMES, TEST_NAMES
from .evaluation import CURVE_SEED, FINAL_SEED, evaluate
from .policies import BlindGreedyPolicy, GreedyPolicy, IdentifyGreedyPolicy, RandomPolicy
from .profiles import BASELINES, METHODS, Profile, label, method_rank
from .stats import CI_SEEDS, CI_SLOTS, bootstrap_ci, mean_ci
from .study import ADAPT_CONTEXT, ResultsError, Study

MS = 1e3  # s -> ms
PLACES = ("device", "edge", "cloud")
"""Where a user's task runs, as `decisions` records it."""

StudyLike = str | Profile | Study


# ============================================================================================
# the runs' files
# ============================================================================================
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "curve.csv": ("env_steps", "condition", "mean_latency_s"),
    "final.csv": ("condition", "mean_latency_s", "oracle_latency_s", "gap_to_oracle_pct"),
    "adaptation.csv": ("condition", "n_context", "mean_latency_s"),
}
"""Columns a run's file must have for the analysis to read it."""


def read_run_csv(path: Path) -> pd.DataFrame:
    """One results CSV of a run; `ResultsError` (naming the file) if it does not parse or
    lacks a column the analysis reads."""
    try:
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as exc:  # pandas' parser and empty-data errors
        raise ResultsError(f"{path} is not a readable CSV ({' '.join(str(exc).split())}); "
                           "delete its run folder and rerun the grid") from None
    missing = [c for c in REQUIRED_COLUMNS.get(path.name, ()) if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path} lacks column(s) {', '.join(missing)}; delete its run "
                           "folder and rerun the grid")
    return frame


def _gather(table: pd.DataFrame, filename: str) -> pd.DataFrame:
    frames = []
    for row in table.itertuples():
        path = Path(row.dir) / filename
        if row.done and path.exists():
            extra = {"ablation": row.ablation} if "ablation" in table.columns else {}
            frames.append(read_run_csv(path).assign(method=row.method, seed=row.seed, **extra))
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


# ============================================================================================
# the deterministic policies on final.csv's slots
# ============================================================================================
def yardsticks(profile: StudyLike) -> list[Any]:
    """The deterministic policies scored beside the learned ones: greedy (knows the condition),
    random, blind greedy (never learns the condition) and identify-then-greedy with the
    profile's ``eval_context`` transitions (PEARL's budget)."""
    return [GreedyPolicy(), RandomPolicy(seed=FINAL_SEED), BlindGreedyPolicy(),
            IdentifyGreedyPolicy(Study.of(profile).profile.eval_context)]


def baselines(profile: StudyLike, *, results_root: Path | str | None = None,
              task_seed: int | None = None, seed: int = FINAL_SEED,
              n_slots: int | None = None) -> pd.DataFrame:
    """Oracle and the `yardsticks` on T1-T3, cached in ``<profile dir>/baselines-<hash>.csv``.

    By default scored on the very slots of the learned methods' final.csv (seed ``FINAL_SEED``,
    ``final_slots`` slots), so every row of the results table shares one slot stream and one
    oracle; `curve_baselines` scores them on the learning curve's slots instead. A
    deterministic policy has no seed: its interval is a slot bootstrap
    (`stats.bootstrap_ci`; ``ci_kind`` says so)."""
    study = Study.of(profile, task_seed=task_seed, results_root=results_root)
    prof = study.profile
    n = prof.final_slots if n_slots is None else int(n_slots)
    sticks = yardsticks(study)
    payload = {"profile": prof, "task_seed": study.task_seed, "seed": seed,
               "version": __version__, "policies": sorted(type(p).__name__ for p in sticks),
               "ci": "bootstrap_ci"}  # the one bootstrap since the house split
    if n != prof.final_slots:  # the final slots' files keep their key
        payload["n_slots"] = n
    return cached_csv(study.profile_dir / f"baselines-{digest(payload)}.csv",
                      lambda: _score_baselines(study, sticks, seed, n))


def curve_baselines(profile: StudyLike, *, results_root: Path | str | None = None,
                    task_seed: int | None = None) -> pd.DataFrame:
    """`baselines` on the learning curve's slots (``CURVE_SEED``, ``eval_slots`` slots): Fig. 3's
    reference lines and oracle, so that every curve and line of it shares one slot stream."""
    study = Study.of(profile, task_seed=task_seed, results_root=results_root)
    return baselines(study, seed=CURVE_SEED, n_slots=study.profile.eval_slots)


def _score_baselines(study: Study, sticks: Sequence[Any], seed: int,
                     n_slots: int) -> pd.DataFrame:
    prof = study.profile
    rows = []
    for name in TEST_NAMES:
        oracle_lat = None
        for policy in sticks:
            res = evaluate(policy, name, n_slots=n_slots, seed=seed,
                           task_set=study.task_set, config=prof.env)
            lo, hi = bootstrap_ci(res.per_slot.mean_latency_s.to_numpy(), seed=seed)
            rows.append({**res.summary, "method": policy.name, "condition": name,
                         "ci_low_s": lo, "ci_high_s": hi, "ci_kind": CI_SLOTS})
            oracle_lat = res.per_slot["oracle_latency_s"].to_numpy()
        assert oracle_lat is not None
        lo, hi = bootstrap_ci(oracle_lat, seed=seed)
        rows.append({"policy": "oracle", "method": "oracle", "condition": name, "seed": seed,
                     "task_seed": study.task_seed, "n_slots": n_slots,
                     "mean_latency_s": float(oracle_lat.mean()), "ci_low_s": lo,
                     "ci_high_s": hi, "ci_kind": CI_SLOTS,
                     "oracle_latency_s": float(oracle_lat.mean()), "gap_to_oracle_pct": 0.0,
                     "accuracy_violation_rate": float("nan"), "cloud_share": float("nan")})
    return pd.DataFrame(rows)


def yardstick_adaptation(profile: StudyLike, *, results_root: Path | str | None = None,
                         task_seed: int | None = None, n_context: Sequence[int] = ADAPT_CONTEXT,
                         seed: int = FINAL_SEED) -> pd.DataFrame:
    """The yardsticks on PEARL's adaptation grid, cached: `IdentifyGreedyPolicy` with n context
    slots for every n of `n_context` (n = 0 is `BlindGreedyPolicy`), on final.csv's slots.
    Columns: method, condition, n_context, mean_latency_s, oracle_latency_s, gap_to_oracle_pct."""
    study = Study.of(profile, task_seed=task_seed, results_root=results_root)
    prof = study.profile
    key = digest({"profile": prof, "task_seed": study.task_seed, "seed": seed,
                  "version": __version__, "n": list(n_context), "what": "identify_greedy"})
    path = study.profile_dir / f"yardstick-adaptation-{key}.csv"

    def compute() -> pd.DataFrame:
        rows = []
        for name in TEST_NAMES:
            for n in n_context:
                s = evaluate(IdentifyGreedyPolicy(int(n)), name, n_slots=prof.final_slots,
                             seed=seed, task_set=study.task_set, config=prof.env).summary
                rows.append({"method": "identify_greedy", "condition": name,
                             "n_context": int(n),
                             **{k: s[k] for k in ("mean_latency_s", "oracle_latency_s",
                                                  "gap_to_oracle_pct")}})
        return pd.DataFrame(rows)

    return cached_csv(path, compute)




# ============================================================================================
# tables
# ============================================================================================
def results_table(finals: pd.DataFrame, baselines: pd.DataFrame,
                  out_dir: Path | str | None = None, stem: str = "results_table") -> pd.DataFrame:
    """Per method and test condition: final latency with its 95% CI, the kind of that CI, gap to
    the oracle, accuracy-violation rate, cloud share and the oracle latency of the slots it was
    scored on (the same for every row of a condition: one slot stream).

    Learned methods: mean and Student-t CI over seeds of this condition (n = seeds). Heuristics,
    yardsticks and the oracle: one deterministic run, CI a bootstrap over its slots."""
    rows = []
    for (method, cond), g in finals.groupby(["method", "condition"]):
        m, lo, hi = mean_ci(g.mean_latency_s.to_numpy())
        n = int(g.seed.nunique())
        rows.append({"method": method, "condition": cond, "n_seeds": n,
                     "n_slots": int(g.n_slots.iloc[0]) if "n_slots" in g else np.nan,
                     "latency_s": m, "ci_low_s": lo, "ci_high_s": hi,
                     "ci_kind": f"{CI_SEEDS} (n={n})",
                     "gap_to_oracle_pct": float(g.gap_to_oracle_pct.mean()),
                     "accuracy_violation_rate": float(g.accuracy_violation_rate.mean()),
                     "cloud_share": float(g.cloud_share.mean()),
                     "oracle_latency_s": float(g.oracle_latency_s.mean()),
                     # the critic's per-user latency RMS error on held-out slots of the
                     # method's own training conditions (mean over seeds)
                     "critic_rmse_s": float(g.critic_rmse_s.mean())
                     if "critic_rmse_s" in g else np.nan})
    for row in baselines.itertuples():
        n_slots = getattr(row, "n_slots", np.nan)
        rows.append({"method": row.method, "condition": row.condition, "n_seeds": 1,
                     "n_slots": n_slots, "latency_s": row.mean_latency_s,
                     "ci_low_s": getattr(row, "ci_low_s", np.nan),
                     "ci_high_s": getattr(row, "ci_high_s", np.nan),
                     "ci_kind": f"{CI_SLOTS} (n={int(n_slots)} slots)"
                     if np.isfinite(n_slots) else CI_SLOTS,
                     "gap_to_oracle_pct": row.gap_to_oracle_pct,
                     "accuracy_violation_rate": getattr(row, "accuracy_violation_rate", np.nan),
                     "cloud_share": getattr(row, "cloud_share", np.nan),
                     "oracle_latency_s": getattr(row, "oracle_latency_s", np.nan)})
    table = pd.DataFrame(rows)
    table = table.sort_values(
        ["condition", "method"], key=lambda s: s.map(method_rank) if s.name == "method" else s,
        kind="stable").reset_index(drop=True)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g")
        (out / f"{stem}.md").write_text(table_markdown(table))
    return table


def table_markdown(table: pd.DataFrame) -> str:
    """Readable Markdown of the results table (latency in ms with its 95% CI and its kind).

    A column that says nothing about the methods is a note instead: the accuracy-violation rate
    when every policy of a condition has the same one (users for whom no model meets the
    requirement at any quality: the repair cannot help them, the oracle included), and the
    critic's error, a property of a trained method rather than of a condition, in a table of
    its own below."""
    viol = table.dropna(subset=["accuracy_violation_rate"])
    same = viol.groupby("condition").accuracy_violation_rate.nunique().le(1).all()
    head = ["condition", "method", "latency (ms) [95% CI]", "CI over", "gap to oracle",
            *([] if same else ["accuracy violations"]), "cloud share"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table.itertuples():
        ci = ("" if not np.isfinite(r.ci_low_s)
              else f" [{MS * r.ci_low_s:.1f}, {MS * r.ci_high_s:.1f}]")
        cells = [r.condition, label(r.method), f"{MS * r.latency_s:.1f}{ci}",
                 getattr(r, "ci_kind", ""), f"{r.gap_to_oracle_pct:+.1f} %"]
        if not same:
            cells.append("" if not np.isfinite(r.accuracy_violation_rate)
                         else f"{100 * r.accuracy_violation_rate:.2f} %")
        cells.append("" if not np.isfinite(r.cloud_share) else f"{100 * r.cloud_share:.1f} %")
        lines.append("| " + " | ".join(cells) + " |")
    if same and len(viol):
        rates = viol.groupby("condition").accuracy_violation_rate.first()
        lines += ["", "Accuracy violations are the same for every policy of a condition ("
                  + ", ".join(f"{c} {100 * v:.2f} %" for c, v in rates.items())
                  + " of user-slots): users for whom no model meets the requirement at any "
                  "data quality, whom no decision (the oracle's included) can serve."]
    if "critic_rmse_s" in table and table.critic_rmse_s.notna().any():
        crit = table.dropna(subset=["critic_rmse_s"]).groupby("method", sort=False)
        lines += ["", "| method | critic error (ms RMS, per user, held-out slots of its own "
                  "training conditions) |", "|---|---|",
                  *[f"| {label(m)} | {MS * g.critic_rmse_s.iloc[0]:.1f} |" for m, g in crit]]
    return "\n".join(lines) + "\n"


def seed_bands(curves: pd.DataFrame, value: str = "mean_latency_s",
               x: str = "env_steps") -> pd.DataFrame:
    """Mean and 95% CI over seeds per (method, condition, x)."""
    rows = []
    for (method, cond, steps), g in curves.groupby(["method", "condition", x]):
        m, lo, hi = mean_ci(g[value].to_numpy())
        rows.append({"method": method, "condition": cond, x: steps, "mean": m,
                     "ci_low": lo, "ci_high": hi, "n_seeds": int(g["seed"].nunique())})
    return pd.DataFrame(rows)

def _ordered(names: Sequence[str] | pd.Index | pd.Series) -> list[str]:
    """Unique names: the oracle, the learned methods, then the yardsticks (by base name)."""
    rank = {m: i for i, m in enumerate(["oracle", *METHODS, *BASELINES])}
    return sorted(dict.fromkeys(names), key=lambda m: rank.get(m.partition("[")[0], 99))

def decision_summary(dec: pd.DataFrame) -> pd.DataFrame:
    """Per method: shares of each place, mean DS and model index, repair override rates and the
    95th-percentile per-user latency (ms) - the numbers behind `decisions_figure`."""
    g = dec.groupby("method")
    out = pd.DataFrame({
        **{f"{p}_share": g.place.apply(lambda s, p=p: float((s == p).mean())) for p in PLACES},
        "mean_ds": g.ds.mean(), "mean_model": g.model.mean(),
        "repair_any": g.repaired_any.mean(),
        "p50_latency_ms": g.latency_s.quantile(0.5) * MS,
        "p95_latency_ms": g.latency_s.quantile(0.95) * MS})
    return out.reindex(_ordered(out.index))


# ============================================================================================
# PEARL's posterior
# ============================================================================================
def latent_posteriors(run_dir: Path | str, profile: StudyLike, *,
                      n_context: Sequence[int] = ADAPT_CONTEXT, repeats: int = 3,
                      task_seed: int | None = None) -> pd.DataFrame:
    """Posterior q(z|c) of a trained PEARL run on every condition (six DTs and T1-T3) as the
    context grows: one row per (condition, n_context, repeat) with the posterior mean (flattened
    over users when z is per user) projected on its first two principal components (z0, z1,
    fitted on the largest contexts) and the mean posterior variance (its narrowing)."""
    import torch

    from .agent_policies import collect_context
    from .checkpoints import load_agent
    from .env import EdgeCloudEnv

    study = Study.of(profile, task_seed=task_seed)
    prof, task_set = study.profile, study.task_set
    agent = load_agent(run_dir)
    if agent.encoder is None:
        raise ValueError(f"{run_dir} is not a PEARL run (its agent has no context encoder)")
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


def latent_probe(run_dir: Path | str, profile: StudyLike, *, n_context: int = 20,
                 task_seed: int | None = None,
                 context_seed: int = 7_000) -> pd.DataFrame:
    """Does z_u carry the condition? A linear probe of a per-user-latent PEARL run.

    On every condition, the meta-policy collects ``n_context`` context transitions (as in
    adaptation) and each user's posterior mean z_u is taken; a least-squares linear map from
    [z_u, 1] to the log compute intensity of each of the user's models (the condition's
    ``flop_per_bit``, which the agent never reads) is fitted on the six DTs (6 x U samples) and
    scored on the unseen T1-T3 (3 x U samples). Returns one row per model: R^2 on the DTs (fit)
    and on T1-T3 (held out), and the mean per-user KL of the held-out posteriors (nats)."""
    import torch

    from .agent_policies import collect_context
    from .checkpoints import load_agent
    from .env import EdgeCloudEnv

    study = Study.of(profile, task_seed=task_seed)
    prof, task_set = study.profile, study.task_set
    agent = load_agent(run_dir)
    if agent.encoder is None or not agent.cfg.encoder.latent_per_user:
        raise ValueError(f"{run_dir} is not a per-user-latent PEARL run")
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


def latent_separation(latents: pd.DataFrame) -> pd.DataFrame:
    """How far apart the conditions' posterior means of z are, against the context size: per
    n_context, the mean distance between the means of different conditions (between) and
    between repeats of one condition (within; different context draws), in the (z0, z1) plane.
    A between/within ratio well above 1 means the encoder tells the conditions apart."""
    rows = []
    for n, g in latents.groupby("n_context"):
        pts = g[["z0", "z1"]].to_numpy()
        cond = g.condition.to_numpy()
        d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
        same = cond[:, None] == cond[None]
        off = ~np.eye(len(pts), dtype=bool)
        within = d[same & off].mean() if (same & off).any() else np.nan
        between = d[~same].mean() if (~same).any() else np.nan
        rows.append({"n_context": int(n), "between": float(between), "within": float(within),
                     "ratio": float(between / within) if within and within > 0 else np.nan})
    return pd.DataFrame(rows)


def adaptation_diagnosis_table(run_dir: Path | str, profile: StudyLike,
                               conditions: Sequence[str] = TEST_NAMES, *,
                               n_context: Sequence[int] = (0, 1, 2, 5, 10, 20, 50),
                               task_seed: int | None = None) -> pd.DataFrame:
    """`agent_policies.adaptation_diagnosis` of a finished PEARL run on `conditions`, for the
    uniform probe and the agent's own adaptation probe (once if they are the same), cached in
    the run's folder (``diagnosis-<hash>.csv``: the run's agent is fixed once it finished)."""
    from .agent_policies import adaptation_diagnosis
    from .checkpoints import load_agent

    study = Study.of(profile, task_seed=task_seed)
    prof, run_dir = study.profile, Path(run_dir)
    enc = prof.agent.encoder
    probes = tuple(dict.fromkeys(("random", enc.adaptation_probe or enc.context_probe)))
    key = digest({"run": run_dir.name, "conditions": list(conditions),
                  "n_context": list(n_context), "probes": list(probes),
                  "task_seed": study.task_seed, "version": __version__})

    def compute() -> pd.DataFrame:
        agent = load_agent(run_dir)
        return pd.concat([adaptation_diagnosis(agent, name, task_set=study.task_set,
                                               config=prof.env, n_context=n_context,
                                               probes=probes) for name in conditions],
                         ignore_index=True)

    return cached_csv(run_dir / f"diagnosis-{key}.csv", compute)


def adaptation_diagnosis_reading(diag: pd.DataFrame, finals: pd.DataFrame | None = None) -> str:
    """What `adaptation_diagnosis_table` says, in sentences computed from it: whether one
    transition hurts under each probe, how calibrated the posterior is, the floor that ample
    context leaves on the test conditions against the training twins, and the critic's error
    there (against SAC_DT's final error when `finals` has it)."""
    test = diag[diag.condition.isin(TEST_NAMES)]
    twins = diag[~diag.condition.isin(TEST_NAMES)]
    g = test.groupby(["probe", "n_context"]).mean(numeric_only=True)
    ref = int(diag.n_context.max())
    out = ["**What the table shows.**"]
    for probe in dict.fromkeys(test.probe):
        p0, p1 = g.loc[(probe, 0), "gap_to_oracle_pct"], g.loc[(probe, 1), "gap_to_oracle_pct"]
        verdict = "hurts" if p1 > p0 else "helps"
        out.append(f"With the {probe!r} probe, one transition {verdict} on T1-T3 "
                   f"(PEARL(0) {p0:+.1f} %, PEARL(1) {p1:+.1f} %).")
    rand = g.loc["random"]
    n_mid = 20 if 20 in rand.index else int(rand.index[rand.index < ref].max())
    cal = rand.loc[n_mid, "calibration"]
    where = (f"after {n_mid} random transitions its mean is on average {np.sqrt(cal):.1f} "
             f"posterior standard deviations from where {ref} take it (calibration {cal:.1f}; "
             "1 is calibrated)")
    out.append(f"The posterior is overconfident: {where}, so a few transitions move z_u further "
               "than their information warrants, which makes what they show matter."
               if cal > 3 else f"The posterior is about as wide as its error: {where}.")
    floor_t = rand.loc[ref, "gap_to_oracle_pct"]
    err_t = rand.loc[ref, "critic_rmse_s"]
    line = (f"With {ref} transitions PEARL is still {floor_t:+.1f} % above the oracle on T1-T3 "
            f"(critic error {1e3 * err_t:.1f} ms per user; at n = {n_mid}: "
            f"{rand.loc[n_mid, 'gap_to_oracle_pct']:+.1f} %, "
            f"{1e3 * rand.loc[n_mid, 'critic_rmse_s']:.1f} ms)")
    if len(twins):
        gt = twins[(twins.probe == "random") & (twins.n_context == ref)]
        floor_g = gt.gap_to_oracle_pct.mean()
        line += (f", and {floor_g:+.1f} % on its own training twins "
                 f"({', '.join(dict.fromkeys(twins.condition))}; critic "
                 f"{1e3 * gt.critic_rmse_s.mean():.1f} ms)")
        line += (": the unseen conditions cost little beyond the twins, so what limits PEARL is "
                 "how well its critic fits, not the twin pool's coverage."
                 if floor_t - floor_g < 1.5 else
                 ": the unseen conditions cost more than the twins, so coverage matters too.")
    else:
        line += "."
    out.append(line)
    if finals is not None and "critic_rmse_s" in finals and (finals.method == "sac_dt").any():
        out.append(f"(SAC_DT's critic, without z, errs by "
                   f"{1e3 * finals[finals.method == 'sac_dt'].critic_rmse_s.mean():.1f} ms.)")
    return " ".join(out)


def twin_fidelity_yardsticks(profile: StudyLike, telemetry_slots: int, *,
                             n_context: Sequence[int] = (0, 5, 20),
                             task_seed: int | None = None,
                             results_root: Path | str | None = None
                             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Identify-then-greedy when the digital twins are identified rather than exact copies.

    Its twins enter only as the prior for what its own n context slots did not observe (their
    mean; n = 0 is blind greedy on it), so it is scored on T1-T3 (the final slots) with the
    exact DTs' mean and with the mean of the DTs `policies.identified_twins` synchronises from
    ``telemetry_slots`` slots each. Returns (scores: twins, n_context, condition,
    gap_to_oracle_pct, mean_latency_s; twin errors: one row per DT), cached in the profile's
    results folder."""
    from .policies import identified_twins

    study = Study.of(profile, task_seed=task_seed, results_root=results_root)
    prof = study.profile
    ident, errors = identified_twins(study.task_set, prof.env, telemetry_slots)
    key = digest({"profile": prof, "task_seed": study.task_seed, "slots": telemetry_slots,
                  "n_context": list(n_context), "version": __version__})

    def compute() -> pd.DataFrame:
        rows = []
        for twins, task_set in (("exact", study.task_set), ("identified", ident)):
            for n in n_context:
                for name in TEST_NAMES:
                    s = evaluate(IdentifyGreedyPolicy(int(n)), name, n_slots=prof.final_slots,
                                 seed=FINAL_SEED, task_set=task_set, config=prof.env).summary
                    rows.append({"twins": twins, "telemetry_slots": telemetry_slots,
                                 "n_context": int(n), "condition": name,
                                 "mean_latency_s": s["mean_latency_s"],
                                 "gap_to_oracle_pct": s["gap_to_oracle_pct"]})
        return pd.DataFrame(rows)

    scores = cached_csv(study.profile_dir / f"twin-fidelity-{key}.csv", compute)
    return scores, pd.DataFrame(errors)
