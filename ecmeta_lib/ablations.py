"""Ablations: every design choice of ours switched off, one at a time, from a base profile.

An `Ablation` is a named set of overrides (`tuning.apply_overrides` keys: ``agent.FIELD`` or a
profile field) in two parts: ``switch``, the design choice itself set to its "off" value, and
``coupled``, the fields a design reason ties to it (the per-user embedding returns with the
global z, the flat networks read pooled inputs). The fields that must go because the agent's
compatibility rules refuse the combination are not listed here: `SACConfig.switch` applies
them from the one place they live (`ecmeta_lib.agents.config.RULES`). Everything else stays at
the base profile's value, so an ablation measures one choice against the default.

A choice that validation switched off in a profile is kept in the registry as its reverse
(``context_size_sampling_on``), so the study still measures it against the default.

The registry adapts to the base profile: an ablation whose switch is already off there (e.g.
``log_inputs`` when the profile does not use log inputs) is *inactive* - `variant` refuses it and
`active` leaves it out - instead of rerunning the default under another name.

``scope``: an ablation of the learner (critic, actor, networks, temperature, schedule) changes
every method; one of the encoder or of meta-training (``pearl_only``) changes PEARL alone, so
the SAC baselines are not rerun for it.

The runner runs the variants (`runner.run_ablations`, ``python -m ecmeta_lib ablate``) and
notebook 06 reports them; `effects` turns the runs' ``final.csv`` / ``adaptation.csv`` into
paired differences against the default (same seed index, same slots), with a Student-t CI over
seeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .conditions import TEST_NAMES
from .stats import paired_test
from .tuning import apply_overrides

HELDOUT_TASK_SEED = 42
"""Task seed of the ablation study: reports use 0 and tuning uses >= 100, so nobody selects on
it."""
DEFAULT = "default"
"""Name of the base profile's runs in the ablation tables."""


@dataclass(frozen=True, eq=False)
class Ablation:
    """One design choice of ours, switched off."""

    name: str
    switch: dict[str, Any]
    """The choice itself, at its "off" value (``agent.FIELD`` or a profile field)."""
    what: str
    """What is switched off, and why the coupled fields go with it (one line)."""
    coupled: dict[str, Any] = field(default_factory=dict)
    """Fields a design reason ties to the switch (the rules' couplings come on top)."""
    pearl_only: bool = False
    """The choice lives in PEARL's encoder or meta-training: the SAC baselines do not see it."""
    methods: tuple[str, ...] | None = None
    """The only methods the choice changes (None: every method, or PEARL with ``pearl_only``)."""
    turns_on: bool = False
    """The profile has this option off (our choice), and the ablation switches it on: its
    change reads the same way (> 0 in the gap: our choice, off, helps)."""

    @property
    def overrides(self) -> dict[str, Any]:
        return {**self.switch, **self.coupled}

    def applies_to(self, method: str) -> bool:
        if self.methods is not None:
            return method in self.methods
        return method == "pearl" or not self.pearl_only


