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
# # 05 · Reproducing Fig. 3, with seeds, confidence intervals and the gap to the optimum
#
# The paper's Fig. 3 shows the average service latency on three test AI-model conditions over
# training, for PEARL and four SAC variants, one run each. We redraw it with every method trained
# on several seeds, and add yardsticks the paper lacks: the per-slot **oracle** (exact MILP, the
# best any controller can do), the **greedy** heuristic that knows the condition, **random**
# actions, and — to tell what knowing the condition is worth — greedy policies that never learn
# the condition or identify it from a few transitions.
#
# | method | trained on | evaluated on T1-T3 |
# |---|---|---|
# | PEARL | six DTs, with the encoder | adapted on each Ti (few transitions, no gradient step) |
# | SAC_DT | the six DTs, no encoder | as is |
# | SAC_T_M | T1-T3 together | as is |
# | SAC_AiSF_i | Ti only | as is (on Tj, j ≠ i: a mismatched policy) |
#
# Every number below is scored on **one slot stream**: the learned methods' final policies, the
# heuristics, the yardsticks and the oracle all answer the same slots of each test condition.
# The SAC baselines keep their best checkpoint by validation on their **own** training
# conditions (early stopping that never looks at the test conditions).
#
# This notebook only reads results: notebook 03 (or `python -m ecmeta_lib run`) trains them.

# %% tags=["parameters"]
profile = "quick"
seed = 0
figures_dir = "figures"  # relative to the repository root (or absolute)
n_seeds = 3
workers = 2
results_dir = None

# %%
import numpy as np
import torch
from IPython.display import Markdown, display

from ecmeta_lib import analysis, claims, decisions, evaluate, make_task_set, plots, runner
from ecmeta_lib.evaluation import FINAL_SEED
from ecmeta_lib.profiles import METHODS, get_profile

results, figures = runner.notebook_paths(results_dir, figures_dir)
torch.set_num_threads(1)  # small networks: more threads only contend for the cores
seeds = list(range(seed, seed + n_seeds))
prof = get_profile(profile)

# %%
# never trains: a missing run is an error that names the command producing it
table = runner.finished_table(profile, METHODS, seeds, results_root=results)
base = analysis.baselines(profile, results_root=results)
curves = analysis.load_curves(table)
finals = analysis.load_finals(table)
adapt = analysis.load_adaptation(table)

# %% [markdown]
# ## Fig. 3

# %%
curve_base = analysis.curve_baselines(profile, results_root=results)
fig = plots.fig3(curves, curve_base, figures, stem="fig3_latency",
                 gradient_steps_per_iteration=prof.t_train)

# %% [markdown]
# **What the figure shows.** Latency on each unseen condition over training (ms; mean of the
# seeds with a 95 % band over seeds), one colour *and* one line style per method. **Every curve
# and line is scored on the same slots**: the learning curve's (`CURVE_SEED`, `eval_slots`
# slots per condition), on which the oracle and the yardsticks are solved too
# (`analysis.curve_baselines`). The first point, iteration 0, is the untrained policy; points
# follow at iterations 1, 2, 3, 5 and 7, then every `eval_every`. Top row: against iterations of
# Algorithm 1 — every method takes the same number of critic gradient steps per iteration (top
# axis), so the curves are aligned by learning effort. Middle row: the same as the gap to the
# oracle of those slots. Bottom row: latency against the slots each agent collected (log
# scale): DT-trained agents collect six conditions' slots per iteration, SAC_T_M three,
# SAC_AiSF_i one. Black: the per-slot optimum; dashed: greedy that knows the condition and
# identify-then-greedy; dotted: blind greedy; random, far above, is written in the corner. The
# results table below scores each method's *selected* weights (best validation iteration) on
# the 100 final slots, another slot stream: its numbers are the ones every claim uses.

# %%
first = curves[curves.iteration == curves.iteration.min()]
orc_c = curve_base[curve_base.method == "oracle"].set_index("condition").mean_latency_s
g0 = (first.assign(gap=100 * (first.mean_latency_s / first.condition.map(orc_c) - 1))
      .groupby("method").gap.mean())
gl = (curves[curves.iteration == curves.iteration.max()]
      .assign(gap=lambda d: 100 * (d.mean_latency_s / d.condition.map(orc_c) - 1))
      .groupby("method").gap.mean())
display(Markdown("Gap to the oracle on the curve's slots, T1-T3 mean, at iteration "
                 f"{int(curves.iteration.min())} and at the last iteration: "
                 + "; ".join(f"{plots.label(m)} {g0[m]:+.1f} % -> {gl[m]:+.1f} %"
                             for m in METHODS if m in g0.index) + "."))

# %% [markdown]
# ## Results table
# Final policy of every method on each test condition, on the common slots: latency with its
# 95 % interval and **what the interval is over** (learned methods: Student-t over the seeds of
# that condition; a deterministic policy: bootstrap over the slots), gap to the oracle, share of
# users whose accuracy requirement is not met (only requests no option can satisfy: the repair
# guarantees the rest), and share of users served by the cloud. Written to
# `figures/results_table.csv` and `.md`.

