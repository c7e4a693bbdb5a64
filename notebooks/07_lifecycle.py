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
# # 07 · The running system: AI models upgraded again and again
#
# The paper's framework (Fig. 2, Sec. IV-C) is a *running* system: service providers upgrade
# their AI models irregularly while it operates; at each upgrade the physical policy starts from
# the meta-policy, collects transitions **on the physical system**, infers $z$ and adapts. Its
# argument is against retraining from scratch after each upgrade. Notebooks 04-05 score every
# condition from a fresh start; here the condition changes *inside* one long stream and **every
# slot counts**, context collection and exploration included.
#
# Protocol (`ecmeta_lib.lifecycle`, `ecmeta_lib.lifecycle_runner`):
#
# * **The stream** (`make_scenario`, one scenario seed): it starts from the unseen test condition
#   T1; upgrade events come at irregular times (a minimum gap plus a geometric excess); at each
#   event every AI service function is changed with some probability, and a changed one is now
#   and then *replaced* by a provider (a fresh draw) instead of upgraded. The user-state stream is
#   one continuous stream, identical for every controller (common random numbers), and the
#   per-slot oracle is solved once for it.
# * **Announced upgrades**: the slot on which an upgrade takes effect is flagged with the users it
#   touches (`ecmeta/EdgeCloudLifecycle-v0`, ``announce=True``).
# * **Controllers**: PEARL online (per-user contexts restarted for the upgraded users, filled by
#   informative probes on the live slots, then greedy on $z_u$; no gradient step); SAC_DT (never
#   adapts); SAC retrained from scratch at each upgrade and SAC fine-tuned from SAC_DT, both
#   learning on the live stream with the learner's own budget per slot; the identifying greedy
#   re-synchronised from live telemetry; the blind and the informed greedy; random.

# %% tags=["parameters"]
profile = "quick"
seed = 0
figures_dir = "figures"  # relative to the repository root (or absolute)
n_seeds = 3
workers = 2
results_dir = None
scenario_seed = 0

# %%
import pandas as pd
import torch
from IPython.display import Markdown, display

from ecmeta_lib import lifecycle_plots as lp
from ecmeta_lib import runner
from ecmeta_lib.conditions import make_task_set
from ecmeta_lib.lifecycle import get_scenario_config, make_scenario
from ecmeta_lib.lifecycle_runner import (
    CONTROLLERS,
    controller_seeds,
    load_trace,
    load_twin_errors,
    oracle_trace,
    run_lifecycle,
)
from ecmeta_lib.profiles import get_profile

results, figures = runner.notebook_paths(results_dir, figures_dir)
torch.set_num_threads(1)
seeds = list(range(seed, seed + n_seeds))
prof = get_profile(profile)
scen_cfg = get_scenario_config(profile)

# %% [markdown]
# ## The stream

# %%
task_set = make_task_set(0, prof.env.system, prof.env.conditions)
scenario = make_scenario(task_set, scenario_seed, scen_cfg, condition_config=prof.env.conditions)
events = pd.DataFrame([{"slot": e.slot, "upgraded users": int(e.upgraded.sum()),
                        "of which replaced": int(e.replaced.sum())} for e in scenario.events])
print(f"{scenario.n_slots} slots, {len(events)} upgrade events (mean gap "
      f"{scen_cfg.mean_interarrival_slots:.0f} slots, at least {scen_cfg.min_gap_slots}); "
      f"start condition {scen_cfg.start_condition}")
display(events)

# %% [markdown]
# ## Every controller over the stream
# Cached per (controller, seed) trace: a rerun reuses them; the learned controllers start from
# the grid's runs of notebook 03.

# %%
table = run_lifecycle(profile, [scenario_seed], seeds, results_root=results, workers=workers,
                      progress=False)
table = table[table.scenario_seed == scenario_seed]  # lifecycle.csv may hold other streams
oracle = oracle_trace(profile, scenario_seed, 0, results)
traces = {(c, s): load_trace(profile, scenario_seed, c, s, results_root=results)
          for c in CONTROLLERS for s in controller_seeds(c, seeds)}
bands = lp.gap_bands(traces)
fig = lp.stream_figure(oracle, events, bands, figures)

# %%
summary = lp.summary_table(table).drop(columns="scenario seed")
display(summary.round(2))

# %%
fig = lp.ratios_bar(summary, figures)

# %% [markdown]
# ## Unannounced upgrades: change detection
# Providers do not always announce an upgrade. The `*_detect` controllers run on the same stream
# with ``announce=False`` and find the upgrades themselves: a CUSUM per user
# (`ecmeta_lib.detection`) on the log of the user's latency over what the controller's own model
# predicts for the decision it executed - the identifying greedy's twin; for PEARL either its
# critic under $z_u$ (`pearl_online_detect`) or, like the identifying greedy, a twin that it
# keeps identified from its own live telemetry (`pearl_online_twin_detect`: PEARL's probes are
# the identifying greedy's, so its twin is as good). A flagged user's context restarts.
# Delay: slots from the upgrade to the flag (0 = after its first slot); false alarms are also
# counted on an upgrade-free stream of the same users.

