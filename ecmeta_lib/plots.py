"""Every figure of the reproduction, one function each: it receives data and draws.

Inputs are the tidy frames of `ecmeta_lib.analysis` (and `ecmeta_lib.decisions`); outputs go to
PNG + PDF. The tables and the numbers behind the figures (`results_table`, `seed_bands`,
`decision_summary`, `latent_separation`) are computed in `ecmeta_lib.analysis`; the method order
and labels are `ecmeta_lib.profiles`'s. Latencies are shown in ms. Intervals follow
`ecmeta_lib.stats`: a learned method's is Student-t over its seeds (per condition), a deterministic
policy's a bootstrap over the evaluated slots; the table says which.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # headless by default; a notebook keeps its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .ablations import row_label  # noqa: E402
from .analysis import (  # noqa: E402
    MS,
    PLACES,
    _ordered,
    latent_separation,
    seed_bands,
)
from .conditions import TEST_NAMES  # noqa: E402
from .profiles import (  # noqa: E402
    BASELINES,
    METHODS,
    label,
)
from .stats import mean_ci  # noqa: E402

METHOD_ORDER = list(METHODS)
"""The learned methods in drawing order (`profiles.METHODS`, the one definition)."""
BASELINE_ORDER = list(BASELINES)

# One colour, line style and marker per learned method: told apart in print and by colour-blind
# readers (the three SAC_AiSF_i share a marker family but not a colour or a dash).
_CB = sns.color_palette("colorblind", 10)
METHOD_STYLES: dict[str, dict] = {
    "pearl": {"color": _CB[0], "ls": "-", "marker": "o"},
    "sac_dt": {"color": _CB[1], "ls": "--", "marker": "s"},
    "sac_t_m": {"color": _CB[2], "ls": "-.", "marker": "D"},
    "sac_aisf_1": {"color": _CB[3], "ls": ":", "marker": "^"},
    "sac_aisf_2": {"color": _CB[4], "ls": (0, (5, 1, 1, 1, 1, 1)), "marker": "v"},
    "sac_aisf_3": {"color": _CB[8], "ls": (0, (8, 2)), "marker": "<"},
}
BASELINE_STYLES: dict[str, dict] = {
    "oracle": {"color": "black", "ls": "-", "marker": "*"},
    "greedy": {"color": "dimgray", "ls": "--", "marker": "P"},
    "identify_greedy": {"color": _CB[5], "ls": (0, (3, 1, 1, 1)), "marker": "X"},
    "blind_greedy": {"color": _CB[9], "ls": (0, (1, 1)), "marker": "h"},
    "random": {"color": "darkgray", "ls": ":", "marker": "x"},
}


def style(method: str) -> dict:
    base = method.partition("[")[0]
    return METHOD_STYLES.get(base) or BASELINE_STYLES.get(base) or {
        "color": "gray", "ls": "-", "marker": "."}


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.15)


def _save(fig: plt.Figure, out_dir: Path | str | None, stem: str) -> None:
    if out_dir is None:
        return
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{stem}.png", dpi=160, bbox_inches="tight")
    fig.savefig(out / f"{stem}.pdf", bbox_inches="tight", metadata={"CreationDate": None})


def _legend_below(fig: plt.Figure, ax: plt.Axes, ncol: int = 4, y: float = -0.02) -> None:
    """One legend for the whole figure (every panel has the same entries)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(ncol, len(labels)), frameon=False,
               bbox_to_anchor=(0.5, y))


