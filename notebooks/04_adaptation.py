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
# When a service provider upgrades its models, the controller copies the meta-policy, starts with
# $z$ drawn from the prior, and keeps acting. Each transition it sees joins the context; the frozen
# encoder re-infers $z$ and the policy $\pi_\theta(s, z)$ acts on it. **No gradient step is
# taken.** This notebook measures how fast that works on the three test conditions T1-T3, which
# no agent of the DT family saw during training.
#
# Protocol (`ecmeta_lib.training.adaptation_curve`): for each context size $n$, the meta-policy
# collects $n$ transitions on the test condition (exploring: $z$ sampled from the running
# posterior, actions sampled), then freezes $z$ at the posterior mean and is evaluated greedily by
# the harness on the same slot states for every $n$. SAC_DT, trained on the same six DTs without
# an encoder, cannot adapt: its latency is one line. The oracle solves every slot exactly with the
# condition known.

# %% tags=["parameters"]
profile = "quick"
seed = 0
figures_dir = "figures"  # relative to the repository root (or absolute)
n_seeds = 3
workers = 2
results_dir = None

# %%
from IPython.display import display

from ecmeta_lib import plots, runner

results, figures = runner.notebook_paths(results_dir, figures_dir)
seeds = list(range(seed, seed + n_seeds))

# %%
# Cached after notebook 03; trains only what is missing.
table = runner.run_grid(profile, ["pearl", "sac_dt"], seeds, workers=workers,
                        results_root=results)
base = runner.baselines(profile, results_root=results)
finals = runner.load_finals(table)
adapt = runner.load_adaptation(table)

# %% [markdown]
# ## Latency against context transitions
# Mean over seeds with a 95% confidence band; 0 transitions is the prior.

# %%
fig = plots.adaptation(adapt, base, finals, figures, stem="04_adaptation")

# %%
summary = (adapt.groupby(["condition", "n_context"]).mean_latency_s
           .agg(["mean", "std", "count"]).mul({"mean": 1e3, "std": 1e3, "count": 1}))
oracle = base[base.method == "oracle"].set_index("condition").mean_latency_s
summary["gap_to_oracle_pct"] = [100 * (m / 1e3 / oracle[c] - 1)
                                for (c, _), m in summary["mean"].items()]
display(summary.round(2).rename(columns={"mean": "latency_ms", "std": "sd_ms", "count": "seeds"}))

# %%
sac_dt = finals[finals.method == "sac_dt"].groupby("condition").mean_latency_s.mean()
for cond in sac_dt.index:
    p = adapt[(adapt.condition == cond)
              & (adapt.n_context == adapt.n_context.max())].mean_latency_s.mean()
    print(f"{cond}: PEARL after {adapt.n_context.max()} transitions {1e3 * p:.1f} ms, "
          f"SAC_DT {1e3 * sac_dt[cond]:.1f} ms, oracle {1e3 * oracle[cond]:.1f} ms "
          f"(PEARL gap {100 * (p / oracle[cond] - 1):+.1f} %)")

# %% [markdown]
# ## The posterior narrows as the context grows
# PEARL's product of per-transition Gaussians shrinks the posterior variance with every
# transition; a wide posterior early on means exploratory $z$ samples, a narrow one means the
# encoder has committed to what it inferred about the condition.

# %%
latents = runner.latent_posteriors(table[table.method == "pearl"].dir.iloc[0], profile,
                                   repeats=2)
fig = plots.posterior_narrowing(latents, figures, stem="04_posterior_narrowing")
