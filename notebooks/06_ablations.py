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
# # 06 · Ablations: what each design choice of ours is worth
#
# The `quick` profile departs from the paper in several places (notebook 03's "paper vs this
# package" table lists them): per-user rewards and latents, structured networks, what the
# encoder reads, how meta-training contexts are drawn, the discount, the entropy target, ...
# Each was chosen on a few runs. Here every one of them is **switched off, one at a time, from
# the default**, and the runs are compared with the default's, paired:
#
# * **on a held-out task seed** (`task_seed`, default 42): the reported results use task seed 0
#   and every selection (`python -m ecmeta_lib tune`) uses task seeds >= 100, so no choice was
#   ever made on these conditions;
# * **with several training seeds**, the default and the ablation sharing each seed index and
#   every evaluated slot, so a change is a paired difference with a Student-t interval over
#   seeds;
# * **for PEARL**, on the gap to the per-slot oracle of its adapted policy (T1-T3, mean) and on
#   its **adaptation gain** PEARL(0) - PEARL(n) (how much the n context transitions buy);
# * **for SAC_AiSF_1** (the learner alone, on one fixed condition), on its gap on T1, for the
#   switches of the learner (critic, actor, networks, temperature, schedule, exploration); the
#   switches of the encoder and of meta-training concern PEARL alone (the twin samples also
#   SAC_DT, the other method trained on the twins).
#
# A switch that depends on another (the joint actor needs per-user rewards and gamma = 0, a
# single critic needs the joint actor, the per-user options need structured networks, ...)
# takes its dependants with it; the table below says which. A choice that validation switched
# off in the profile (context-size sampling) is measured the other way round, switched back on
# (`context_size_sampling_on`). The registry lives in
# `ecmeta_lib/ablations.py`; `python -m ecmeta_lib ablate` runs the same study from the command
# line. This notebook trains what is missing (cached: a rerun recomputes nothing).

# %% tags=["parameters"]
profile = "quick"  # smoke (CI, seconds) | quick (default)
seed = 0  # first training seed; seeds are seed, seed+1, ...
figures_dir = "figures"  # relative to the repository root (or absolute)
n_seeds = 3
task_seed = 42  # held out: reports use 0, tuning uses 100 and up
methods = ["pearl", "sac_aisf_1"]
ablations = "all"  # or a list of names from the table below
workers = 2
results_dir = None  # None: <repo>/results
ci_subset = True  # on the smoke profile (CI): 2 seeds, PEARL only
train_missing = None  # None: train missing runs on smoke only (quick: ~120 runs, hours on 2 cores)

# %%
import pandas as pd
import torch
from IPython.display import Markdown, display

from ecmeta_lib import ablations as ablation_registry
from ecmeta_lib import analysis, plots, profile_table, runner
from ecmeta_lib.profiles import get_profile

results, figures = runner.notebook_paths(results_dir, figures_dir)
torch.set_num_threads(1)  # small networks: more threads only contend for the cores
if profile == "smoke" and ci_subset:  # CI checks that the study runs, in seconds
    n_seeds, methods = 2, ["pearl"]
seeds = list(range(seed, seed + n_seeds))
prof = get_profile(profile)

# %% [markdown]
# ## The switches
# Each row: the design choice switched off (with the profile's value), the fields that go with
# it, and whether it concerns every method or PEARL alone. An ablation whose switch is already
# off in this profile is *inactive* and not run.

# %%
registry = ablation_registry.registry_table(prof)
display(Markdown(profile_table.markdown(registry)))

# %%
# NBVAL_CHECK_OUTPUT
names = ablation_registry.select(ablations, prof)
specs = runner.ablation_specs(profile, names, methods, seeds, task_seed=task_seed)
print(f"profile {profile!r}, task seed {task_seed}, seeds {seeds}, methods {methods}: "
      f"{len(names)} active ablations, {len(specs)} runs (default included)")

# %% [markdown]
# ## Train (or load) the default and every ablation
# Runs live in `results/<profile>/` (the default: the grid's own cells on this task seed, so
# `python -m ecmeta_lib run --task-seed 42` shares them) and in
# `results/<profile>/ablations/<name>/`.

# %%
if train_missing is None:
    train_missing = profile == "smoke"
table = runner.ablation_table(profile, names, methods, seeds, task_seed=task_seed,
                              results_root=results)
if train_missing:
    table = runner.run_ablations(profile, names, methods, seeds, task_seed=task_seed,
                                 workers=workers, results_root=results)