def _hlines(ax: plt.Axes, baselines: pd.DataFrame, cond: str,
            names: Sequence[str] = ("oracle", "greedy", "identify_greedy", "blind_greedy",
                                    "random"), value: str = "mean_latency_s",
            unit: str = "ms") -> None:
    """Horizontal lines of the deterministic policies (a name matches ``name`` and
    ``name[n]``, e.g. identify_greedy[20]) at their `value` (latency in s, drawn in ms; or a
    gap in %)."""
    base = baselines.method.astype(str).str.partition("[")[0]
    for name in names:
        row = baselines[(base == name) & (baselines.condition == cond)]
        if row.empty:
            continue
        y = float(row[value].iloc[0]) * (MS if value == "mean_latency_s" else 1.0)
        name = str(row.method.iloc[0])
        if name == "random":  # far above the rest: a note, not a line that squeezes them
            ax.annotate(f"random: {y:.0f} {unit}", xy=(0.98, 0.97), xycoords="axes fraction",
                        ha="right", va="top", fontsize=9, color=style(name)["color"])
            continue
        st = style(name)
        ax.axhline(y, color=st["color"], ls=st["ls"], lw=1.3, label=label(name))


def fig3(curves: pd.DataFrame, baselines: pd.DataFrame, out_dir: Path | str | None = None,
         stem: str = "fig3_latency", gradient_steps_per_iteration: int | None = None
         ) -> plt.Figure:
    """Paper Fig. 3 with seeds: latency on T1-T3 over training, mean and 95% band over seeds.

    `baselines` must be scored on the curve's own slots (`analysis.curve_baselines`): every
    curve and line of the figure then shares one slot stream and one oracle. Top row: latency
    (ms) against iterations of Algorithm 1 - every method takes the same T_train critic gradient
    steps per iteration, so this is also a gradient-step axis (shown on top when
    `gradient_steps_per_iteration` is given); a point at iteration 0 is the untrained policy.
    Middle row: the same as the gap to the oracle of those slots (%). Bottom row: latency
    against environment steps (slots the agent collected, summed over its training conditions;
    log scale, since a DT agent collects six conditions' slots per iteration and a
    single-condition one one). Random, far above, is a note rather than a line."""
    _style()
    methods = [m for m in METHOD_ORDER if m in set(curves.method)]
    oracle = baselines[baselines.method == "oracle"].set_index("condition").mean_latency_s
    curves = curves.assign(gap_pct=100 * (curves.mean_latency_s
                                          / curves.condition.map(oracle) - 1))
    rows = [("iteration", "mean_latency_s"), ("iteration", "gap_pct"),
            ("env_steps", "mean_latency_s")]
    if not oracle.size:
        rows = [r for r in rows if r[1] != "gap_pct"]
    fig, axes = plt.subplots(len(rows), len(TEST_NAMES), figsize=(5.2 * len(TEST_NAMES),
                                                                  3.7 * len(rows)),
                             squeeze=False)
    for r, (x, value) in enumerate(rows):
        bands = seed_bands(curves, value=value, x=x)
        scale = MS if value == "mean_latency_s" else 1.0
        for ax, cond in zip(axes[r], TEST_NAMES, strict=True):
            for method in methods:
                b = bands[(bands.method == method) & (bands.condition == cond)].sort_values(x)
                if b.empty:
                    continue
                st = METHOD_STYLES[method]
                ax.plot(b[x], scale * b["mean"], color=st["color"], ls=st["ls"], lw=1.8,
                        marker=st["marker"], ms=3.5, label=label(method))
                ax.fill_between(b[x], scale * b.ci_low, scale * b.ci_high, color=st["color"],
                                alpha=0.12, lw=0)
            if value == "mean_latency_s":
                _hlines(ax, baselines, cond)
                ax.set_ylabel("average service latency (ms)")
            else:
                gaps = baselines.assign(gap=100 * (
                    baselines.mean_latency_s / baselines.condition.map(oracle) - 1))
                _hlines(ax, gaps, cond, value="gap", unit="%")
                ax.set_ylabel("gap to the oracle (%)")
                ax.annotate("(oracle: 0 %)", xy=(0.98, 0.03), xycoords="axes fraction",
                            ha="right", va="bottom", fontsize=8, color="0.3")
            if x == "iteration":
                ax.set_xlabel("iterations of Algorithm 1 (equal gradient steps for all)")
                if r == 0:
                    ax.set_title(f"test condition {cond}",
                                 pad=30 if gradient_steps_per_iteration else 6)
                    if gradient_steps_per_iteration:
                        k = float(gradient_steps_per_iteration)
                        top = ax.secondary_xaxis("top", functions=(lambda i, k=k: i * k,
                                                                   lambda g, k=k: g / k))
                        top.set_xlabel("critic gradient steps", fontsize=9)
            else:
                ax.set_xscale("log")
                ax.set_xlabel("environment steps (slots collected, log scale)")
    for r in range(len(rows)):  # one y range per row: latency rows share theirs per condition
        lo = min(ax.get_ylim()[0] for ax in axes[r])
        hi = max(ax.get_ylim()[1] for ax in axes[r])
        for ax in axes[r]:
            ax.set_ylim(lo, hi)
    _legend_below(fig, axes[0, 0], ncol=5)
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