ABLATIONS: dict[str, Ablation] = {a.name: a for a in [
    Ablation("per_user_reward", {"agent.per_user_reward": False},
             "the critic regresses the slot's scalar reward instead of each user's own latency; "
             "the joint actor and the log-latency critic need per-user targets, and without the "
             "joint actor SAC's twin critics and the eager update return"),
    Ablation("per_user_latents", {"agent.latent_per_user": False},
             "one global z from the paper's encoder instead of one z_u per user; the executed-"
             "decision inputs belong to the per-user encoder and go with it, and the per-user "
             "embedding returns (without z_u it is the only way to tell users apart)",
             coupled={"agent.user_embedding": True},
             pearl_only=True),
    Ablation("encoder_inputs", {"agent.encoder_decisions": False},
             "the per-user encoder reads the requested action and the scaled latency instead of "
             "the executed (post-repair) decisions and the log latency", pearl_only=True),
    Ablation("context_size_sampling", {"context_size_sampling": False},
             "every meta-training context holds context_size transitions instead of "
             "U{1..context_size}", pearl_only=True),
    Ablation("context_size_sampling_on", {"context_size_sampling": True},
             "meta-training contexts of U{1..context_size} transitions (issue 9's proposal, "
             "switched off in the quick profile on validation) instead of always context_size; "
             "the reverse of context_size_sampling, for profiles that have it off",
             pearl_only=True, turns_on=True),
    Ablation("structured_networks", {"agent.arch": "flat"},
             "flat MLPs over the whole system's vectors (the paper's networks, at the profile's "
             "width) instead of one network shared by the users; every per-user option needs "
             "the structured networks and goes with them",
             coupled={"agent.pooled": True}),
    Ablation("kl_weight", {"agent.kl_weight": 0.1},
             "the paper's KL weight beta = 0.1 instead of the profile's smaller one, which keeps "
             "the per-user posteriors from collapsing to the prior", pearl_only=True),
    Ablation("no_user_embedding", {"agent.user_embedding": True},
             "PEARL's networks read a learned per-user embedding besides z_u, which lets them "
             "memorise each user of the six twins instead of inferring it from the context",
             pearl_only=True),
    Ablation("entropy_target", {"agent.target_entropy": "paper"},
             "the paper's target entropy -3|U| instead of a fraction of the maximum entropy"),
    Ablation("gamma0", {"agent.gamma": 0.9},
             "the discounted soft Bellman target (gamma = 0.9) instead of the myopic gamma = 0; "
             "the joint actor and the log-latency critic assume gamma = 0, and without the "
             "joint actor SAC's twin critics and the eager update return"),
    Ablation("prior_factor", {"agent.posterior_prior_factor": False},
             "PEARL's plain product of the per-transition factors, without the prior N(0, I) "
             "multiplied in", pearl_only=True),
    Ablation("joint_actor", {"agent.joint_actor": False},
             "three independent heads (DS, TA, MS) per user instead of one categorical over the "
             "joint actions; a single critic, acting on the critic and the compiled update need "
             "the joint actor, so the twin critics, the actor's mode and eager PyTorch return"),
    Ablation("log_latency_critic", {"agent.log_latency_critic": False},
             "the per-user critic regresses the scaled latency itself instead of its log"),
    Ablation("log_inputs", {"agent.log_inputs": False},
             "bandwidth, distance, task and result size on a linear instead of a log scale"),
    Ablation("tau_zscore", {"agent.tau_zscore": False},
             "the accuracy requirement read as tau / 100 instead of its z-score under its "
             "N(mean, std^2) distribution"),
    Ablation("single_critic", {"agent.twin_critics": True},
             "SAC's twin critics and their minimum instead of one critic (nothing is "
             "bootstrapped at gamma = 0)"),
    Ablation("lr_cosine", {"agent.lr_cosine": False},
             "a constant learning rate instead of the cosine decay over the run"),
    Ablation("critic_lr", {"agent.critic_lr": None},
             "one learning rate for actor, critic and encoder (the actor's) instead of a larger "
             "one for the critic, a regressor with fixed targets under gamma = 0"),
    Ablation("unpooled", {"agent.pooled": True},
             "every user's networks also read the mean over users of features and actions "
             "instead of that user's inputs alone; the critic's values then need the slot's "
             "actions, so acting greedily goes back to the actor's mode"),
    Ablation("greedy_critic", {"agent.greedy_critic": False},
             "acting greedily (evaluation, adaptation, validation) takes the actor's mode "
             "instead of each user's least-latency joint action under its critic"),
    Ablation("compiled_update", {"agent.compiled_update": False},
             "the update in eager PyTorch with AdamW's foreach kernels instead of its objectives "
             "compiled and the fused optimiser: speed only (same algorithm and samples, other "
             "rounding), so its effect should be nil"),
    Ablation("explore_fraction", {"explore_fraction": 0.0},
             "SAC's own sampling only while collecting, instead of each user acting uniformly at "
             "random with the profile's probability (coverage of every option for the critic)"),
    Ablation("random_context", {"agent.random_context": False},
             "PEARL's contexts (meta-training and the n slots of adaptation) come from posterior "
             "sampling, as in PEARL, instead of uniformly random actions", pearl_only=True),
    Ablation("twin_samples", {"twin_samples": 0},
             "meta-training on the six DTs alone, as in the paper, instead of also on conditions "
             "the twin draws from its prior over conditions", methods=("pearl", "sac_dt")),
    Ablation("adaptation_probe", {"agent.adaptation_probe": None},
             "PEARL's n adaptation slots uniformly random, as its meta-training's context "
             "slots, instead of one identify-then-greedy round-robin block first "
             "(meta-training is the same: only PEARL(n) can move)", pearl_only=True),
    Ablation("identified_twins", {"twin_telemetry_slots": 2},
             "the twin-fidelity study: meta-training on twins identified from 2 slots of each "
             "DT condition's telemetry (`policies.identified_twins`, with their error) instead "
             "of exact copies, which the paper assumes", methods=("pearl",), turns_on=True),
    Ablation("no_next_obs", {"agent.encoder_next_obs": True},
             "the encoder also reads s' (the paper's (s, a, r, s')); s' is i.i.d. and carries "
             "nothing about the condition", pearl_only=True),
]}


