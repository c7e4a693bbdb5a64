"""Every figure and table of the reproduction, one function each.

Inputs are the tidy frames of `ecmeta_lib.runner`; outputs go to PNG + PDF (figures) and CSV +
Markdown (tables). Across seeds, bands and intervals are 95% Student-t intervals of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless by default; notebooks still display the returned figures
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .conditions import TEST_NAMES  # noqa: E402
from .stats import mean_ci  # noqa: E402

METHOD_LABELS = {
    "pearl": "PEARL (ours, adapted)",
    "sac_dt": "SAC_DT",
    "sac_t_m": "SAC_T_M",
    "sac_aisf_1": "SAC_AiSF_1",
    "sac_aisf_2": "SAC_AiSF_2",
    "sac_aisf_3": "SAC_AiSF_3",
    "oracle": "oracle (per-slot MILP)",
    "greedy": "greedy (knows condition)",
    "random": "random",
}
METHOD_ORDER = ["pearl", "sac_dt", "sac_t_m", "sac_aisf_1", "sac_aisf_2", "sac_aisf_3"]
_LINE_STYLES = {"oracle": ("black", "-"), "greedy": ("dimgray", "--"), "random": ("gray", ":")}


def _style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.15)


def _save(fig: plt.Figure, out_dir: Path | str | None, stem: str) -> None:
    if out_dir is None:
        return
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{stem}.png", dpi=160, bbox_inches="tight")
    fig.savefig(out / f"{stem}.pdf", bbox_inches="tight", metadata={"CreationDate": None})


def seed_bands(curves: pd.DataFrame, value: str = "mean_latency_s") -> pd.DataFrame:
    """Mean and 95% CI over seeds per (method, condition, env_steps)."""
    rows = []
    for (method, cond, steps), g in curves.groupby(["method", "condition", "env_steps"]):
        m, lo, hi = mean_ci(g[value].to_numpy())
        rows.append({"method": method, "condition": cond, "env_steps": steps, "mean": m,
                     "ci_low": lo, "ci_high": hi, "n_seeds": int(g["seed"].nunique())})
    return pd.DataFrame(rows)


def fig3(curves: pd.DataFrame, baselines: pd.DataFrame, out_dir: Path | str | None = None,
         stem: str = "fig3_latency") -> plt.Figure:
    """Paper Fig. 3 with seeds: latency on T1-T3 against environment steps, one panel each."""
    _style()
    bands = seed_bands(curves)
    methods = [m for m in METHOD_ORDER if m in set(bands.method)]
    palette = dict(zip(methods, sns.color_palette("colorblind", len(methods)), strict=True))
    fig, axes = plt.subplots(1, len(TEST_NAMES), figsize=(5.2 * len(TEST_NAMES), 4.2),
                             sharey=False)
    for ax, cond in zip(np.atleast_1d(axes), TEST_NAMES, strict=True):
        for method in methods:
            b = bands[(bands.method == method) & (bands.condition == cond)].sort_values("env_steps")
            if b.empty:
                continue
            ax.plot(b.env_steps, b["mean"], color=palette[method], lw=1.8,
                    label=METHOD_LABELS.get(method, method))
            ax.fill_between(b.env_steps, b.ci_low, b.ci_high, color=palette[method], alpha=0.18,
                            lw=0)
        for name, (color, ls) in _LINE_STYLES.items():
            row = baselines[(baselines.method == name) & (baselines.condition == cond)]
            if not row.empty:
                ax.axhline(float(row.mean_latency_s.iloc[0]), color=color, ls=ls, lw=1.3,
                           label=METHOD_LABELS[name])
        ax.set_title(f"test condition {cond}")
        ax.set_xlabel("environment steps (slots collected)")
        ax.set_ylabel("average service latency (s)")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), frameon=False,
               bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


def results_table(finals: pd.DataFrame, baselines: pd.DataFrame,
                  out_dir: Path | str | None = None, stem: str = "results_table") -> pd.DataFrame:
    """Per method and test condition: final latency (mean, 95% CI over seeds), gap to the oracle,
    accuracy-violation rate and cloud share. Heuristics and the oracle are single deterministic
    evaluations (their CI is the slot-bootstrap one from the harness)."""
    rows = []
    for (method, cond), g in finals.groupby(["method", "condition"]):
        m, lo, hi = mean_ci(g.mean_latency_s.to_numpy())
        rows.append({"method": method, "condition": cond, "n_seeds": int(g.seed.nunique()),
                     "latency_s": m, "ci_low_s": lo, "ci_high_s": hi,
                     "gap_to_oracle_pct": float(g.gap_to_oracle_pct.mean()),
                     "accuracy_violation_rate": float(g.accuracy_violation_rate.mean()),
                     "cloud_share": float(g.cloud_share.mean())})
    for row in baselines.itertuples():
        rows.append({"method": row.method, "condition": row.condition, "n_seeds": 1,
                     "latency_s": row.mean_latency_s,
                     "ci_low_s": getattr(row, "ci_low_s", np.nan),
                     "ci_high_s": getattr(row, "ci_high_s", np.nan),
                     "gap_to_oracle_pct": row.gap_to_oracle_pct,
                     "accuracy_violation_rate": getattr(row, "accuracy_violation_rate", np.nan),
                     "cloud_share": getattr(row, "cloud_share", np.nan)})
    order = {m: i for i, m in enumerate(METHOD_ORDER + ["greedy", "random", "oracle"])}
    table = pd.DataFrame(rows)
    table = table.sort_values(["condition", "method"], key=lambda s: s.map(order)
                              if s.name == "method" else s).reset_index(drop=True)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g")
        (out / f"{stem}.md").write_text(table_markdown(table))
    return table


def table_markdown(table: pd.DataFrame) -> str:
    """Readable Markdown of the results table (latency in ms with its 95% CI)."""
    lines = ["| condition | method | seeds | latency (ms) [95% CI] | gap to oracle | "
             "accuracy violations | cloud share |", "|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        ci = ("" if not np.isfinite(r.ci_low_s)
              else f" [{1e3 * r.ci_low_s:.1f}, {1e3 * r.ci_high_s:.1f}]")
        viol = "" if not np.isfinite(r.accuracy_violation_rate) else \
            f"{100 * r.accuracy_violation_rate:.2f} %"
        cloud = "" if not np.isfinite(r.cloud_share) else f"{100 * r.cloud_share:.1f} %"
        lines.append(f"| {r.condition} | {METHOD_LABELS.get(r.method, r.method)} | {r.n_seeds} | "
                     f"{1e3 * r.latency_s:.1f}{ci} | {r.gap_to_oracle_pct:+.1f} % | {viol} | "
                     f"{cloud} |")
    return "\n".join(lines) + "\n"


def adaptation(adapt: pd.DataFrame, baselines: pd.DataFrame, finals: pd.DataFrame | None = None,
               out_dir: Path | str | None = None, stem: str = "adaptation") -> plt.Figure:
    """PEARL's latency against the number of context transitions on T1-T3 (mean, 95% CI over
    seeds), with SAC_DT's final latency (no adaptation) and the oracle for reference."""
    _style()
    fig, axes = plt.subplots(1, len(TEST_NAMES), figsize=(5.0 * len(TEST_NAMES), 3.8))
    for ax, cond in zip(np.atleast_1d(axes), TEST_NAMES, strict=True):
        g = adapt[adapt.condition == cond]
        rows = [(n, *mean_ci(s.mean_latency_s.to_numpy())) for n, s in g.groupby("n_context")]
        if rows:
            n, m, lo, hi = map(np.asarray, zip(*rows, strict=True))
            x = np.maximum(n, 0.5)  # show n = 0 (prior) on a log axis
            ax.plot(x, m, "o-", label=METHOD_LABELS["pearl"])
            ax.fill_between(x, lo, hi, alpha=0.2)
            ax.set_xscale("log")
        if finals is not None:
            s = finals[(finals.method == "sac_dt") & (finals.condition == cond)]
            if not s.empty:
                ax.axhline(s.mean_latency_s.mean(), color="tab:orange", ls="-.",
                           label="SAC_DT (no adaptation)")
        for name in ("oracle", "greedy"):
            color, ls = _LINE_STYLES[name]
            row = baselines[(baselines.method == name) & (baselines.condition == cond)]
            if not row.empty:
                ax.axhline(float(row.mean_latency_s.iloc[0]), color=color, ls=ls,
                           label=METHOD_LABELS[name])
        ax.set_title(f"unseen condition {cond}")
        ax.set_xlabel("context transitions (0 = prior, shown at 0.5)")
        ax.set_ylabel("average service latency (s)")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False,
               bbox_to_anchor=(0.5, -0.1))
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