# ============================================================================================
# results table and final latency
# ============================================================================================
def final_latency(table: pd.DataFrame, out_dir: Path | str | None = None,
                  stem: str = "final_latency") -> plt.Figure:
    """Final latency of every method on each test condition: points with their 95% CI (filled:
    learned, CI over seeds; hollow: deterministic policies, CI over slots); the oracle's latency
    as a vertical line."""
    _style()
    conds = [c for c in TEST_NAMES if c in set(table.condition)]
    methods = list(dict.fromkeys(table.method))  # results_table's order
    fig, axes = plt.subplots(1, len(conds), figsize=(4.6 * len(conds), 0.42 * len(methods) + 1.6),
                             sharey=True, squeeze=False)
    for ax, cond in zip(axes[0], conds, strict=True):
        g = table[table.condition == cond].set_index("method")
        for y, method in enumerate(methods):
            if method not in g.index:
                continue
            r = g.loc[method]
            st = style(method)
            learned = method in METHOD_STYLES
            lo, hi = r.ci_low_s, r.ci_high_s
            err = None if not np.isfinite(lo) else [[MS * (r.latency_s - lo)],
                                                     [MS * (hi - r.latency_s)]]
            ax.errorbar(MS * r.latency_s, y, xerr=err, fmt=st["marker"], color=st["color"],
                        mfc=st["color"] if learned else "white", ms=7, capsize=3)
        if "oracle" in g.index:
            ax.axvline(MS * g.loc["oracle"].latency_s, color="black", lw=1, ls="-", zorder=0)
        ax.set_title(f"test condition {cond}")
        ax.set_xlabel("final average latency (ms)")
        ax.set_yticks(range(len(methods)), [label(m) for m in methods])
        ax.invert_yaxis()
    fig.suptitle("filled: learned (95% CI over seeds) · hollow: one deterministic run (95% CI "
                 "over slots) · line: oracle", fontsize=9, y=1.0)
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