# %%
det = lp.detection_table(table)
display(det.round(2))

# %%
if len(det):
    lines = []
    for r in det.to_dict("records"):
        un, an = r["stream gap % (unannounced)"], r["stream gap % (announced)"]
        lines.append(f"- `{r['controller']}`: median delay {r['median delay (slots)']:.1f} "
                     f"slots, missed {r['missed']}, {r['false alarms / 1,000 slots']:.2f} false "
                     f"alarms per 1,000 slots ({r['... on an upgrade-free stream']:.2f} without "
                     f"upgrades); stream gap {un:.2f} % against {an:.2f} % announced "
                     f"({un - an:+.2f} points).")
    display(Markdown("**What the table shows.**\n\n" + "\n".join(lines)))

# %% [markdown]
# ## A twin system that grows
# `pearl_continual` (`ecmeta_lib.twin_pool`): after each upgrade a twin of the new condition,
# identified from the live telemetry of PEARL's own probes, joins the pool of the six DTs and the
# twin samples, and the meta-policy re-meta-trains on it for 400 gradient steps (5 % of its
# meta-training) before acting on. Its twins' error against the true condition, and whether the
# gap over the first 50 slots after upgrade k falls with k, frozen (`pearl_online`) against
# continual, with the paired gain on the later half of the upgrades:

# %%
twins = load_twin_errors(profile, scenario_seed, seeds, results_root=results)
display(twins.groupby("upgrade")[["users", "log_rho_error_identified", "log_rho_error_all",
                                  "identified_share"]].mean().round(4))
gaps = lp.upgrade_gaps(traces)
cvf = lp.continual_vs_frozen(gaps)
if cvf["n_seeds"] == 0:
    display(Markdown("No segment of this stream lasts 50 slots after its upgrade: the frozen and "
                     "continual meta-policies are compared on the quick profile's stream."))
else:
    display(Markdown(
        f"Slope of the gap over the first 50 slots after upgrade k (points per upgrade, 95 % CI "
        f"over {int(cvf['n_seeds'])} seeds): frozen {cvf['pearl_online_slope']:+.2f} "
        f"[{cvf['pearl_online_slope_low']:+.2f}, {cvf['pearl_online_slope_high']:+.2f}], "
        f"continual {cvf['pearl_continual_slope']:+.2f} [{cvf['pearl_continual_slope_low']:+.2f}, "
        f"{cvf['pearl_continual_slope_high']:+.2f}]. From upgrade "
        f"{int(cvf['late_from_upgrade'])} on, the continual meta-policy's gap is "
        f"{cvf['late_gain_pts']:+.2f} points below the frozen one's [{cvf['late_gain_low']:+.2f}, "
        f"{cvf['late_gain_high']:+.2f}] (paired by seed, one-sided p = {cvf['late_gain_p']:.3g})."))

# %% [markdown]
# ## Adapting against retraining: the paper's argument as a paired test

# %%
test = lp.adapt_vs_retrain(table)
claim = lp.claim_line(test)
display(Markdown(claim))
lp.write_markdown(table, figures)  # figures/lifecycle.md: the tables above and the claim
claims_md = figures / "claims.md"  # notebook 05 writes the static claims; this one adds its own
if claims_md.exists():
    text = claims_md.read_text().split("\n## The running system")[0].rstrip()
    claims_md.write_text(f"{text}\n\n## The running system (notebook 07, scenario seed "
                         f"{scenario_seed})\n\n- {claim}\n")

# %% [markdown]
# ## What the figure shows (computed)

# %%
s = summary.set_index("controller")
first = ", ".join(f"{lp.LIFECYCLE_LABELS[c]} {s.loc[c, 'gap first 20 %']:+.1f} %"
                  for c in ("pearl_online", "identify_greedy", "sac_retrain") if c in s.index)
display(Markdown(
    f"Over the {scenario.n_slots}-slot stream with {len(events)} upgrades, the stream-average "
    f"gap to the oracle is {s.loc['pearl_online', 'stream gap %']:+.1f} % for PEARL online "
    f"(no gradient step), {s.loc['identify_greedy', 'stream gap %']:+.1f} % for the live "
    f"identifying greedy, {s.loc['sac_dt', 'stream gap %']:+.1f} % for SAC_DT, "
    f"{s.loc['blind_greedy', 'stream gap %']:+.1f} % for the blind greedy, "
    f"{s.loc['sac_retrain', 'stream gap %']:+.1f} % for SAC retrained after each upgrade "
    f"({s.loc['sac_retrain', 'grad steps']:.0f} gradient steps) and "
    f"{s.loc['sac_finetune', 'stream gap %']:+.1f} % fine-tuned; the informed greedy sits at "
    f"{s.loc['greedy', 'stream gap %']:+.1f} %. Over the first 20 slots after an upgrade: "
    f"{first}. Median recovery: PEARL online "
    f"{s.loc['pearl_online', 'median recovery (slots)']:.0f} slots. Compute per slot "
    f"(median): PEARL {s.loc['pearl_online', 'ms/slot p50']:.2f} ms, the oracle "
    f"{s.loc['oracle', 'ms/slot p50']:.2f} ms."))