# an (ablation, method) is shown once all its seeds and the default's (same method) are done,
# so a study run for PEARL alone still shows PEARL's column
shown, missing_pairs = analysis.complete_ablation_rows(table)
complete = [a for a in names if a in set(shown.ablation)]
missing = list(dict.fromkeys(a for a, _ in missing_pairs))
ready = bool(complete)
if missing_pairs:  # never train silently: say what is missing and how to make it
    display(Markdown(
        f"**{len(missing_pairs)} (ablation, method) pairs are not complete in `{results}`** "
        f"({', '.join(f'{a} ({m})' for a, m in missing_pairs)}; {(~table.done).sum()} runs), "
        "so they are not shown below"
        + (f"; shown: {', '.join(complete)}" if complete else "") + ". Produce them (hours "
        "at the quick size on 2 cores; cached and resumable) with\n\n"
        f"    python -m ecmeta_lib ablate --profile {profile} --ablations {' '.join(missing)} "
        f"--methods {' '.join(methods)} --seeds {' '.join(map(str, seeds))} "
        f"--task-seed {task_seed} --workers {workers} --results {results}\n\n"
        "or run this notebook with `train_missing = True`; then rerun it."))

# %%
# NBVAL_CHECK_OUTPUT
print(table[["ablation", "method", "seed", "run_id", "done"]].to_string(index=False))

# %% [markdown]
# ## Paired changes against the default
# `change` = ablated - default, in points, the mean over seeds of the per-seed differences (same
# seed index, same slots), with its 95 % Student-t interval over seeds and the two-sided p-value
# of a paired t test. For the **gap** a positive change means switching the choice off made the
# policy worse (the choice helps); for PEARL's **adaptation gain** a negative change means it
# did. "not resolved": the interval contains 0 — with this many seeds the choice's effect is
# not told apart from seed-to-seed noise. The full table (per test condition as well) is in
# `figures/ablations.csv`, the summary in `figures/ablations.md`.

# %%
recorded = figures / "ablations.csv"
if ready:
    finals = analysis.load_finals(shown)
    adapt = analysis.load_adaptation(shown) if "pearl" in methods else None
    effects = ablation_registry.effects(finals, adapt, prof.eval_context, order=complete)
    ablation_registry.save_effects(effects, figures)
    display(Markdown(ablation_registry.effects_markdown(effects)))
elif recorded.exists():  # no runs here: the study as its last run recorded it (never re-derived)
    effects = pd.read_csv(recorded)
    complete = list(dict.fromkeys(effects.ablation))
    ready = True
    display(Markdown(
        f"**No ablation run is in `{results}` on this machine**: shown is the study as its last "
        f"run recorded it in `{recorded.name}` (the run keys of the current code are those "
        "runs', so its numbers are this code's; `figures/PROVENANCE.md` and "
        "`docs/CHANGELOG.md` say when it ran). The command above reruns it.\n\n"
        + ablation_registry.effects_markdown(effects)))

# %% [markdown]
# ## The figure

# %%
if ready:
    fig = plots.ablations_figure(effects, figures, stem="06_ablations")

# %%
def _items(rows):
    return ", ".join(f"{r.ablation} ({r.method}, {r.metric} {r.change:+.1f} points)"
                     for r in rows.itertuples()) or "none"


if ready:
    summary = effects[effects.condition.eq("mean") | (effects.metric.eq("gap")
                                                      & effects.method.str.startswith("sac_aisf_"))]
    helps = summary[summary.reading == "the choice helps"]
    hurts = summary[summary.reading == "the choice hurts"]
    display(Markdown(
        "**How to read the figure.** One row per ablation, one marker per method: the change of "
        "the score when that one choice is switched off, with its 95 % interval over the "
        f"{len(seeds)} seeds (an interval needs at least 2). Left: the gap to the per-slot oracle "
        "(PEARL: mean over T1-T3 of the adapted policy; SAC_AiSF_1: on its own T1); right of the "
        "line, switching the choice off made the policy worse. Right panel: PEARL's adaptation "
        "gain; left of the line, switching it off made adaptation buy less. An interval that "
        "crosses the line is not resolved at this number of seeds.\n\n"
        f"Here (profile `{profile}`, task seed {task_seed}): the choice measurably helps for "
        f"{_items(helps)}; it measurably hurts for {_items(hurts)}; the rest is not resolved."))