# ============================================================================================
# PEARL's adaptation
# ============================================================================================
def adaptation(adapt: pd.DataFrame, baselines: pd.DataFrame, finals: pd.DataFrame | None = None,
               out_dir: Path | str | None = None, stem: str = "adaptation",
               yardsticks: pd.DataFrame | None = None) -> plt.Figure:
    """PEARL's latency (ms) against the number of context transitions on T1-T3 (mean, 95% CI
    over seeds; every n scored on the same slots), with SAC_DT's final latency (no adaptation),
    the oracle and greedy for reference, and (`yardsticks`, from
    `runner.yardstick_adaptation`) identify-then-greedy on the same n grid and slots, whose
    n = 0 is blind greedy."""
    _style()
    fig, axes = plt.subplots(1, len(TEST_NAMES), figsize=(5.0 * len(TEST_NAMES), 3.8),
                             squeeze=False)
    for ax, cond in zip(axes[0], TEST_NAMES, strict=True):
        g = adapt[adapt.condition == cond]
        rows = [(n, *mean_ci(s.mean_latency_s.to_numpy())) for n, s in g.groupby("n_context")]
        if rows:
            n, m, lo, hi = map(np.asarray, zip(*rows, strict=True))
            x = np.maximum(n, 0.5)  # show n = 0 (prior) on a log axis
            st = METHOD_STYLES["pearl"]
            ax.plot(x, MS * m, color=st["color"], ls=st["ls"], marker=st["marker"],
                    label=label("pearl"))
            ax.fill_between(x, MS * lo, MS * hi, color=st["color"], alpha=0.2, lw=0)
            ax.set_xscale("log")
        if finals is not None:
            s = finals[(finals.method == "sac_dt") & (finals.condition == cond)]
            if not s.empty:
                st = METHOD_STYLES["sac_dt"]
                ax.axhline(MS * s.mean_latency_s.mean(), color=st["color"], ls=st["ls"],
                           label="SAC_DT (cannot adapt)")
        if yardsticks is not None:
            y = yardsticks[yardsticks.condition == cond].sort_values("n_context")
            if not y.empty:
                st = BASELINE_STYLES["identify_greedy"]
                ax.plot(np.maximum(y.n_context.to_numpy(), 0.5), MS * y.mean_latency_s,
                        color=st["color"], ls=st["ls"], marker=st["marker"],
                        label="identify-then-greedy (n = 0: blind greedy)")
                ax.set_xscale("log")
        _hlines(ax, baselines, cond, ("oracle", "greedy"))
        if rows:  # every context size on the axis, n = 20 (the protocol's) included
            ax.set_xticks(x, [str(int(v)) for v in n])
            ax.minorticks_off()
        ax.set_title(f"unseen condition {cond}")
        ax.set_xlabel("context transitions (0 = prior, shown at 0.5)")
        ax.set_ylabel("average service latency (ms)")
    _legend_below(fig, axes[0, 0])
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


# ============================================================================================
# training diagnostics and the posterior of z
# ============================================================================================
DIAGNOSTICS: dict[str, tuple[str, str]] = {
    "critic_loss": ("critic loss", "MSE (log latency, or scaled reward)"),
    "critic_rmse_s": ("critic's latency error on held-out slots", "s, RMS per user"),
    "temperature": ("temperature ξ", "ξ (log scale)"),
    "kl": ("KL(q(z|c) || N(0, I))", "nats per context"),
    "entropy": ("policy entropy", "nats, summed over users and heads"),
    "actor_loss": ("actor loss", "loss"),
    "q_mean": ("mean Q value", "scaled reward"),
    "validation_latency_s": ("validation latency on own training conditions", "s"),
}


def training_diagnostics(logs: pd.DataFrame, columns: Sequence[str],
                         out_dir: Path | str | None = None, stem: str = "training_diagnostics",
                         target_entropy: float | None = None,  # noqa: F811 - a value here
                         x: str = "iteration"
                         ) -> plt.Figure:
    """One panel per diagnostic column (titles and units from `DIAGNOSTICS`) against iterations,
    mean and 95% CI over seeds per method; the target entropy as a line; one legend."""
    _style()
    cols = [c for c in columns if c in logs.columns]
    if not cols:
        raise ValueError(f"none of {list(columns)} is in the training log "
                         f"(columns: {list(logs.columns)})")
    x = x if x in logs.columns else "env_steps"
    fig, axes = plt.subplots(1, len(cols), figsize=(4.4 * len(cols), 3.6), squeeze=False)
    methods = [m for m in METHOD_ORDER if m in set(logs.method)]
    for ax, col in zip(axes[0], cols, strict=True):
        bands = seed_bands(logs.dropna(subset=[col]).assign(condition="-"), value=col, x=x)
        for method in methods:
            b = bands[bands.method == method].sort_values(x)
            st = METHOD_STYLES.get(method, style(method))
            ax.plot(b[x], b["mean"], color=st["color"], ls=st["ls"], lw=1.6, label=label(method))
            ax.fill_between(b[x], b.ci_low, b.ci_high, color=st["color"], alpha=0.15, lw=0)
        title, unit = DIAGNOSTICS.get(col, (col, ""))
        ax.set_title(title)
        ax.set_ylabel(unit)
        ax.set_xlabel("iteration" if x == "iteration" else "environment steps")
        if col == "entropy" and target_entropy is not None:
            ax.axhline(target_entropy, color="black", ls="--", lw=1.2,
                       label=f"target entropy ({target_entropy:.0f} nats)")
        if col.startswith(("temperature", "alpha")) and (logs[col].dropna() > 0).all():
            ax.set_yscale("log")
    # one legend: the methods plus the target-entropy line
    handles, labels = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


