# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Adapting to unseen AI-model conditions without retraining
#
# When a service provider upgrades its models, the controller keeps the meta-policy, starts with
# $z$ at the prior, and keeps acting. Each transition it sees joins the context; the frozen
# encoder re-infers $z$ and the policy $\pi_\theta(s, z)$ acts on it. **No gradient step is
# taken.** This notebook measures how much that buys on the three test conditions T1-T3, which no
# agent of the DT family saw during training.
#
# Protocol (`ecmeta_lib.training.adaptation_curve`): for each context size $n$, the meta-policy
# collects $n$ transitions on the test condition in a separate copy of the environment
# (exploring: in PEARL $z$ is drawn from the running posterior and the actions are sampled; with
# the quick profile's `random_context` the context actions follow an exploration policy that
# shows every model: its `adaptation_probe` "round_robin_first" plays identify-then-greedy's
# round-robin for the first $|F|$ slots, so that each user runs each model once, then uniformly
# random actions, as in meta-training), then freezes $z$ at the posterior mean and is scored
# greedily by the harness — on the **same slots for every $n$**, so
# PEARL($n$) against PEARL(0) is a paired comparison. SAC_DT, trained on the same six DTs without
# an encoder, cannot adapt: its latency is one line.
#
# What $z$ is here depends on the profile: in the paper one global $z$ describes the condition
# and the encoder reads $(s, a, r, s')$; notebook 03's "paper vs this package" table lists what
# the profile run here changes (for `quick`, among others: one $z_u$ per user, inferred from that
# user's own transitions).
#
# This notebook only reads results: notebook 03 (or `python -m ecmeta_lib run`) trains them.

# %% tags=["parameters"]
profile = "quick"
seed = 0
figures_dir = "figures"  # relative to the repository root (or absolute)
n_seeds = 3
workers = 2
results_dir = None
task_seeds = [0, 42]  # the reported task seed and the held-out one (read where their runs exist)

# %%
import pandas as pd
import torch
from IPython.display import Markdown, display

from ecmeta_lib import analysis, claims, plots, runner
from ecmeta_lib.conditions import TEST_NAMES
from ecmeta_lib.profiles import get_profile

results, figures = runner.notebook_paths(results_dir, figures_dir)
torch.set_num_threads(1)  # small networks: more threads only contend for the cores
seeds = list(range(seed, seed + n_seeds))
prof = get_profile(profile)

# %%
# never trains: a missing run is an error that names the command producing it
table = runner.finished_table(profile, ["pearl", "sac_dt"], seeds, results_root=results)
base = analysis.baselines(profile, results_root=results)
finals = analysis.load_finals(table)
adapt = analysis.load_adaptation(table)
sticks = analysis.yardstick_adaptation(profile, results_root=results)

# %% [markdown]
# ## Latency against context transitions

# %%
fig = plots.adaptation(adapt, base, finals, figures, stem="04_adaptation", yardsticks=sticks)

# %%
summary = (adapt.groupby(["condition", "n_context"]).mean_latency_s
           .agg(["mean", "std", "count"]).mul({"mean": 1e3, "std": 1e3, "count": 1}))
oracle = base[base.method == "oracle"].set_index("condition").mean_latency_s
summary["gap_to_oracle_pct"] = [100 * (m / 1e3 / oracle[c] - 1)
                                for (c, _), m in summary["mean"].items()]
display(summary.round(2).rename(columns={"mean": "latency_ms", "std": "sd_ms", "count": "seeds"}))
display(sticks.pivot(index="n_context", columns="condition", values="gap_to_oracle_pct")
        .round(2).rename_axis(columns="identify-then-greedy: gap to oracle (%)"))