def _get(profile: Any, key: str) -> Any:
    if key.startswith("agent."):
        return profile.agent.flat()[key[len("agent."):]]
    return getattr(profile, key)


def get_ablation(name: str) -> Ablation:
    try:
        return ABLATIONS[name]
    except KeyError:
        raise ValueError(f"unknown ablation {name!r}; choose from {', '.join(ABLATIONS)}"
                         ) from None


def is_active(name: str, base: Any) -> bool:
    """Whether `base` uses the design choice (so switching it off changes something)."""
    return any(_get(base, k) != v for k, v in get_ablation(name).switch.items())


def variant(base: Any, name: str) -> Any:
    """The profile `base` with ablation `name` switched off (validated by the dataclasses).

    Raises ValueError for an unknown ablation, or one whose switch is already off in `base`."""
    ab = get_ablation(name)
    if not is_active(name, base):
        raise ValueError(f"ablation {name!r} is inactive for profile {base.name!r}: "
                         f"{', '.join(f'{k}={v!r}' for k, v in ab.switch.items())} already")
    return apply_overrides(base, ab.overrides, couple=True)


def select(names: str | Iterable[str], base: Any | None = None) -> list[str]:
    """Ablation names from ``"all"``, a comma-separated string or a list (validated, registry
    order); with `base`, the inactive ones are left out."""
    if isinstance(names, str):
        names = list(ABLATIONS) if names == "all" else [n.strip() for n in names.split(",")]
    chosen = [n for n in dict.fromkeys(names) if n]
    for n in chosen:
        get_ablation(n)
    chosen = [n for n in ABLATIONS if n in chosen]
    if base is not None:
        chosen = [n for n in chosen if is_active(n, base)]
    return chosen


def active(base: Any) -> list[str]:
    """Every ablation that changes something in `base`."""
    return select("all", base)


def _flat(profile: Any) -> dict[str, Any]:
    d = asdict(profile)
    d.pop("agent")
    return {**d, **{f"agent.{k}": v for k, v in profile.agent.flat().items()}}


def changed_fields(base: Any, other: Any) -> dict[str, tuple[Any, Any]]:
    """Fields (``agent.FIELD`` or profile fields) where `other` differs from `base`:
    ``{field: (base value, other value)}``."""
    a, b = _flat(base), _flat(other)
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def _scope(ab: Ablation) -> str:
    """The methods an ablation changes, in words."""
    if ab.methods is not None:
        return ", ".join(_METHOD_LABELS.get(m, m) for m in ab.methods)
    return "PEARL only" if ab.pearl_only else "every method"


_METHOD_LABELS = {"pearl": "PEARL", "sac_dt": "SAC_DT", "sac_t_m": "SAC_T_M"}


def registry_table(base: Any) -> pd.DataFrame:
    """The registry against `base`: per ablation its scope, what it switches off (with the
    base's value) and what goes with it, whether it is active, and why."""
    rows = []
    for ab in ABLATIONS.values():
        on = is_active(ab.name, base)
        diff = changed_fields(base, apply_overrides(base, ab.overrides, couple=True)) if on else {}
        rows.append({
            "ablation": ab.name, "active": on,
            "scope": _scope(ab),
            "switched off": ", ".join(f"{k} {_get(base, k)!r} -> {v!r}"
                                      for k, v in ab.switch.items()),
            "coupled": ", ".join(f"{k} -> {v[1]!r}" for k, v in diff.items()
                                 if k not in ab.switch) or "-",
            "what": ab.what if on else "inactive: already off in the base profile"})
    return pd.DataFrame(rows)