def latent_scatter(latents: pd.DataFrame, out_dir: Path | str | None = None,
                   stem: str = "latent_z") -> plt.Figure:
    """Left: posterior means of z at the largest context, projected on their first two principal
    components, per condition (one point per context draw). Right: the between- and
    within-condition distances of those means against the context size (`latent_separation`)."""
    _style()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11.5, 4.4))
    big = latents[latents.n_context == latents.n_context.max()]
    sns.scatterplot(data=big, x="z0", y="z1", hue="condition", style="kind", ax=ax, s=50)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=8)
    ax.set_xlabel("z: first principal component")
    ax.set_ylabel("z: second principal component")
    ax.set_title(f"posterior mean of z after {int(big.n_context.max())} transitions")
    sep = latent_separation(latents)
    x = np.maximum(sep.n_context, 0.5)
    ax2.plot(x, sep.between, "o-", color=_CB[0], label="between conditions")
    ax2.plot(x, sep.within, "s--", color=_CB[1], label="within a condition (context draws)")
    ax2.set_xscale("log")
    ax2.set_xlabel("context transitions (0 = prior, shown at 0.5)")
    ax2.set_ylabel("mean distance of posterior means")
    ax2.set_title("does z tell the conditions apart?")
    ax2.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


# ============================================================================================
# decisions and quality of service
# ============================================================================================


def decisions_figure(dec: pd.DataFrame, curves: pd.DataFrame | None = None,
                     out_dir: Path | str | None = None, stem: str = "decisions") -> plt.Figure:
    """Where the gap to the oracle comes from (`ecmeta_lib.decisions.record_decisions` frames).

    Top: the share of users given each pre-processing method (DS), place and model, per method
    against the oracle's (T1-T3, every seed and slot pooled). Bottom: the per-user latency's
    median, 90th and 99th percentiles per method; how often the accuracy repair overrides a
    part of each method's action; and the cloud share over training where ``curve.csv``
    records it."""
    _style()
    methods = _ordered(dec.method)
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
    ylabels = [label(m) for m in methods]
    for ax, (col, cats, title) in zip(axes[0], [
            ("ds", None, "pre-processing method (DS): 0 most compressed"),
            ("place", PLACES, "place (after repair and P2)"),
            ("model", None, "AI model: 0 lightest")], strict=True):
        values = cats if cats is not None else sorted(dec[col].unique())
        share = (dec.groupby("method")[col].value_counts(normalize=True).unstack(fill_value=0)
                 .reindex(index=methods, columns=values, fill_value=0))
        left = np.zeros(len(methods))
        colors = sns.color_palette("crest", len(values))
        for v, c in zip(values, colors, strict=True):
            ax.barh(range(len(methods)), share[v].to_numpy(), left=left, color=c,
                    label=str(v), edgecolor="white")
            left += share[v].to_numpy()
        ax.set_yticks(range(len(methods)), ylabels if ax is axes[0, 0] else [""] * len(methods))
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of users")
        ax.set_title(title)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=len(values),
                  frameon=False, fontsize=8)
    # per-user latency quantiles: one row per method (a CDF of 11 methods is 11 tangled lines)
    ax = axes[1, 0]
    quantiles = ((50, "o"), (90, "s"), (99, "^"))
    q = np.array([[np.percentile(MS * dec.loc[dec.method == m, "latency_s"].to_numpy(), p)
                   for p, _ in quantiles] for m in methods])
    y = np.arange(len(methods))
    ax.hlines(y, q.min(axis=1), q.max(axis=1), color="0.75", lw=1)
    for j, ((p, marker), c) in enumerate(zip(quantiles, sns.color_palette("crest", 3),
                                             strict=True)):
        ax.scatter(q[:, j], y, marker=marker, color=c, s=30, zorder=3, label=f"p{p}")
    ax.set_yticks(y, ylabels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("per-user service latency (ms)")
    ax.set_title("per-user latency quantiles (T1-T3 pooled)")
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.12),
              ncol=3)
    # repair overrides (the oracle's decisions are feasible by construction: left out)
    ax = axes[1, 1]
    parts = [("repaired_ds", "DS raised"), ("repaired_model", "model raised"),
             ("repaired_place", "moved off the device")]
    rmethods = [m for m in methods if m != "oracle"]
    rate = dec.groupby("method")[[p for p, _ in parts]].mean().reindex(rmethods)
    width = 0.8 / len(parts)
    for i, ((col, name), c) in enumerate(zip(parts, sns.color_palette("flare", len(parts)),
                                             strict=True)):
        ax.barh(np.arange(len(rmethods)) + (i - 1) * width,
                100 * rate[col].fillna(0).to_numpy(), height=width, color=c, label=name)
    ax.set_yticks(range(len(rmethods)), [label(m) for m in rmethods], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("users whose action the accuracy repair changed (%)")
    ax.set_title("accuracy repair overriding the action")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    # cloud share over training
    ax = axes[1, 2]
    if curves is not None and "cloud_share" in curves.columns:
        bands = seed_bands(curves, value="cloud_share", x="iteration")
        for method in [m for m in METHOD_ORDER if m in set(bands.method)]:
            b = bands[bands.method == method].groupby("iteration")["mean"].mean()
            st = METHOD_STYLES[method]
            ax.plot(b.index, 100 * b.to_numpy(), color=st["color"], ls=st["ls"],
                    label=label(method))
        cloud = dec[dec.method == "oracle"].place.eq("cloud").mean()
        ax.axhline(100 * cloud, color="black", lw=1, label=label("oracle"))
        ax.set_xlabel("iteration")
        ax.set_ylabel("cloud share on T1-T3 (%)")
        ax.legend(fontsize=7, frameon=False)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "cloud share over training:\nnot recorded by this run's curve.csv",
                ha="center", va="center", fontsize=10, color="gray", transform=ax.transAxes)
    ax.set_title("cloud share over training (mean of T1-T3)")
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