# %% [markdown]
# **What the figure shows.** PEARL's latency (ms; mean over seeds, 95 % band over seeds) as the
# context grows, $n = 0$ being the prior (drawn at 0.5 on the log axis). A curve that falls
# means the inferred $z$ helps; the orange line is SAC_DT, trained on the same twins but with no
# way to adapt; the black line is the per-slot optimum. The dash-dotted curve is the
# identify-then-greedy yardstick on the same $n$ grid and the same slots: a digital twin
# synchronised from the $n$ context slots' telemetry, acting greedily on it (its $n = 0$ is blind
# greedy, which knows only the mean of the six twins). PEARL sits between blind greedy (what
# ignoring the condition costs) and identify-then-greedy (what exact identification from the
# same context buys). The test below pairs each seed's
# PEARL($n$) with its own PEARL(0) on the same slots.

# %%
tests = claims.claim_tests(analysis.load_curves(table), finals, adapt, n_context=prof.eval_context)
adapt_tests = tests[tests.claim == claims.CLAIMS["adapts"]]
display(adapt_tests[["comparison", "n", "mean", "ci_low", "ci_high", "p_value"]].round(3)
        .rename(columns={"mean": "% below prior", "ci_low": "CI low", "ci_high": "CI high"}))

# %%
sac_dt = finals[finals.method == "sac_dt"].groupby("condition").mean_latency_s.mean()
lines = []
n_max = int(adapt.n_context.max())
for cond in sac_dt.index:
    p = adapt[(adapt.condition == cond) & (adapt.n_context == n_max)].mean_latency_s.mean()
    p0 = adapt[(adapt.condition == cond) & (adapt.n_context == 0)].mean_latency_s.mean()
    lines.append(f"- {cond}: PEARL {1e3 * p0:.1f} ms at the prior, {1e3 * p:.1f} ms after "
                 f"{n_max} transitions; SAC_DT {1e3 * sac_dt[cond]:.1f} ms; oracle "
                 f"{1e3 * oracle[cond]:.1f} ms (PEARL's gap {100 * (p / oracle[cond] - 1):+.1f} %)")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## Does $z$ tell the conditions apart?
# For the first PEARL seed we collect contexts on every condition (the six DTs and the three
# unseen ones), three independent context draws each, and look at the posterior means.

# %%
latents = analysis.latent_posteriors(table[table.method == "pearl"].dir.iloc[0], profile,
                                   repeats=3)
fig = plots.latent_scatter(latents, figures, stem="04_latent_z")

# %%
sep = analysis.latent_separation(latents)
display(sep.round(3))
big = sep.iloc[-1]
display(Markdown(
    "**What the figure shows.** Left: the posterior means after the largest context, projected "
    "on their first two principal components (with per-user latents, the users' $z_u$ are "
    "stacked before the projection); one point per context draw. Right: the mean distance "
    "between the means of *different* conditions against that between two draws of the *same* "
    f"condition. After {int(big.n_context)} transitions the ratio is {big.ratio:.2f}: "
    + ("the encoder places different conditions further apart than its own draw-to-draw noise."
       if big.ratio > 1.5 else
       "different conditions are barely further apart than two draws of one condition, so the "
       "inferred $z$ carries little condition-specific information.")))

# %% [markdown]
# ## What does $z_u$ know? A linear probe
# The agent never reads the condition. Here we ask how much of it its latents carry: on every
# condition each PEARL seed collects 20 context transitions (as in adaptation), each user's
# posterior mean $z_u$ is taken, and a linear map from $z_u$ to the log compute intensity of each
# of the user's three models is fitted on the six twins and scored ($R^2$) on the unseen T1-T3.
# The KL column is the held-out posteriors' information per user (nats).

