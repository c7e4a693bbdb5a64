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
# on several seeds (mean and 95% Student-t band over seeds), and add three horizontal yardsticks
# the paper lacks: the per-slot **oracle** (exact MILP, the best any controller can do), the
# **greedy** heuristic that knows the condition, and **random** actions.
#
# | method | trained on | evaluated on T1-T3 |
# |---|---|---|
# | PEARL (ours) | six DTs, with the encoder | adapted on each Ti, no gradient step |
# | SAC_DT | the six DTs, no encoder | as is |
# | SAC_T_M | T1-T3 together | as is |
# | SAC_AiSF_i | Ti only | as is (on Tj, j ≠ i: a mismatched policy) |
#
# x-axis: environment steps the agent collected (summed over its training conditions). SAC
# baselines keep their best checkpoint by validation on their **own** training conditions
# (early stopping without looking at the test conditions).

# %% tags=["parameters"]
profile = "quick"
seed = 0
figures_dir = "figures"  # relative to the repository root (or absolute)
n_seeds = 3
workers = 2
results_dir = None

# %%
from IPython.display import Markdown, display

from ecmeta_lib import claims, plots, runner
from ecmeta_lib.training import METHODS

results, figures = runner.notebook_paths(results_dir, figures_dir)
seeds = list(range(seed, seed + n_seeds))

# %%
# Cached after notebook 03; trains only what is missing.
table = runner.run_grid(profile, METHODS, seeds, workers=workers, results_root=results)
base = runner.baselines(profile, results_root=results)
curves = runner.load_curves(table)
finals = runner.load_finals(table)

# %% [markdown]
# ## Fig. 3

# %%
fig = plots.fig3(curves, base, figures, stem="fig3_latency")

# %% [markdown]
# ## Results table
# Final policy of every method (its early-stopping checkpoint) on each test condition, through the
# evaluation harness on common slot states: latency (mean and 95% CI over seeds), gap to the
# oracle, share of users whose accuracy requirement is not met (only requests that no option can
# satisfy; the repair rule guarantees the rest), and share of users served by the cloud. Written
# to `figures/results_table.csv` and `.md`.

# %%
res = plots.results_table(finals, base, figures)
display(Markdown(plots.table_markdown(res)))

# %% [markdown]
# ## The paper's claims, checked
# Each qualitative claim of Sec. V becomes a statistic over seeds with a 95% interval; the verdict
# rule (ours): *supported* when the effect has the claimed sign and its interval excludes zero,
# *partly* when the sign is right but the interval includes zero (or the claim holds only in
# part), *not supported* otherwise.

# %%
checked = claims.check_claims(curves, finals)
display(checked.round(2))

# %%
lines = [f"- **{r.claim}** — {r.verdict}: {r.statistic} = {r.mean:+.1f} "
         f"(95% CI {r.ci_low:+.1f} to {r.ci_high:+.1f})" for r in checked.itertuples()]
display(Markdown("\n".join(lines)))