# ============================================================================================
# paired effects against the default
# ============================================================================================
def score_conditions(method: str) -> tuple[str, ...]:
    """The test conditions a method is scored on: its own Ti for ``sac_aisf_i`` (the learner on
    a fixed condition), T1-T3 for the others."""
    if method.startswith("sac_aisf_"):
        return (TEST_NAMES[int(method[-1]) - 1],)
    return TEST_NAMES


def adaptation_n(adapt: pd.DataFrame, n_context: int) -> int:
    """The context size of the adaptation gain: `n_context` (the profile's ``eval_context``,
    final.csv's) when recorded, else the largest recorded one below it."""
    have = sorted(int(v) for v in adapt.n_context.unique() if v > 0)
    return max([v for v in have if v <= n_context] or have[:1] or [0])


def per_seed_scores(finals: pd.DataFrame, adapt: pd.DataFrame | None = None,
                    n_context: int = 20) -> pd.DataFrame:
    """One row per (ablation, method, metric, condition, seed) with its value in points:

    * ``gap``: the final policy's gap to the per-slot oracle (%; PEARL adapted with
      ``eval_context`` transitions), per scored condition and their mean (condition ``mean``);
    * ``gain`` (PEARL): the adaptation gain PEARL(0) - PEARL(n) in points of gap (latency
      difference over the oracle latency of the same slots, final.csv's), n = `adaptation_n`.
    """
    rows: list[dict[str, Any]] = []
    for (abl, method), g in finals.groupby(["ablation", "method"], sort=False):
        conds = [c for c in score_conditions(method) if c in set(g.condition)]
        per = g[g.condition.isin(conds)].pivot_table(index="seed", columns="condition",
                                                     values="gap_to_oracle_pct")
        for cond in conds:
            rows += [{"ablation": abl, "method": method, "metric": "gap", "condition": cond,
                      "seed": s, "value": v} for s, v in per[cond].items()]
        if len(conds) > 1:
            rows += [{"ablation": abl, "method": method, "metric": "gap", "condition": "mean",
                      "seed": s, "value": v} for s, v in per[conds].mean(axis=1).items()]
    if adapt is not None and not adapt.empty:
        n = adaptation_n(adapt, n_context)
        oracle = finals.set_index(["ablation", "method", "seed", "condition"]).oracle_latency_s
        for (abl, method), g in adapt.groupby(["ablation", "method"], sort=False):
            lat = g.pivot_table(index=["seed", "condition"], columns="n_context",
                                values="mean_latency_s")
            if 0 not in lat.columns or n not in lat.columns:
                continue
            orc = oracle.reindex([(abl, method, s, c) for s, c in lat.index]).to_numpy()
            gain = pd.Series(100 * (lat[0] - lat[n]).to_numpy() / orc, index=lat.index)
            by_cond = gain.unstack("condition")
            for cond in by_cond.columns:
                rows += [{"ablation": abl, "method": method, "metric": "gain", "condition": cond,
                          "seed": s, "value": v, "n_context": n}
                         for s, v in by_cond[cond].items()]
            rows += [{"ablation": abl, "method": method, "metric": "gain", "condition": "mean",
                      "seed": s, "value": v, "n_context": n}
                     for s, v in by_cond.mean(axis=1).items()]
    return pd.DataFrame(rows)


def row_label(name: str) -> str:
    """An ablation's name as tables and figures show it: says "switched on" where it is."""
    abl = ABLATIONS.get(name)
    if abl is None or not abl.turns_on:
        return name
    return f"{name.removesuffix('_on')} (switched on)"