# %%
if prof.agent.encoder.latent_per_user:
    probe = pd.concat([analysis.latent_probe(d, profile).assign(seed=s) for d, s in
                       zip(table[table.method == "pearl"].dir, table[table.method == "pearl"].seed,
                           strict=True)])
    summary = probe.groupby("model")[["r2_fit_dts", "r2_heldout_tests",
                                      "kl_per_user_heldout"]].agg(["mean", "min", "max"])
    display(summary.round(3))
    r2 = probe.groupby("model").r2_heldout_tests.mean()
    display(Markdown(
        "**What the table shows.** Held-out $R^2$ of the lightest model's compute intensity "
        f"{r2.iloc[0]:.2f}, of the middle one {r2.iloc[1]:.2f}, of the heaviest {r2.iloc[-1]:.2f} "
        "(means over seeds). "
        + ("The context actions here are the exploration policy's (`random_context`: a "
           "round-robin block, then uniformly random), so every model is seen: what the "
           "latents miss is not in want of data but of what the encoder learned to extract "
           "from it."
           if prof.agent.encoder.random_context else
           "The latents identify what the context shows: the meta-policy's own actions mostly "
           "run the lightest model, so its context says little about the heavier ones. "
           "Identify-then-greedy chooses its context actions to see every model.")))


# %% [markdown]
# ## Why PEARL($n$) is where it is
# `agent_policies.adaptation_diagnosis` takes the first PEARL seed apart, condition by condition:
# per context probe and $n$, the gap to the oracle (the adaptation protocol), the critic's
# per-user latency error on held-out random-action slots at the posterior mean $z$, the
# posterior's mean standard deviation, and its **calibration** - the mean of
# $(\mu_n - \mu_{200})^2 / \sigma_n^2$, about 1 for a posterior whose width matches how far its
# mean still is from where 200 transitions take it. The row $n = 200$ is what the encoder and
# critic reach with ample context: the part of the gap that no context closes. Two of the
# agent's own training twins (G1, G2) are taken apart the same way: if PEARL did as badly on the
# conditions it was trained on, the twin pool's coverage is not what limits it.

# %%
agent_dir = table[table.method == "pearl"].dir.iloc[0]
diag = analysis.adaptation_diagnosis_table(agent_dir, profile, TEST_NAMES + ("G1", "G2"),
                                           n_context=(0, 1, 2, 5, 10, 20, 50))
shown = (diag.assign(group=diag.condition.map(lambda c: "T1-T3" if c in TEST_NAMES
                                              else "twins G1, G2"))
         .groupby(["group", "probe", "n_context"])
         [["gap_to_oracle_pct", "critic_rmse_s", "posterior_sd", "calibration"]].mean())
display(shown.assign(critic_rmse_s=1e3 * shown.critic_rmse_s).round(2)
        .rename(columns={"gap_to_oracle_pct": "gap (%)", "critic_rmse_s": "critic error (ms)"}))

# %%
display(Markdown(analysis.adaptation_diagnosis_reading(diag, finals)))

# %% [markdown]
# ## Both task seeds
# PEARL($n$)'s gap to the oracle, mean over seeds, on the reported task seed and on the held-out
# one (task seed 42, which nobody tuned on), read from their runs where they exist.

# %%
rows = []
for ts in task_seeds:
    t = runner.run_table(profile, ["pearl"], seeds, results_root=results, task_seed=ts)
    if not t.done.all():
        display(Markdown(f"Task seed {ts}: not all PEARL runs are in `{results}`; produce them "
                         f"with `python -m ecmeta_lib run --profile {profile} --seeds "
                         f"{' '.join(map(str, seeds))} --task-seed {ts}`."))
        continue
    a = analysis.load_adaptation(t)
    b = analysis.baselines(profile, results_root=results, task_seed=ts)
    orc = b[b.method == "oracle"].set_index("condition").mean_latency_s
    a = a.assign(gap=100 * (a.mean_latency_s / a.condition.map(orc) - 1), task_seed=ts)
    rows.append(a)
if rows:
    both = pd.concat(rows)
    display(both.pivot_table(index=["task_seed", "condition"], columns="n_context",
                             values="gap").round(2)
            .rename_axis(columns="PEARL(n): gap to oracle (%), mean over seeds"))