def training_diagnostics(logs: pd.DataFrame, columns: Sequence[str],
                         out_dir: Path | str | None = None,
                         stem: str = "training_diagnostics") -> plt.Figure:
    """One panel per diagnostic column (losses, temperature, KL...) against environment steps,
    mean over seeds per method."""
    _style()
    cols = [c for c in columns if c in logs.columns]
    if not cols:
        raise ValueError(f"none of {list(columns)} is in the training log "
                         f"(columns: {list(logs.columns)})")
    fig, axes = plt.subplots(1, len(cols), figsize=(4.4 * len(cols), 3.6), squeeze=False)
    for ax, col in zip(axes[0], cols, strict=True):
        sns.lineplot(data=logs, x="env_steps", y=col, hue="method", errorbar=("ci", 95), ax=ax,
                     seed=0)  # the bootstrap of the band, so reruns give the same figure
        ax.set_title(col)
        if col.startswith(("temperature", "alpha", "kl")) and (logs[col] > 0).all():
            ax.set_yscale("log")
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


def latent_scatter(latents: pd.DataFrame, out_dir: Path | str | None = None,
                   stem: str = "latent_z") -> plt.Figure:
    """Posterior means of z (first two dimensions) inferred from contexts of each condition."""
    _style()
    fig, ax = plt.subplots(figsize=(5.4, 4.4))
    sns.scatterplot(data=latents, x="z0", y="z1", hue="condition", style="kind", ax=ax, s=40)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_xlabel("z: first principal component")
    ax.set_ylabel("z: second principal component")
    ax.set_title("posterior mean of z per condition")
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig


def posterior_narrowing(latents: pd.DataFrame, out_dir: Path | str | None = None,
                        stem: str = "posterior_narrowing") -> plt.Figure:
    """Mean posterior variance of z against the number of context transitions, per condition."""
    _style()
    fig, ax = plt.subplots(figsize=(5.8, 4.2))
    data = latents.assign(n_plot=np.maximum(latents.n_context, 0.5))
    sns.lineplot(data=data, x="n_plot", y="posterior_var", hue="condition", style="kind",
                 markers=True, errorbar=None, ax=ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("context transitions (0 = prior, shown at 0.5)")
    ax.set_ylabel("mean posterior variance of z")
    ax.set_title("posterior of z against the context size")
    fig.tight_layout()
    _save(fig, out_dir, stem)
    return fig
