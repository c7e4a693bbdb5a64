"""Every figure and table of the reproduction, one function each.

Inputs are the tidy frames of `ecmeta_lib.runner` (and `ecmeta_lib.decisions`); outputs go to PNG
+ PDF (figures) and CSV + Markdown (tables). Latencies are shown in ms. Intervals follow
`ecmeta_lib.stats`: a learned method's is Student-t over its seeds (per condition), a deterministic
policy's a bootstrap over the evaluated slots; the table says which.
"""

from __future__ import annotations

import math
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

from .conditions import TEST_NAMES  # noqa: E402
from .stats import CI_SEEDS, CI_SLOTS, mean_ci  # noqa: E402

MS = 1e3  # s -> ms

METHOD_LABELS = {
    "pearl": "PEARL (adapted on Ti)",
    "sac_dt": "SAC_DT",
    "sac_t_m": "SAC_T_M",
    "sac_aisf_1": "SAC_AiSF_1",
    "sac_aisf_2": "SAC_AiSF_2",
    "sac_aisf_3": "SAC_AiSF_3",
    "oracle": "oracle (per-slot MILP)",
    "greedy": "greedy (knows condition)",
    "random": "random",
    "blind_greedy": "blind greedy (never sees the condition)",
    "identify_greedy": "identify-then-greedy",
}
METHOD_ORDER = ["pearl", "sac_dt", "sac_t_m", "sac_aisf_1", "sac_aisf_2", "sac_aisf_3"]
BASELINE_ORDER = ["greedy", "identify_greedy", "blind_greedy", "random", "oracle"]

# One colour, line style and marker per learned method: told apart in print and by colour-blind
# readers (the three SAC_AiSF_i share a marker family but not a colour or a dash).
_CB = sns.color_palette("colorblind", 10)
METHOD_STYLES: dict[str, dict] = {
    "pearl": {"color": _CB[0], "ls": "-", "marker": "o"},
    "sac_dt": {"color": _CB[1], "ls": "--", "marker": "s"},
    "sac_t_m": {"color": _CB[2], "ls": "-.", "marker": "D"},
    "sac_aisf_1": {"color": _CB[3], "ls": ":", "marker": "^"},
    "sac_aisf_2": {"color": _CB[4], "ls": (0, (5, 1, 1, 1, 1, 1)), "marker": "v"},
    "sac_aisf_3": {"color": _CB[7], "ls": (0, (8, 2)), "marker": "<"},
}
BASELINE_STYLES: dict[str, dict] = {
    "oracle": {"color": "black", "ls": "-", "marker": "*"},
    "greedy": {"color": "dimgray", "ls": "--", "marker": "P"},
    "identify_greedy": {"color": _CB[5], "ls": (0, (3, 1, 1, 1)), "marker": "X"},
    "blind_greedy": {"color": _CB[6], "ls": (0, (1, 1)), "marker": "h"},
    "random": {"color": "darkgray", "ls": ":", "marker": "x"},
}


def label(method: str) -> str:
    """Display name of a method, heuristic or yardstick (names like ``identify_greedy[20]``
    keep their bracket)."""
    base, _, rest = method.partition("[")
    return METHOD_LABELS.get(method, METHOD_LABELS.get(base, base) + (f" [{rest}" if rest else ""))


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


def seed_bands(curves: pd.DataFrame, value: str = "mean_latency_s",
               x: str = "env_steps") -> pd.DataFrame:
    """Mean and 95% CI over seeds per (method, condition, x)."""
    rows = []
    for (method, cond, steps), g in curves.groupby(["method", "condition", x]):
        m, lo, hi = mean_ci(g[value].to_numpy())
        rows.append({"method": method, "condition": cond, x: steps, "mean": m,
                     "ci_low": lo, "ci_high": hi, "n_seeds": int(g["seed"].nunique())})
    return pd.DataFrame(rows)


def _hlines(ax: plt.Axes, baselines: pd.DataFrame, cond: str,
            names: Sequence[str] = ("oracle", "greedy", "identify_greedy", "blind_greedy",
                                    "random")) -> None:
    """Horizontal lines of the deterministic policies (a name matches ``name`` and
    ``name[n]``, e.g. identify_greedy[20])."""
    base = baselines.method.astype(str).str.partition("[")[0]
    for name in names:
        row = baselines[(base == name) & (baselines.condition == cond)]
        if not row.empty:
            name = str(row.method.iloc[0])
            st = style(name)
            ax.axhline(MS * float(row.mean_latency_s.iloc[0]), color=st["color"], ls=st["ls"],
                       lw=1.3, label=label(name))


