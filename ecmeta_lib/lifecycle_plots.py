"""Figures and tables of the lifecycle experiment (`ecmeta_lib.lifecycle_runner`).

Each function receives the data (traces, the oracle's trace, lifecycle.csv's table) and draws or
summarises it; the colours are the grid's (`plots.style`), so PEARL and SAC_DT look the same in
every figure of the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import plots  # noqa: E402
from .stats import mean_ci, paired_test  # noqa: E402

LIFECYCLE_LABELS = {
    "pearl_online": "PEARL online (no gradient step)",
    "sac_dt": "SAC_DT (never adapts)",
    "sac_retrain": "SAC retrained from scratch",
    "sac_finetune": "SAC fine-tuned (from SAC_DT)",
    "identify_greedy": "identify-then-greedy (live)",
    "identify_greedy_detect": "identify-then-greedy, unannounced (CUSUM)",
    "pearl_online_detect": "PEARL online, unannounced (CUSUM on the critic)",
    "pearl_online_twin_detect": "PEARL online, unannounced (CUSUM on the twin)",
    "pearl_continual": "PEARL online, twin pool that grows",
    "blind_greedy": "blind greedy",
    "greedy": "greedy (knows the condition)",
    "random": "random",
    "oracle": "oracle (per-slot MILP)",
}
LIFECYCLE_ORDER = ["pearl_online", "pearl_continual", "pearl_online_detect",
                   "pearl_online_twin_detect", "identify_greedy",
                   "identify_greedy_detect", "sac_dt", "sac_finetune", "sac_retrain",
                   "blind_greedy", "greedy", "random"]
_STYLE_OF = {"pearl_online": "pearl", "sac_retrain": "sac_aisf_1", "sac_finetune": "sac_t_m",
             "pearl_continual": "sac_aisf_2", "pearl_online_detect": "sac_aisf_3",
             "identify_greedy_detect": "sac_aisf_3", "pearl_online_twin_detect": "sac_aisf_3"}
GAP_FLOOR = 0.5
"""Lower end (%) of the gap axis of `stream_figure`."""
FIGURE_METHODS = ["pearl_online", "pearl_continual", "identify_greedy", "sac_dt", "sac_retrain",
                  "sac_finetune", "blind_greedy", "greedy"]
"""The controllers the stream figure draws (the unannounced ones and random are in the tables)."""


def lifecycle_style(method: str) -> dict:
    """Line style of a lifecycle controller (the grid's colour for the method it comes from)."""
    return plots.style(_STYLE_OF.get(method, method))


def rolling_gap(trace: pd.DataFrame, window: int = 20) -> np.ndarray:
    """The gap to the oracle (%) over the trailing `window` slots at every slot (a ratio of
    sums, as the stream gap)."""
    lat = trace["mean_latency_s"].rolling(window, min_periods=1).sum().to_numpy()
    orc = trace["oracle_latency_s"].rolling(window, min_periods=1).sum().to_numpy()
    return 100.0 * (lat - orc) / orc


def gap_bands(traces: dict[tuple[str, int], pd.DataFrame], window: int = 20) -> pd.DataFrame:
    """Per controller and slot: the mean over seeds of the rolling gap and its 95 % t interval
    (columns method, slot, mean, ci_low, ci_high, n_seeds)."""
    by_method: dict[str, list[np.ndarray]] = {}
    for (method, _seed), tr in traces.items():
        by_method.setdefault(method, []).append(rolling_gap(tr, window))
    rows = []
    for method, curves in by_method.items():
        arr = np.vstack(curves)
        mean = arr.mean(axis=0)
        if arr.shape[0] > 1:
            from scipy import stats as st

            half = st.t.ppf(0.975, arr.shape[0] - 1) * arr.std(axis=0, ddof=1) / np.sqrt(
                arr.shape[0])
        else:
            half = np.zeros_like(mean)
        rows.append(pd.DataFrame({"method": method, "slot": np.arange(arr.shape[1]),
                                  "mean": mean, "ci_low": mean - half, "ci_high": mean + half,
                                  "n_seeds": arr.shape[0]}))
    return pd.concat(rows, ignore_index=True)


def stream_figure(oracle: pd.DataFrame, events: pd.DataFrame, bands: pd.DataFrame,
                  out_dir: Path | str | None = None, stem: str = "07_lifecycle",
                  methods: Sequence[str] | None = None, window: int = 20) -> plt.Figure:
    """Top: the optimum's latency along the stream (how the upgrades move it). Bottom: each
    controller's gap to the oracle over the trailing `window` slots, mean over seeds with its
    95 % t band (drawn from `GAP_FLOOR` up: no policy beats the per-slot optimum, and with 3
    seeds a t band can reach below it). Upgrade events are grey verticals; the gap axis is
    logarithmic so 1 % and 100 % both show."""
    plots._style()
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(12, 7.5), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 2.2]})
    ms = oracle["oracle_latency_s"].to_numpy() * 1e3
    ax0.plot(oracle["slot"], ms, color="0.75", lw=0.6, label="per slot")
    ax0.plot(oracle["slot"], pd.Series(ms).rolling(window, min_periods=1).mean(), color="black",
             lw=1.4, label=f"{window}-slot mean")
    ax0.set_ylabel("optimal latency (ms)")
    ax0.legend(loc="upper right", frameon=False, fontsize=9)
    order = [m for m in (methods or FIGURE_METHODS) if m in set(bands["method"])]
    for m in order:
        b = bands[bands.method == m]
        st = lifecycle_style(m)
        ax1.plot(b["slot"], b["mean"], color=st["color"], ls=st["ls"], lw=1.3,
                 label=f"{LIFECYCLE_LABELS.get(m, m)} (n={int(b['n_seeds'].iloc[0])})")
        ax1.fill_between(b["slot"], b["ci_low"].clip(lower=GAP_FLOOR), b["ci_high"],
                         color=st["color"], alpha=0.18, lw=0)
    for ax in (ax0, ax1):
        for s in events["slot"]:
            ax.axvline(s, color="0.5", lw=0.8, ls=":", zorder=0)
    ax1.set_yscale("log")
    ax1.set_ylim(GAP_FLOOR, None)
    ax1.set_ylabel(f"gap to the oracle, trailing {window} slots (%)")
    ax1.set_xlabel("slot of the stream (dotted: an upgrade takes effect)")
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False,
               fontsize=9)
    fig.tight_layout()
    plots._save(fig, out_dir, stem)
    return fig


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """lifecycle.csv reduced per controller and scenario seed: mean and 95 % t interval over
    seeds (on the same stream) of the stream gap and the regret, the median recovery, the early
    gaps, the decision time and the compute spent (means over seeds; the seedless heuristics
    have one row). Streams are never pooled: one block of rows per scenario seed."""
    rows = []
    for (m, scn), g in table.groupby(["method", "scenario_seed"], sort=False):
        gap, glo, ghi = mean_ci(g["stream_gap_pct"].to_numpy())
        reg, rlo, rhi = mean_ci(g["regret_s"].to_numpy())
        rows.append({
            "scenario seed": scn, "controller": m, "seeds": len(g),
            "stream gap %": gap, "gap CI": f"[{glo:.1f}, {ghi:.1f}]" if len(g) > 1 else "-",
            "regret s": reg, "regret CI": f"[{rlo:.1f}, {rhi:.1f}]" if len(g) > 1 else "-",
            "median recovery (slots)": g.get("recovery_slots_median", pd.Series(np.nan)).mean(),
            "gap first 20 %": g.get("gap_first20_pct_mean", pd.Series(np.nan)).mean(),
            "gap first 50 %": g.get("gap_first50_pct_mean", pd.Series(np.nan)).mean(),
            "ms/slot p50": g["decision_ms_p50"].mean(), "ms/slot p99": g["decision_ms_p99"].mean(),
            "grad steps": g.get("grad_steps", pd.Series(0)).fillna(0).mean(),
            "wall s": g.get("wall_s", pd.Series(np.nan)).mean()})
    out = pd.DataFrame(rows)
    key = {m: i for i, m in enumerate(["oracle", *LIFECYCLE_ORDER])}
    out["_rank"] = out["controller"].map(key)
    return (out.sort_values(["scenario seed", "_rank"]).drop(columns="_rank")
            .reset_index(drop=True))