# ============================================================================================
# ablations (notebook 06)
# ============================================================================================
def _robust_limits(g: pd.DataFrame) -> tuple[float, float]:
    """x limits that one outlying row does not set: on each side of zero the largest row's
    reach, unless it is over twice the next one's (that row is then clipped and written out)."""
    vals = g[["change", "ci_low", "ci_high"]].to_numpy()

    def reach(ext: np.ndarray) -> float:
        ext = np.sort(ext[np.isfinite(ext) & (ext > 0)])
        if ext.size == 0:
            return 1.0
        top = ext[-2] if ext.size > 1 and ext[-1] > 2 * ext[-2] else ext[-1]
        return max(1.15 * top, 1.0)

    return -reach(-np.nanmin(vals, axis=1)), reach(np.nanmax(vals, axis=1))


def ablations_figure(effects: pd.DataFrame, out_dir: Path | str | None = None,
                     stem: str = "06_ablations") -> plt.Figure:
    """Per ablation, the paired change when the design choice is switched off (ablated -
    default, points; 95% Student-t CI over seeds), one marker per method. Left: the gap to the
    oracle (T1-T3 mean; SAC_AiSF_i on its own Ti), > 0 means the choice helps. Right (when
    recorded): PEARL's adaptation gain PEARL(0) - PEARL(n), < 0 means the choice helps.

    `effects` is `ablations.effects`'s frame."""
    _style()
    summary = effects[(effects.condition == "mean")
                      | ((effects.metric == "gap") & effects.method.str.startswith("sac_aisf_"))]
    panels = [m for m in ("gap", "gain") if m in set(summary.metric)]
    names = list(dict.fromkeys(summary.ablation))
    methods = [m for m in METHOD_ORDER if m in set(summary.method)]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.4 * max(len(panels), 1),
                                                              0.42 * len(names) + 1.8),
                             sharey=True, squeeze=False)
    titles = {"gap": "gap to the oracle (T1-T3 mean; SAC_AiSF_1: T1)\n> 0: switching it off "
                     "hurts, the choice helps",
              "gain": "PEARL's adaptation gain PEARL(0) - PEARL(n)\n< 0: switching it off "
                      "hurts, the choice helps"}
    for ax, metric in zip(axes[0], panels, strict=False):
        g = summary[summary.metric == metric]
        present = [m for m in methods if m in set(g.method)]
        xlo, xhi = _robust_limits(g)
        for k, method in enumerate(present):
            off = (k - (len(present) - 1) / 2) * 0.22
            r = g[g.method == method].set_index("ablation").reindex(names)
            y = np.arange(len(names)) + off
            change = r.change.clip(xlo, xhi)
            lo = (change - r.ci_low.clip(xlo, xhi)).to_numpy()
            hi = (r.ci_high.clip(xlo, xhi) - change).to_numpy()
            err = np.nan_to_num(np.vstack([lo, hi]), nan=0.0)
            st = style(method)
            ax.errorbar(change, y, xerr=err, fmt=st["marker"], color=st["color"], ms=6,
                        capsize=3, label=label(method).split(" (")[0])
            for yi, row in zip(y, r.itertuples(), strict=True):  # a row beyond the axis: its text
                if np.isfinite(row.change) and (min(row.ci_low, row.change) < xlo
                                                or max(row.ci_high, row.change) > xhi):
                    side = 1 if row.change > 0 else -1
                    ax.annotate(f"{row.change:+.1f} [{row.ci_low:+.1f}, {row.ci_high:+.1f}]",
                                (xhi if side > 0 else xlo, yi), xytext=(-4 * side, 7),
                                textcoords="offset points",
                                ha="right" if side > 0 else "left", fontsize=7,
                                color=st["color"])
        ax.set_xlim(xlo, xhi)
        ax.axvline(0, color="black", lw=1, zorder=1.5)
        n = g.n_context.dropna()
        ax.set_title(titles[metric].replace("(n)", f"({int(n.iloc[0])})" if len(n) else "(n)"),
                     fontsize=10)
        ax.set_xlabel("change (points, 95% CI over seeds)")
        ax.set_yticks(range(len(names)), [row_label(a) for a in names])
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    _legend_below(fig, axes[0, 0], y=0.0)
    _save(fig, out_dir, stem)
    return fig