def fig3(curves: pd.DataFrame, baselines: pd.DataFrame, out_dir: Path | str | None = None,
         stem: str = "fig3_latency", gradient_steps_per_iteration: int | None = None
         ) -> plt.Figure:
    """Paper Fig. 3 with seeds: latency (ms) on T1-T3 over training, mean and 95% band over seeds.

    Top row: against iterations of Algorithm 1 - every method takes the same T_train critic
    gradient steps per iteration, so this is also a gradient-step axis (shown on top when
    `gradient_steps_per_iteration` is given). Bottom row: against environment steps (slots the
    agent collected, summed over its training conditions; log scale, since a DT agent collects
    six conditions' slots per iteration and a single-condition one one)."""
    _style()
    methods = [m for m in METHOD_ORDER if m in set(curves.method)]
    has_iter = "iteration" in curves.columns
    xs = ["iteration", "env_steps"] if has_iter else ["env_steps"]
    fig, axes = plt.subplots(len(xs), len(TEST_NAMES), figsize=(5.2 * len(TEST_NAMES),
                                                                3.9 * len(xs)),
                             squeeze=False, sharey="col")
    for r, x in enumerate(xs):
        bands = seed_bands(curves, x=x)
        for ax, cond in zip(axes[r], TEST_NAMES, strict=True):
            for method in methods:
                b = bands[(bands.method == method) & (bands.condition == cond)].sort_values(x)
                if b.empty:
                    continue
                st = METHOD_STYLES[method]
                ax.plot(b[x], MS * b["mean"], color=st["color"], ls=st["ls"], lw=1.8,
                        marker=st["marker"], ms=4, markevery=max(len(b) // 5, 1),
                        label=label(method))
                ax.fill_between(b[x], MS * b.ci_low, MS * b.ci_high, color=st["color"],
                                alpha=0.12, lw=0)
            _hlines(ax, baselines, cond)
            ax.set_ylabel("average service latency (ms)")
            if x == "iteration":
                ax.set_title(f"test condition {cond}",
                             pad=30 if gradient_steps_per_iteration else 6)
                ax.set_xlabel("iterations of Algorithm 1 (equal gradient steps for all)")
                if gradient_steps_per_iteration:
                    k = float(gradient_steps_per_iteration)
                    top = ax.secondary_xaxis("top", functions=(lambda i, k=k: i * k,
                                                               lambda g, k=k: g / k))
                    top.set_xlabel("critic gradient steps", fontsize=9)
            else:
                ax.set_xscale("log")
                ax.set_xlabel("environment steps (slots collected, log scale)")
                if not has_iter:
                    ax.set_title(f"test condition {cond}")
    _legend_below(fig, axes[0, 0], ncol=5)
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


# ============================================================================================
# results table and final latency
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
    order = {m: i for i, m in enumerate(METHOD_ORDER + BASELINE_ORDER)}
    table = pd.DataFrame(rows)
    table = table.sort_values(
        ["condition", "method"],
        key=lambda s: s.map(lambda m: order.get(m.partition("[")[0], 50))
        if s.name == "method" else s, kind="stable").reset_index(drop=True)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g")
        (out / f"{stem}.md").write_text(table_markdown(table))
    return table


def table_markdown(table: pd.DataFrame) -> str:
    """Readable Markdown of the results table (latency in ms with its 95% CI and its kind)."""
    lines = ["| condition | method | latency (ms) [95% CI] | CI over | gap to oracle | "
             "accuracy violations | cloud share | critic error (ms RMS) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        ci = ("" if not np.isfinite(r.ci_low_s)
              else f" [{MS * r.ci_low_s:.1f}, {MS * r.ci_high_s:.1f}]")
        viol = "" if not np.isfinite(r.accuracy_violation_rate) else \
            f"{100 * r.accuracy_violation_rate:.2f} %"
        cloud = "" if not np.isfinite(r.cloud_share) else f"{100 * r.cloud_share:.1f} %"
        rmse = getattr(r, "critic_rmse_s", np.nan)
        critic = "" if not np.isfinite(rmse) else f"{MS * rmse:.1f}"
        lines.append(f"| {r.condition} | {label(r.method)} | {MS * r.latency_s:.1f}{ci} | "
                     f"{getattr(r, 'ci_kind', '')} | {r.gap_to_oracle_pct:+.1f} % | {viol} | "
                     f"{cloud} | {critic} |")
    return "\n".join(lines) + "\n"


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


def target_entropy(profile) -> float:  # noqa: ANN001 - a training.Profile (torch-free import)
    """The entropy the temperature steers towards in `profile` (nats, summed over users and
    heads): a fraction of the uniform policy's, or the paper's -3|U|."""
    sys_cfg = profile.env.system
    te = profile.agent.actor.target_entropy
    if te == "paper":
        return -3.0 * sys_cfg.n_users
    heads = (sys_cfg.n_methods, sys_cfg.n_servers + 1, sys_cfg.n_models)
    return float(te) * sys_cfg.n_users * sum(math.log(h) for h in heads)


def training_diagnostics(logs: pd.DataFrame, columns: Sequence[str],
                         out_dir: Path | str | None = None, stem: str = "training_diagnostics",
                         target_entropy: float | None = None, x: str = "iteration"
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
PLACES = ("device", "edge", "cloud")


def _ordered(names: Sequence[str] | pd.Index | pd.Series) -> list[str]:
    """Unique names: the oracle, the learned methods, then the yardsticks (by base name)."""
    rank = {m: i for i, m in enumerate(["oracle", *METHOD_ORDER, *BASELINE_ORDER])}
    return sorted(dict.fromkeys(names), key=lambda m: rank.get(m.partition("[")[0], 99))


def decisions_figure(dec: pd.DataFrame, curves: pd.DataFrame | None = None,
                     out_dir: Path | str | None = None, stem: str = "decisions") -> plt.Figure:
    """Where the gap to the oracle comes from (`ecmeta_lib.decisions.record_decisions` frames).

    Top: the share of users given each pre-processing method (DS), place and model, per method
    against the oracle's (T1-T3, every seed and slot pooled). Bottom: the per-user latency CDF
    per method; how often the accuracy repair overrides a part of each method's action; and the
    cloud share over training where ``curve.csv`` records it."""
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
    # per-user latency CDF
    ax = axes[1, 0]
    for method in methods:
        lat = np.sort(MS * dec.loc[dec.method == method, "latency_s"].to_numpy())
        st = style(method)
        ax.plot(lat, np.arange(1, lat.size + 1) / lat.size, color=st["color"], ls=st["ls"],
                lw=1.5, label=label(method))
    ax.set_xscale("log")
    ax.set_xlabel("per-user service latency (ms, log scale)")
    ax.set_ylabel("fraction of users")
    ax.set_title("per-user latency CDF (T1-T3 pooled)")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
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
# ablations (notebook 06)
# ============================================================================================
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
        for k, method in enumerate(present):
            off = (k - (len(present) - 1) / 2) * 0.22
            r = g[g.method == method].set_index("ablation").reindex(names)
            y = np.arange(len(names)) + off
            lo = (r.change - r.ci_low).to_numpy()
            hi = (r.ci_high - r.change).to_numpy()
            err = np.nan_to_num(np.vstack([lo, hi]), nan=0.0)
            st = style(method)
            ax.errorbar(r.change, y, xerr=err, fmt=st["marker"], color=st["color"], ms=6,
                        capsize=3, label=label(method).split(" (")[0])
        ax.axvline(0, color="black", lw=1, zorder=1.5)
        n = g.n_context.dropna()
        ax.set_title(titles[metric].replace("(n)", f"({int(n.iloc[0])})" if len(n) else "(n)"),
                     fontsize=10)
        ax.set_xlabel("change when switched off (points, 95% CI over seeds)")
        ax.set_yticks(range(len(names)), names)
    axes[0, 0].invert_yaxis()
    fig.tight_layout()
    _legend_below(fig, axes[0, 0], y=0.0)
    _save(fig, out_dir, stem)
    return fig