# %%
res = analysis.results_table(finals, base, figures)
display(Markdown(analysis.table_markdown(res)))

# %%
# NBVAL_CHECK_OUTPUT
# one slot stream: the oracle's latency is the same in every row of a condition
print(res.groupby("condition").oracle_latency_s.nunique().to_string())

# %%
fig = plots.final_latency(res, figures)

# %% [markdown]
# **What the figure shows.** The same table as points: filled markers are learned methods with
# their interval over seeds, hollow ones deterministic policies with their interval over slots;
# the vertical line is the oracle. Overlapping intervals of two learned methods on one condition
# mean the seeds cannot tell them apart.

# %% [markdown]
# ## The paper's claims, as paired tests
# Each qualitative claim of Sec. V becomes one or more paired tests on per-seed differences
# (`ecmeta_lib.claims`): the two sides share the evaluation slots and the seed index, every
# condition gets its own test (seeds are never pooled with conditions), and the verdict follows
# one rule:

# %%
display(Markdown(claims.VERDICT_RULE))
tests = claims.claim_tests(curves, finals, adapt, n_context=prof.eval_context)
claims.save_claims(tests, figures)
display(claims.summarize(tests).round(2))

# %% [markdown]
# How each claim is tested:
#
# * **policy mismatch** — on each Tk, SAC_AiSF_i (i ≠ k) against SAC_AiSF_k, final latency, % above;
# * **DT agents converge faster** — the steps PEARL and SAC_DT need to come within 10 % of their
#   own final latency, against SAC_AiSF_k on Tk, counted once in **environment steps** and once
#   in **gradient steps**. All methods take the same gradient steps per iteration, so the
#   paper's reason ("they collect more data and can update parameters more times") cannot apply
#   to the gradient-step count here: any difference there comes from the data, not from more
#   updates;
# * **SAC_DT slightly worse** than SAC_AiSF_k on Tk (final latency) and **less stable** —
#   stability is the spread (sd, in % of the mean) of the last three learning-curve points;
# * **PEARL adapts before retraining** — PEARL with the profile's context against PEARL at the
#   prior, the same agent on the same slots;
# * **PEARL most stable** — its tail spread against every other method's, per condition;
# * **PEARL outperforms traditional DRL** — against SAC_DT, SAC_T_M and the mismatched
#   SAC_AiSF_i on each Tk;
# * **single-condition SAC converges to a suboptimum** — SAC_AiSF_k on Tk against the per-slot
#   oracle on the same slots.
#
# Every test, with n, the mean difference, its 95 % interval and the one-sided p-value (also in
# `figures/claims.csv` and `figures/claims.md`):

# %%
display(tests[["claim", "comparison", "n", "mean", "ci_low", "ci_high", "p_value",
               "verdict"]].round(3))

# %% [markdown]
# ## Where the gap comes from: decisions and quality of service
# Every final policy (all seeds), the yardsticks and the oracle, replayed on the same slots with
# a recorder that keeps each user's final choices (after the accuracy repair and P2) and whether
# the repair had to override the policy's action.

# %%
dec = decisions.grid_decisions(table, profile, results_root=results)
fig = plots.decisions_figure(dec, curves, figures)

# %%
display(analysis.decision_summary(dec).round(3))

# %% [markdown]
# **What the figure shows.** Top: the share of users (T1-T3, all seeds and slots pooled) given
# each pre-processing method, place and model — a learned policy whose bars differ from the
# oracle's makes systematically different choices, not just noisy ones. Bottom left: the
# distribution of per-user latency (log scale); a heavy right tail is a few users served badly.
# Bottom middle: how often the accuracy repair had to change the action (raise the data quality,
# raise the model, or move a task off the device) — a policy that leans on the repair has not
# learned the accuracy constraint. Bottom right: the cloud share over training, when the runs
# record it.

# %% [markdown]
# ## Add your own policy
# Anything with `reset(env)`, `act(obs)` and `observe(...)` can be scored by the same harness, on
# the same slots as the table above (seed `FINAL_SEED`, `final_slots` slots). A ten-line example:
# send every task to its own edge server with raw data and the lightest model.

# %%
class OwnServerLightModel:
    name = "own server, light model"

    def reset(self, env):
        self.n_servers = env.unwrapped.system.n_servers

    def act(self, obs):
        users = obs.reshape(80, -1)[:, : self.n_servers].argmax(axis=1)  # one-hot AP
        return np.stack([np.full(80, 2), users + 1, np.zeros(80, int)], axis=1).ravel()

    def observe(self, obs, action, reward, next_obs, info):
        pass


task_set = make_task_set(0, prof.env.system, prof.env.conditions)
mine = evaluate(OwnServerLightModel(), "T1", n_slots=prof.final_slots, seed=FINAL_SEED,
                task_set=task_set, config=prof.env).summary
print(f"{mine['policy']}: {1e3 * mine['mean_latency_s']:.1f} ms on T1, "
      f"{mine['gap_to_oracle_pct']:+.1f} % above the oracle "
      f"(accuracy violations {100 * mine['accuracy_violation_rate']:.2f} %)")