def probe_curves(curve: pd.DataFrame, out_dir: Path | str | None = None,
                 stem: str = "08_adaptation_probe") -> plt.Figure:
    """PEARL's gap to the oracle (%) against its context size n, one line per adaptation probe
    (column ``probe``), mean and 95% band over seeds (column ``seed``, gap in ``gap``), per
    test condition; n = 0 is drawn at 0.5 on the log axis."""
    _style()
    conds = [c for c in TEST_NAMES if c in set(curve.condition)]
    fig, axes = plt.subplots(1, len(conds), figsize=(5.0 * len(conds), 3.8), squeeze=False,
                             sharey=True)
    colors = dict(zip(dict.fromkeys(curve.probe), sns.color_palette("colorblind"), strict=False))
    for ax, cond in zip(axes[0], conds, strict=True):
        for probe, g in curve[curve.condition == cond].groupby("probe", sort=False):
            rows = [(n, *mean_ci(h.gap.to_numpy())) for n, h in g.groupby("n_context")]
            n, m, lo, hi = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
            x = np.where(n == 0, 0.5, n)
            ax.plot(x, m, marker="o", ms=4, color=colors[probe], label=probe)
            ax.fill_between(x, lo, hi, color=colors[probe], alpha=0.15, lw=0)
        ax.set_xscale("log")
        ax.set_xlabel("context transitions n (n = 0 at 0.5)")
        ax.set_title(f"test condition {cond}")
        ax.axhline(0, color="black", lw=1)
    axes[0, 0].set_ylabel("PEARL(n): gap to the oracle (%)")
    axes[0, 0].legend(frameon=False, fontsize=9)
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig
