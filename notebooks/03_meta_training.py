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
# # 03 · Meta-training PEARL on the digital twins
#
# A controller that only ever saw one AI-model condition mismatches the next one. PEARL instead
# learns a *family* of policies $\pi_\theta(a \mid s, z)$ indexed by a latent context $z$, and an
# encoder $q_\phi(z \mid c)$ that infers $z$ from a handful of transitions $c = \{(s, a, r, s')\}$
# of the condition at hand. It is meta-trained on the six digital twins (DTs) of notebook 02:
# G1, G1', G1'' (one base condition upgraded twice), G2, G2' and G3.
#
# **Algorithm 1, in our words.** Each iteration (i) collects slots in *every* DT with $z$ drawn
# from the posterior of that DT's recent context, storing them in per-DT replay and context
# buffers; then (ii) runs $T_{train}$ update epochs, each on $K'$ DTs drawn at random: the twin
# critics and the encoder take a step on the soft Bellman error plus $\beta\,\mathrm{KL}(q_\phi(z
# \mid c)\,\|\,\mathcal N(0, I))$ (eqs. 21-24, 29); every $\lambda_1$ epochs the temperature
# $\xi$ takes a step (eq. 28); every $\lambda_2$ epochs the actor takes a step on eqs. 26-27 and
# the target networks are soft-updated. The actor's loss never reaches the encoder ($z$ is
# detached there): the encoder learns only what helps predict value.
#
# The actions are 80 users × three categorical heads (DS 3, TA 5, MS 3); the entropy is summed
# over users and heads (eq. 25). All of it lives in `ecmeta_lib.agents` and
# `ecmeta_lib.training`; this notebook calls the experiment runner and plots what it stored.
#
# This notebook trains the **whole grid** (PEARL and the five SAC baselines, every seed): it is the
# compute-heavy step of `make reproduce`, and notebooks 04 and 05 read the cached runs. A rerun
# recomputes nothing that finished, and a killed run resumes from its last checkpoint.

# %% tags=["parameters"]
profile = "quick"  # smoke (CI, seconds) | quick (default, ~30 min on 2 cores) | paper (Table I)
seed = 0  # first training seed; seeds are seed, seed+1, seed+2
figures_dir = "figures"  # relative to the repository root (or absolute)
n_seeds = 3
workers = 2
results_dir = None  # None: <repo>/results

# %%
import dataclasses

import pandas as pd
from IPython.display import display

from ecmeta_lib import plots, runner
from ecmeta_lib.training import METHODS, get_profile

results, figures = runner.notebook_paths(results_dir, figures_dir)
seeds = list(range(seed, seed + n_seeds))
prof = get_profile(profile)

# %% [markdown]
# ## The profile
# `paper` is Table I exactly (AdamW, lr 3e-5, batch 256, 5 × 700 hidden, λ1 = 10, λ2 = 40,
# T_train = 40, β = 0.1, K' = 2). `quick` and `smoke` shrink networks and iterations so the grid
# fits a laptop and CI; their architecture and target-entropy defaults are ours and explained in
# the README.

# %%
# NBVAL_CHECK_OUTPUT
fields = {k: v for k, v in dataclasses.asdict(prof).items() if k not in ("agent", "env")}
print(pd.Series(fields).to_string())
print(pd.Series(dataclasses.asdict(prof.agent)).to_string())

# %% [markdown]
# ## Train the grid
# Six methods × the seeds, in `workers` processes. Each run lives in
# `results/<profile>/<method>-s<seed>-<config hash>/`.

# %%
table = runner.run_grid(profile, METHODS, seeds, workers=workers, results_root=results)

# %%
# NBVAL_CHECK_OUTPUT
print(table[["method", "seed", "run_id", "done"]].to_string(index=False))

# %%
print(f"wall time per run: median {table.wall_s.median():.1f} s, total {table.wall_s.sum():.1f} s "
      f"(over {len(table)} runs; a cached run reports its original time)")

# %% [markdown]
# ## PEARL's learning curves on the unseen conditions
# Every `eval_every` iterations the meta-policy is adapted on each test condition (a fixed
# context of `eval_context` transitions collected there, z frozen at the posterior mean, no
# gradient step) and evaluated greedily. The horizontal lines are the per-slot optimum (oracle),
# the greedy heuristic that knows the condition, and random actions.

# %%
base = runner.baselines(profile, results_root=results)
curves = runner.load_curves(table)
fig = plots.fig3(curves[curves.method == "pearl"], base, figures, stem="03_pearl_curves")

# %% [markdown]
# ## Training diagnostics
# Critic loss, the temperature ξ, the KL of the posterior to the prior, and the policy entropy
# (summed over users and heads), mean and 95% CI over seeds, against environment steps.

# %%
logs = runner.load_train_logs(table[table.method == "pearl"])
fig = plots.training_diagnostics(logs, ["critic_loss", "temperature", "kl", "entropy"], figures,
                                 stem="03_training_diagnostics")

# %% [markdown]
# ## What the encoder learned: z per condition
# For the first PEARL seed we collect contexts on every condition (six DTs and the three unseen
# ones) and project the posterior means on their first two principal components. Conditions the
# encoder tells apart land apart; points with no context sit at the prior mean.

# %%
pearl_dir = table[(table.method == "pearl")].dir.iloc[0]
latents = runner.latent_posteriors(pearl_dir, profile, repeats=3)
fig = plots.latent_scatter(latents[latents.n_context == latents.n_context.max()], figures,
                           stem="03_latent_z")

# %%
display(latents.groupby(["kind", "n_context"]).posterior_var.mean().unstack(0).round(4))