def adapt_vs_retrain(table: pd.DataFrame) -> dict[str, float]:
    """The paper's argument as a paired test: PEARL online's cumulative regret against SAC
    retrained from scratch, paired by seed on the same stream (H1: PEARL's is smaller), and the
    ratio of the two means (target: at most one half)."""
    pearl = table[table.method == "pearl_online"].set_index(["scenario_seed", "seed"])
    sac = table[table.method == "sac_retrain"].set_index(["scenario_seed", "seed"])
    both = pearl.index.intersection(sac.index)
    diff = (sac.loc[both, "regret_s"] - pearl.loc[both, "regret_s"]).to_numpy()
    test = paired_test(diff, alternative="greater")
    return {**test, "pearl_regret_s": float(pearl.loc[both, "regret_s"].mean()),
            "sac_retrain_regret_s": float(sac.loc[both, "regret_s"].mean()),
            "ratio": float(pearl.loc[both, "regret_s"].mean() / sac.loc[both, "regret_s"].mean())}


def ratios_bar(summary: pd.DataFrame, out_dir: Path | str | None = None,
               stem: str = "07_lifecycle_regret") -> plt.Figure:
    """Cumulative regret per controller (s, mean over seeds with its interval)."""
    plots._style()
    s = summary[summary.controller != "oracle"]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    colors = [lifecycle_style(m)["color"] for m in s["controller"]]
    ax.barh([LIFECYCLE_LABELS.get(m, m) for m in s["controller"]], s["regret s"], color=colors)
    for i, (_, r) in enumerate(s.iterrows()):
        ax.text(r["regret s"], i, f"  {r['regret s']:.1f} s ({r['stream gap %']:+.1f} %)",
                va="center", fontsize=9)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("cumulative regret against the oracle over the stream (s, log scale)")
    fig.tight_layout()
    plots._save(fig, out_dir, stem)
    return fig