def _reading(metric: str, lo: float, hi: float) -> str:
    """What a change's CI says about the choice (gap: lower is better; gain: higher is)."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n < 2"
    worse = lo > 0 if metric == "gap" else hi < 0
    better = hi < 0 if metric == "gap" else lo > 0
    return "the choice helps" if worse else "the choice hurts" if better else "not resolved"


def effects(finals: pd.DataFrame, adapt: pd.DataFrame | None = None, n_context: int = 20,
            order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per (ablation, method, metric, condition): the default's and the ablation's mean over
    seeds and the paired change ablated - default in points (same seed index, same slots), with
    its 95 % Student-t CI over seeds and the two-sided p-value of a paired t test.

    `finals` / `adapt` are the runs' final.csv / adaptation.csv rows with ``ablation``, ``method``
    and ``seed`` columns (``ablation`` = `DEFAULT` for the base profile's runs)."""
    scores = per_seed_scores(finals, adapt, n_context)
    cols = ["ablation", "method", "metric", "condition", "n_seeds", "default", "ablated",
            "change", "ci_low", "ci_high", "p_value", "reading", "n_context"]
    if scores.empty:
        return pd.DataFrame(columns=cols)
    if "n_context" not in scores.columns:
        scores["n_context"] = np.nan
    base = scores[scores.ablation == DEFAULT].set_index(["method", "metric", "condition", "seed"])
    rows = []
    for (abl, method, metric, cond), g in scores[scores.ablation != DEFAULT].groupby(
            ["ablation", "method", "metric", "condition"], sort=False):
        ref = base.value.reindex([(method, metric, cond, s) for s in g.seed]).to_numpy()
        ok = np.isfinite(ref) & np.isfinite(g.value.to_numpy())
        diff = g.value.to_numpy()[ok] - ref[ok]
        t = paired_test(diff, alternative="two-sided")
        rows.append({"ablation": abl, "method": method, "metric": metric, "condition": cond,
                     "n_seeds": t["n"], "default": float(np.mean(ref[ok])) if ok.any() else np.nan,
                     "ablated": float(np.mean(g.value.to_numpy()[ok])) if ok.any() else np.nan,
                     "change": t["mean"], "ci_low": t["ci_low"], "ci_high": t["ci_high"],
                     "p_value": t["p_value"], "reading": _reading(metric, t["ci_low"],
                                                                  t["ci_high"]),
                     "n_context": g.n_context.iloc[0]})
    out = pd.DataFrame(rows, columns=cols)
    rank = {n: i for i, n in enumerate(order or ABLATIONS)}
    out["_r"] = out.ablation.map(lambda a: rank.get(a, len(rank)))
    out["_m"] = (out.metric == "gain").astype(int)  # the gap first, then PEARL's gain
    return (out.sort_values(["_r", "_m", "method"], kind="stable").drop(columns=["_r", "_m"])
            .reset_index(drop=True))


def effects_markdown(eff: pd.DataFrame) -> str:
    """The summary rows (gap over the scored conditions, PEARL's mean gain) as Markdown."""
    main = eff[(eff.condition == "mean") | ((eff.metric == "gap")
                                           & eff.method.str.startswith("sac_aisf_"))]
    lines = ["| ablation | method | score | default | switched | change (points) [95 % CI] "
             "| p | reading (of our choice) |", "|---|---|---|---|---|---|---|---|"]
    for r in main.itertuples():
        if r.metric == "gap":
            score = ("gap to oracle, " + ("T1-T3 mean" if r.condition == "mean"
                                          else f"own {r.condition}") + " (%)")
        else:
            score = f"adaptation gain PEARL(0) - PEARL({int(r.n_context)}) (points)"
        ci = (f" [{r.ci_low:+.2f}, {r.ci_high:+.2f}]" if np.isfinite(r.ci_low) else "")
        p = f"{r.p_value:.3f}" if np.isfinite(r.p_value) else "-"
        lines.append(f"| {row_label(r.ablation)} | {r.method} | {score} | {r.default:.2f} "
                     f"| {r.ablated:.2f} | {r.change:+.2f}{ci} | {p} | {r.reading} |")
    return "\n".join(lines) + "\n"


def save_effects(eff: pd.DataFrame, out_dir: Any, stem: str = "ablations") -> None:
    """``<out_dir>/<stem>.csv`` (every row) and ``<stem>.md`` (the summary rows)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    eff.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g")
    (out / f"{stem}.md").write_text(effects_markdown(eff))
