# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · AiSF conditions and their digital twins
#
# A *condition* fixes every user's three AI models: how many FLOP each needs per input bit, how
# much memory it takes on an edge server and how accurate it is. When a service provider upgrades
# its models the condition changes, and so do the best decisions. One condition is one task of
# meta-RL; the digital-twin (DT) system emulates the conditions met so far so that a meta-policy
# can train on all of them.
#
# This notebook shows how conditions are drawn and upgraded, puts the six DT conditions and the
# three unseen test conditions side by side, and measures what the heuristics and the exact
# per-slot optimum achieve on them. Choices the paper leaves open are marked **(ours)**.

# %% tags=["parameters"]
profile = "quick"  # smoke | quick | paper: how many slots the evaluations run
seed = 0  # task-set seed (system + conditions) and evaluation seed
figures_dir = "figures"  # relative to the repository root (or absolute)

# %%

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ecmeta_lib import (
    CONDITION_NAMES,
    DT_NAMES,
    TEST_NAMES,
    ConditionConfig,
    GreedyPolicy,
    LocalPolicy,
    NearestPolicy,
    RandomPolicy,
    bootstrap_ci,
    compare,
    evaluate,
    make_task_set,
)
from ecmeta_lib.paths import figures_path

N_SLOTS = {"smoke": 8, "quick": 200, "paper": 1000}
if profile not in N_SLOTS:
    raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(N_SLOTS)}")
n_slots = N_SLOTS[profile]
FIG = figures_path(figures_dir)
plt.rcParams.update({"figure.dpi": 110})
pd.set_option("display.width", 120)

# %% [markdown]
# ## 1. Drawing a condition
#
# For every user u and model j (0 = lightest):
#
# * compute intensity $\rho_u^j$: three draws U[300, 3000] FLOP per bit, sorted ascending;
# * memory $R_u^j$: three draws U[256, 2048] MB, sorted, rounded to whole MB;
# * peak accuracy $a_u^j$: three draws U[70, 98] %, sorted **(ours)**;
# * one sensitivity $\gamma_u$ ~ U[0.1, 0.4] for the accuracy model $a_u^j q^{\gamma_u}$ **(ours)**.
#
# Sorting each user's draws makes a heavier model also bigger and more accurate, as the paper
# assumes. The compute and memory ranges are the paper's.
#
# ## 2. Upgrading a condition **(ours)**
#
# The paper says an upgrade may cut resource use and computation and raise accuracy, not by how
# much. We upgrade each AiSF independently with probability 0.8: all its models' $\rho$ are
# multiplied by one factor U[0.6, 0.9], all their memories by another (rounded, at least 64 MB),
# and every model gains U[2, 6] accuracy points (capped at 99 %). One factor per AiSF keeps the
# order of its models.

# %%
# NBVAL_CHECK_OUTPUT
ccfg = ConditionConfig()
for name, value in ccfg.to_dict().items():
    print(f"{name:>24}: {value}")

# %% [markdown]
# ## 3. The task set: six digital twins, three unseen tests
#
# Following the paper's Sec. V, three base conditions G1, G2, G3 are drawn; G1 is upgraded twice
# (G1', G1''), G2 once (G2'), G3 never. These six are the DT conditions of meta-training. Three
# more independent draws, T1-T3, are the unseen test conditions. All nine share one static system
# and come from one integer seed.

# %%
# NBVAL_CHECK_OUTPUT
task_set = make_task_set(seed)
rows = []
for name in CONDITION_NAMES:
    c = task_set[name]
    row = {"condition": name, "role": "DT" if name in DT_NAMES else "test"}
    for j in range(c.n_models):
        row[f"rho{j}_FLOP/bit"] = c.flop_per_bit[:, j].mean()
    for j in range(c.n_models):
        row[f"mem{j}_MB"] = c.memory_mb[:, j].mean()
    for j in range(c.n_models):
        row[f"acc{j}_%"] = c.peak_accuracy[:, j].mean()
    row["gamma"] = c.quality_exponent.mean()
    rows.append(row)
summary = pd.DataFrame(rows).set_index("condition")
print("means over the 80 users, per model j (0 = lightest):")
print(summary.round(1).to_string())

# %%
long = pd.concat([
    pd.DataFrame({"condition": name, "model": f"model {j}",
                  "compute intensity (FLOP/bit)": task_set[name].flop_per_bit[:, j],
                  "memory (MB)": task_set[name].memory_mb[:, j],
                  "peak accuracy (%)": task_set[name].peak_accuracy[:, j]})
    for name in CONDITION_NAMES for j in range(task_set[name].n_models)])
fig, axes = plt.subplots(3, 1, figsize=(11, 9.5), sharex=True)
for ax, col in zip(axes, ["compute intensity (FLOP/bit)", "memory (MB)", "peak accuracy (%)"],
                   strict=True):
    sns.boxplot(data=long, x="condition", y=col, hue="model", ax=ax, fliersize=2,
                order=list(CONDITION_NAMES))
    ax.axvline(len(DT_NAMES) - 0.5, color="k", lw=1, ls="--")
    if ax is axes[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.get_legend().remove()
    ax.set_xlabel("")
axes[0].set_title("The six DT conditions (left of the dashed line) and the three unseen test "
                  "conditions, per model")
fig.tight_layout()
fig.savefig(FIG / "02_conditions.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# ## 4. What an upgrade shifts
#
# Each point is one AiSF; upgraded ones move to the lower left (lighter, smaller) and gain
# accuracy; the others stay at factor 1. Gains below 2 points come from the 99 % cap.

# %%
# NBVAL_CHECK_OUTPUT
pairs = [("G1", "G1'"), ("G1'", "G1''"), ("G2", "G2'")]
shift_rows, shifts = [], {}
for old, new in pairs:
    a, b = task_set[old], task_set[new]
    flop_f = b.flop_per_bit[:, 0] / a.flop_per_bit[:, 0]
    mem_f = b.memory_mb.sum(axis=1) / a.memory_mb.sum(axis=1)
    gain = (b.peak_accuracy - a.peak_accuracy).mean(axis=1)
    hit = ~np.isclose(flop_f, 1.0)
    shifts[f"{old} -> {new}"] = (flop_f, mem_f, gain, hit)
    shift_rows.append({"upgrade": f"{old} -> {new}", "upgraded_share": hit.mean(),
                       "compute_factor": flop_f[hit].mean(), "memory_factor": mem_f[hit].mean(),
                       "accuracy_gain_pts": gain[hit].mean(),
                       "order_kept": bool(np.all(np.diff(b.flop_per_bit, axis=1) >= 0)
                                          and np.all(np.diff(b.memory_mb, axis=1) >= 0)
                                          and np.all(np.diff(b.peak_accuracy, axis=1) >= 0))})
print("means over the upgraded AiSFs:")
print(pd.DataFrame(shift_rows).set_index("upgrade").round(3).to_string())

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
for i, (label, (flop_f, mem_f, gain, hit)) in enumerate(shifts.items()):
    ax1.scatter(flop_f, mem_f, s=14, alpha=0.7, color=f"C{i}", label=label)
    ax2.hist(gain[hit], bins=np.linspace(0, 6, 25), histtype="step", lw=1.8, color=f"C{i}",
             label=label)
ax1.set(xlabel="compute-intensity factor rho'/rho", ylabel="memory factor R'/R",
        title="Per-AiSF resource shift of an upgrade")
ax1.legend(fontsize=8)
ax2.set(xlabel="accuracy gain (points, mean over the AiSF's models)", ylabel="AiSFs",
        title="Accuracy gain of the upgraded AiSFs")
ax2.legend(fontsize=8)
fig.tight_layout()
fig.savefig(FIG / "02_upgrades.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# ## 5. Heuristics against the exact optimum on one condition
#
# `ecmeta_lib.evaluation.compare` runs every policy on the very same slot states (common random
# numbers: the states depend on the seed only, never on the actions) and solves every slot
# exactly with the oracle (a MILP, HiGHS here), which no policy can beat. The heuristics:
# *random* (uniform actions), *local* (everything on the device, most compressed data; repair
# raises the quality where needed), *nearest* (own AP's server, raw data, most complex model) and
# *greedy* (each user's fastest accuracy-feasible option, ignoring capacity, with the condition
# known). Intervals are 95% bootstrap intervals over slots.

# %%
policies = [RandomPolicy(seed=seed), LocalPolicy(), NearestPolicy(), GreedyPolicy()]
condition = "G1"
table = compare(policies, condition, n_slots=n_slots, seed=seed, task_set=task_set)
oracle_slots = evaluate(GreedyPolicy(), condition, n_slots=n_slots, seed=seed,
                        task_set=task_set).per_slot["oracle_latency_s"].to_numpy()
lo, hi = bootstrap_ci(oracle_slots, seed=seed)
oracle_row = {"policy": "oracle", "mean_latency_s": oracle_slots.mean(), "ci_low_s": lo,
              "ci_high_s": hi, "gap_to_oracle_pct": 0.0}
results = pd.concat([table, pd.DataFrame([oracle_row])], ignore_index=True)
shown = results.set_index("policy")[["mean_latency_s", "ci_low_s", "ci_high_s",
                                     "gap_to_oracle_pct", "accuracy_violation_rate",
                                     "cloud_share", "local_share", "edge_share"]]
shown[["mean_latency_s", "ci_low_s", "ci_high_s"]] *= 1e3
shown = shown.rename(columns={"mean_latency_s": "latency_ms", "ci_low_s": "ci_low_ms",
                              "ci_high_s": "ci_high_ms"})

# %%
# NBVAL_CHECK_OUTPUT
print(f"condition {condition}, {n_slots} slots, seed {seed} (shares are fractions of users):")
print(shown.round(3).to_string())

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
y = shown["latency_ms"]
err = np.vstack([y - shown["ci_low_ms"], shown["ci_high_ms"] - y])
colors = ["C0"] * (len(shown) - 1) + ["k"]
ax.bar(shown.index, y, yerr=err, capsize=4, color=colors)
for i, (v, top) in enumerate(zip(y, shown["ci_high_ms"], strict=True)):
    ax.text(i, top + 2, f"{v:.0f}", ha="center", va="bottom", fontsize=8)
ax.set(ylabel="mean latency (ms)", title=f"Heuristics and the per-slot optimum on {condition} "
       f"({n_slots} slots, 95% CI)")
fig.tight_layout()
fig.savefig(FIG / "02_heuristics.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# ## 6. The conditions differ in what is achievable
#
# The same greedy heuristic and the oracle on every condition, same slot states: upgraded
# conditions (lighter models) allow lower latency, and the best decisions shift with them, which
# is why a policy tuned on one condition can mismatch another.

# %%
per_condition = compare([GreedyPolicy()], list(CONDITION_NAMES), n_slots=n_slots, seed=seed,
                        task_set=task_set).set_index("condition")
per_condition = per_condition[["oracle_latency_s", "mean_latency_s", "gap_to_oracle_pct",
                               "edge_share", "cloud_share", "local_share"]]

# %%
# NBVAL_CHECK_OUTPUT
print(f"greedy vs the oracle on every condition ({n_slots} slots, seed {seed}):")
print((per_condition * [1e3, 1e3, 1, 1, 1, 1]).rename(
    columns={"oracle_latency_s": "oracle_ms", "mean_latency_s": "greedy_ms"}).round(2).to_string())

# %%
fig, ax = plt.subplots(figsize=(9, 3.6))
x = np.arange(len(CONDITION_NAMES))
ax.bar(x - 0.2, per_condition["oracle_latency_s"] * 1e3, 0.4, label="oracle", color="k")
ax.bar(x + 0.2, per_condition["mean_latency_s"] * 1e3, 0.4, label="greedy", color="C0")
ax.axvline(len(DT_NAMES) - 0.5, color="grey", lw=1, ls="--")
ax.set(xticks=x, xticklabels=list(CONDITION_NAMES), ylabel="mean latency (ms)",
       title="Achievable latency per condition (DTs left of the dashed line, tests right)")
ax.legend()
fig.tight_layout()
fig.savefig(FIG / "02_conditions_latency.png", bbox_inches="tight")
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
print(f"test conditions: {', '.join(TEST_NAMES)}; mean oracle latency "
      f"{per_condition.loc[list(TEST_NAMES), 'oracle_latency_s'].mean() * 1e3:.1f} ms on the "
      f"tests vs {per_condition.loc[list(DT_NAMES), 'oracle_latency_s'].mean() * 1e3:.1f} ms "
      f"on the DTs")

# %% [markdown]
# ## 7. Conditions from published models: the catalogue source
#
# `ConditionConfig(source="catalogue")` replaces the uniform draws by real image classifiers:
# `ecmeta_lib/data/model_catalogue.csv` holds 11 families as torchvision publishes them
# (ImageNet-1K top-1, GFLOPs per inference, weight-file size, input crop; provenance in
# `ecmeta_lib/data/PROVENANCE.md`). Each AiSF serves one family with three of its sizes, light
# to heavy, mapped as **(ours)**: $\rho$ = GFLOPs·1e9 / (input_px² · 3 channels · 8 bit) FLOP
# per bit, $R$ = the weight file rounded up to whole MB (no activations), $a$ = top-1, $\gamma$ as
# above. An upgrade is a published event: newer weights of the same architecture (arrows below:
# accuracy up, compute unchanged) or a move to the family's successor (ResNet → ConvNeXt,
# MNASNet → EfficientNet → EfficientNetV2). The DTs draw *twin* families; T1-T3 draw *test*
# families the twins never see.

# %%
from ecmeta_lib.catalogue import load_catalogue

catalogue = load_catalogue()
fig, ax = plt.subplots(figsize=(9, 5))
for i, (family, rows) in enumerate(catalogue.groupby("family", sort=False)):
    colour, marker = f"C{i % 10}", "o" if rows.split.iloc[0] == "twin" else "s"
    first = rows[rows.generation == 1]
    ax.plot(first.gflops, first.top1_pct, marker=marker, ms=5, lw=1, color=colour,
            label=f"{family} ({rows.split.iloc[0]})")
    for new in rows[rows.generation > 1].itertuples():
        old = rows[(rows.model == new.model) & (rows.weights == new.upgrade_of)].iloc[0]
        ax.annotate("", xy=(new.gflops, new.top1_pct), xytext=(old.gflops, old.top1_pct),
                    arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.2})
ax.set(xscale="log", xlabel="GFLOPs per inference (log)", ylabel="ImageNet-1K top-1 (%)",
       title="The model catalogue: sizes (lines), weight upgrades (arrows); squares held out")
ax.legend(fontsize=7, ncol=2, loc="lower right")
fig.tight_layout()
fig.savefig(FIG / "02_catalogue.png", bbox_inches="tight")
plt.show()

# %%
# the named conditions of the same seed from each source
cat_set = make_task_set(seed, condition_cfg=ConditionConfig(source="catalogue"))
source_rows = []
for source, ts in (("uniform", task_set), ("catalogue", cat_set)):
    for name in CONDITION_NAMES:
        c = ts[name]
        source_rows.append({
            "source": source, "condition": name,
            "rho_min": c.flop_per_bit.min(), "rho_median": np.median(c.flop_per_bit),
            "rho_max": c.flop_per_bit.max(), "memory_min_mb": c.memory_mb.min(),
            "memory_max_mb": c.memory_mb.max(), "accuracy_min": c.peak_accuracy.min(),
            "accuracy_mean": c.peak_accuracy.mean(), "accuracy_max": c.peak_accuracy.max()})
print("rho in FLOP/bit, memory in MB, peak accuracy in %:")
print(pd.DataFrame(source_rows).set_index(["source", "condition"]).round(1).to_string())

# %%
# which models four AiSFs serve, and what two upgrade events make of them
from ecmeta_lib.catalogue import sample_catalogue_condition, upgrade_catalogue_condition

cat_cfg = ConditionConfig(source="catalogue", upgrade_prob=1.0)
rng = np.random.default_rng(seed)
steps = [sample_catalogue_condition(rng, 4, 3, cat_cfg, "base")]
for label in ("upgrade 1", "upgrade 2"):
    steps.append(upgrade_catalogue_condition(rng, steps[-1], cat_cfg, label))
models = pd.concat([s.table(catalogue).assign(step=s.condition.name) for s in steps])
models["model"] = models.model + " " + models.weights.str.replace("IMAGENET1K_", "")
print(models.pivot_table(index=["user", "step"], columns="j", values="model", aggfunc="first",
                         sort=False).to_string())