def detection_table(table: pd.DataFrame) -> pd.DataFrame:
    """The unannounced controllers' detection (means over seeds): delay, misses, false alarms
    on the stream and on an upgrade-free one, and their stream gap beside the announced one's."""
    rows = []
    for m, base in (("identify_greedy_detect", "identify_greedy"),
                    ("pearl_online_detect", "pearl_online"),
                    ("pearl_online_twin_detect", "pearl_online")):
        g, b = table[table.method == m], table[table.method == base]
        if g.empty:
            continue
        rows.append({"controller": m, "seeds": len(g),
                     "median delay (slots)": g["delay_median_slots"].mean(),
                     "missed": f"{g['missed'].mean():.0f} of {g['upgrades'].mean():.0f}",
                     "false alarms / 1,000 slots": g["false_alarms_per_1000_slots"].mean(),
                     "... on an upgrade-free stream": g["static_false_alarms_per_1000"].mean(),
                     "stream gap % (unannounced)": g["stream_gap_pct"].mean(),
                     "stream gap % (announced)": b["stream_gap_pct"].mean()})
    return pd.DataFrame(rows)


def _md(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |"
            for r in df.itertuples(index=False)]
    return "\n".join([head, *rows])


def claim_line(test: dict[str, float]) -> str:
    """The adapt-versus-retrain test as one line (n, effect, CI, p, the ratio)."""
    verdict = ("supported" if test["p_value"] < 0.05 and test["ci_low"] > 0 else "not supported")
    return (f"PEARL online (no gradient step) has a smaller cumulative regret than SAC retrained "
            f"from scratch after each upgrade: {verdict} (paired over n = {int(test['n'])} seeds "
            f"on one stream; SAC - PEARL = {test['mean']:.1f} s, 95 % CI [{test['ci_low']:.1f}, "
            f"{test['ci_high']:.1f}], one-sided p = {test['p_value']:.3g}, alpha 0.05; regret "
            f"{test['pearl_regret_s']:.1f} s against {test['sac_retrain_regret_s']:.1f} s, "
            f"ratio {test['ratio']:.2f})")


def write_markdown(table: pd.DataFrame, out_dir: Path | str, stem: str = "lifecycle") -> str:
    """``<out_dir>/<stem>.md``: per scenario seed, the controllers' table, the detectors' table
    and the adapt-versus-retrain claim, as `summary_table`, `detection_table` and
    `adapt_vs_retrain` compute them. Returns the text."""
    parts = []
    for scn, sub in table.groupby("scenario_seed"):
        summ = summary_table(sub).drop(columns=["scenario seed", "wall s"])
        summ["controller"] = summ["controller"].map(lambda m: LIFECYCLE_LABELS.get(m, m))
        parts += [f"### Scenario seed {scn}", "", _md(summ), ""]
        det = detection_table(sub)
        if len(det):
            parts += [_md(det), ""]
        if {"pearl_online", "sac_retrain"} <= set(sub.method):
            parts += [claim_line(adapt_vs_retrain(sub)), ""]
    text = "\n".join(parts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(text)
    return text


def upgrade_gaps(traces: dict[tuple[str, int], pd.DataFrame], horizon: int = 50) -> pd.DataFrame:
    """The gap (%) over the first `horizon` slots after each upgrade k, per controller and seed
    (columns method, seed, upgrade, gap_pct); upgrades whose segment is shorter are left out."""
    from .lifecycle_scoring import stream_metrics

    rows = []
    for (method, seed), tr in traces.items():
        per = stream_metrics(tr, early=(horizon,)).per_upgrade
        for r in per.itertuples():
            rows.append({"method": method, "seed": seed, "upgrade": int(r.event) + 1,
                         "gap_pct": getattr(r, f"gap_first{horizon}_pct")})
    return pd.DataFrame(rows, columns=["method", "seed", "upgrade", "gap_pct"]).dropna()


def continual_vs_frozen(gaps: pd.DataFrame, frozen: str = "pearl_online",
                        continual: str = "pearl_continual") -> dict[str, float]:
    """Does the gap over the first slots after upgrade k fall with k? Per seed, the least-squares
    slope of that gap against k (points per upgrade) for each meta-policy, with its t interval
    over seeds; and the paired gain of the continual over the frozen one on the later half of
    the upgrades (points, frozen - continual: > 0 when the growing pool helps)."""
    out: dict[str, float] = {}
    if gaps.empty or not {frozen, continual} <= set(gaps.method):  # no segment that long
        return {"n_seeds": 0.0}
    for name in (frozen, continual):
        g = gaps[gaps.method == name]
        slopes = [np.polyfit(s.upgrade, s.gap_pct, 1)[0] for _, s in g.groupby("seed")
                  if len(s) >= 3]
        m, lo, hi = mean_ci(np.asarray(slopes))
        out.update({f"{name}_slope": m, f"{name}_slope_low": lo, f"{name}_slope_high": hi})
    k_max = int(gaps.upgrade.max())
    late = gaps[gaps.upgrade > k_max / 2]
    a = late[late.method == frozen].groupby("seed").gap_pct.mean()
    b = late[late.method == continual].groupby("seed").gap_pct.mean()
    common = a.index.intersection(b.index)
    test = paired_test((a[common] - b[common]).to_numpy(), alternative="greater")
    out.update({"late_gain_pts": test["mean"], "late_gain_low": test["ci_low"],
                "late_gain_high": test["ci_high"], "late_gain_p": test["p_value"],
                "n_seeds": float(test["n"]), "late_from_upgrade": float(k_max // 2 + 1)})
    return out
