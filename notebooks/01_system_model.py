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
# # 01 · The system model, equation by equation
#
# An edge-cloud (EC) system serves 80 AI-driven devices (EDs, "users") through 4 edge servers
# (ESs), each behind its own access point (AP), and one cloud server (CS). Every user owns an AI
# service function (AiSF) holding 3 AI models (AiMs), lightest first, and can pre-process its data
# with 3 methods, most compressed first. Each slot the service-management controller chooses for
# every user a pre-processing method (DS), a place (TA: the device or one ES) and a model (MS).
#
# This notebook walks through the model of the paper's Sec. II (eqs. 1-9), the accuracy model,
# the accuracy repair and the per-server knapsack P2, each time calling the `ecmeta_lib` code that
# computes it. Choices the paper leaves open are marked **(ours)**; `README.md` lists them all.
#
# Run headlessly by `make reproduce` / `make test` (papermill injects the parameters below).

# %% tags=["parameters"]
profile = "quick"  # smoke | quick | paper: how many random slots feed the statistics
seed = 0  # task-set seed (system + conditions) and slot-state seed
figures_dir = "figures"  # relative to the repository root (or absolute)

# %%

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import ecmeta_lib
from ecmeta_lib import make_task_set, option_table
from ecmeta_lib.catalogue import load_catalogue
from ecmeta_lib.config import KB_BITS
from ecmeta_lib.paths import figures_path
from ecmeta_lib.physics import (
    BS_HEIGHT_M,
    BUILDING_HEIGHT_M,
    CARRIER_GHZ,
    UT_HEIGHT_M,
    accuracy_pct,
    breakpoint_distance_m,
    rma_los_path_loss_db,
    uplink_rate_bps,
)
from ecmeta_lib.policies import greedy_action
from ecmeta_lib.slot import repair
from ecmeta_lib.system import UserState

N_SLOTS = {"smoke": 20, "quick": 400, "paper": 2000}
if profile not in N_SLOTS:
    raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(N_SLOTS)}")
n_slots = N_SLOTS[profile]
FIG = figures_path(figures_dir)
plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3})
pd.set_option("display.width", 120)

# %% [markdown]
# ## 0. Table I against the config
#
# The paper's Table I (and the numbers of its Sec. V), next to the field of `ecmeta_lib.config`
# (or of the `paper` training profile) that holds each one and the value it has. A row marked
# **ours** is a choice or a reading of ours: a unit the paper leaves implicit, or a number it does
# not give. The values in the "config" column are read from the objects, not typed in.

# %%
from ecmeta_lib.config import ConditionConfig, SystemConfig  # noqa: E402
from ecmeta_lib.profiles import get_profile  # noqa: E402

sc, cc, pp = SystemConfig(), ConditionConfig(), get_profile("paper")
table_i = [
    ("B_{i,j} AP-to-AP rate", "[8, 20] x 10 Mbps", "ap_rate_mbps_range",
     sc.ap_rate_mbps_range, "Mbit/s", ""),
    ("δ_{i,j} AP-to-AP delay", "[10, 20] ms", "ap_delay_ms_range", sc.ap_delay_ms_range, "ms",
     ""),
    ("B_u bandwidth", "[2, 7] x 8 MHz", "bandwidth_mhz_range", sc.bandwidth_mhz_range, "MHz",
     "ours: a continuous U[16, 56], not multiples of 8"),
    ("N_u noise", "[-120, -80] dBm", "noise_dbm_range", sc.noise_dbm_range, "dBm", ""),
    ("V_u^T task size", "[1000, 1500] KB", "task_kb_range", sc.task_kb_range, "KB",
     "ours: 1 KB = 8192 bit"),
    ("V_u^R result size", "[10, 20] KB", "result_kb_range", sc.result_kb_range, "KB", ""),
    ("ρ_u compute intensity", "[300, 3000] FLOP", "flop_per_bit_range", cc.flop_per_bit_range,
     "FLOP/bit", "ours: per bit of input; 3 sorted draws per AiSF"),
    ("Υ_2d distance", "[30, 100] m", "distance_m_range", sc.distance_m_range, "m", ""),
    ("α_u kept fraction", "[50, 100] %", "ds_keep_range", sc.ds_keep_range, "fraction",
     "ours: methods 0-1 drawn, method 2 raw (α = 1)"),
    ("R_u model memory", "[256, 2048] MB", "memory_mb_range", cc.memory_mb_range, "MB",
     "ours: 3 sorted integer draws per AiSF"),
    ("P_h^f ES compute", "{60, 80, 100, 120} GFLOPs", "es_gflops", sc.es_gflops, "GFLOP/s", ""),
    ("R_h ES memory", "{24, 24, 32, 32} GB", "es_memory_gb", sc.es_memory_gb, "GB",
     "ours: 1 GB = 1024 MB"),
    ("P_h^n ES cores", "{10, 24, 16, 32}", "es_cores", sc.es_cores, "AiSFs", ""),
    ("CS compute", "400 GFLOPs", "cloud_gflops", sc.cloud_gflops, "GFLOP/s",
     "per AiSF, no capacity limit (our reading)"),
    ("τ_u requirement", "N(70, 5²)", "accuracy_req_mean/std",
     (sc.accuracy_req_mean, sc.accuracy_req_std), "%", ""),
    ("|U| devices", "80", "n_users", sc.n_users, "", ""),
    ("optimizer, learning rate", "AdamW, 3e-5", "paper profile: agent.lr", pp.agent.optim.lr, "",
     "ours: temperature lr = the same"),
    ("λ1, λ2", "10, 40", "paper profile: lambda1, lambda2", (pp.lambda1, pp.lambda2), "", ""),
    ("T_train", "40", "paper profile: t_train", pp.t_train, "", ""),
    ("batch size", "256", "paper profile: batch_size", pp.batch_size, "", ""),
    ("hidden size x layers", "700 x 5", "paper profile: agent.hidden, n_layers",
     (pp.agent.net.hidden, pp.agent.net.n_layers), "", ""),
    ("β (KL weight)", "0.1", "paper profile: agent.kl_weight", pp.agent.encoder.kl_weight, "", ""),
    ("|K'|", "2", "paper profile: k_prime", pp.k_prime, "", ""),
]
pd.DataFrame(table_i, columns=["parameter", "paper", "config field", "config", "unit",
                               "our choice / reading"])

# %% [markdown]
# The `catalogue` source (`ConditionConfig(source="catalogue")`, the `catalogue` profile) does not
# draw from Table I's ranges: its models are published ImageNet-1k classifiers
# (`ecmeta_lib/data/model_catalogue.csv`, notebook 02 §7). Where its ranges differ from Table I:

# %%
cat = load_catalogue()
pd.DataFrame([
    ("ρ_u compute intensity", "[300, 3000] FLOP", "GFLOPs·1e9 / (px² · 3 · 8 bit)",
     (round(cat.flop_per_bit.min()), round(cat.flop_per_bit.max())), "FLOP/bit"),
    ("R_u model memory", "[256, 2048] MB", "weight file, MB (no activations)",
     (int(cat.memory_mb.min()), int(cat.memory_mb.max())), "MB"),
    ("a_u peak accuracy", "(none; ours [70, 98] %)", "ImageNet-1k top-1",
     (round(cat.top1_pct.min(), 1), round(cat.top1_pct.max(), 1)), "%"),
], columns=["parameter", "paper", "catalogue mapping", "catalogue range", "unit"])

# %% [markdown]
# Not in Table I and therefore **ours** throughout: |F| = |M| = 3, the device compute, the
# AP-to-cloud backhaul, the accuracy model and its constants, the path-loss constants, the
# upgrade rule, the episode length. Each appears below where it is used; `docs/MODEL.md` lists
# every equation and number in one place.

# %% [markdown]
# ## 1. The static system
#
# Drawn once per seed and shared by every AiSF condition (every digital twin). Server figures come
# from the paper's Sec. V; the device compute U[20, 60] GFLOP/s and the AP-to-cloud backhaul
# (U[50, 100] Mbit/s, U[30, 50] ms) are **(ours)**, as are |F| = |M| = 3. Pre-processing methods
# 0 and 1 keep a fraction α ~ U[0.5, 1] of the data (two draws, sorted); method 2 sends the raw
# data, α = 1 **(ours)**.

# %%
# NBVAL_CHECK_OUTPUT
task_set = make_task_set(seed)
system = task_set.system
servers = pd.DataFrame({
    "compute_GFLOP/s": system.es_flops / 1e9,
    "cores": system.es_cores,
    "memory_GB": system.es_memory_mb / 1024,
    "backhaul_Mbit/s": np.round(system.cloud_rate / 1e6, 1),
    "backhaul_delay_ms": np.round(system.cloud_delay * 1e3, 1),
}, index=pd.Index([f"ES{h}" for h in range(system.n_servers)], name="server"))
print(servers.to_string())
print(f"\nusers {system.n_users}; cloud {system.cloud_flops / 1e9:.0f} GFLOP/s per AiSF; "
      f"device compute {system.local_flops.min() / 1e9:.1f}-{system.local_flops.max() / 1e9:.1f}"
      f" GFLOP/s; kept fraction alpha of method 0: mean {system.ds_ratio[:, 0].mean():.3f}")

# %% [markdown]
# ## 2. Eq. (1): the radio link
#
# The uplink rate is Shannon's $r_u = B_u \log_2(1 + p_u g_u / N_u)$ with powers in watts and
# $g_u = 10^{-PL/10}$. The paper names a 5G rural path-loss model; we take 3GPP TR 38.900 rural
# macro, line of sight, PL1, with $f_c$ = 3.5 GHz, $h_{BS}$ = 35 m, $h_{UT}$ = 1.5 m and an
# average building height of 5 m **(ours)**:
#
# $PL_1 = 20\log_{10}(40\pi d_{3D} f_c/3) + \min(0.03h^{1.72},10)\log_{10} d_{3D}
#        - \min(0.044h^{1.72},14.77) + 0.002\log_{10}(h)\, d_{3D}$,
# $d_{3D} = \sqrt{\Upsilon^2 + (h_{BS}-h_{UT})^2}$.
#
# Users stand 30-100 m from their AP, far below the breakpoint distance, so PL1 always applies.

# %%
# NBVAL_CHECK_OUTPUT
print(f"f_c = {CARRIER_GHZ} GHz, h_BS = {BS_HEIGHT_M} m, h_UT = {UT_HEIGHT_M} m, "
      f"h = {BUILDING_HEIGHT_M} m; breakpoint distance {breakpoint_distance_m():.0f} m")
for d in (30.0, 65.0, 100.0):
    pl = float(rma_los_path_loss_db(d))
    r = float(uplink_rate_bps(np.array([36e6]), np.array([d]), np.array([-100.0]), 20.0)[0])
    print(f"distance {d:5.1f} m: path loss {pl:6.2f} dB, rate at 36 MHz / -100 dBm "
          f"{r / 1e6:7.1f} Mbit/s")

# %%
dist = np.linspace(30, 100, 141)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.plot(dist, rma_los_path_loss_db(dist), color="C0")
ax1.set(xlabel="2-D distance to the AP (m)", ylabel="path loss PL1 (dB)",
        title="RMa LOS path loss (TR 38.900)")
for noise, style in ((-120, "-"), (-100, "--"), (-80, ":")):
    for bw, color in ((16e6, "C1"), (56e6, "C2")):
        rate = uplink_rate_bps(np.full_like(dist, bw), dist, np.full_like(dist, noise), 20.0)
        ax2.plot(dist, rate / 1e6, style, color=color,
                 label=f"{bw / 1e6:.0f} MHz, {noise} dBm")
ax2.set(xlabel="2-D distance to the AP (m)", ylabel="uplink rate (Mbit/s)",
        title="Eq. (1) rate, p = 20 dBm", yscale="log")
ax2.legend(fontsize=7, ncol=2)
fig.tight_layout()
fig.savefig(FIG / "01_path_loss.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# ## 3. Eqs. (1)-(5): where the latency goes
#
# With $D_u = V^T_u\alpha_{u,m} + V^R_u$ bits to move (the pre-processed task up, the result
# back):
#
# * **on an ES h** (user attached to AP $h_0$): upload $d^c = D_u/r_u$ (eq. 1), forwarding
#   $d^f = D_u/\mathbb{B}_{h_0,h} + \delta_{h_0,h}$, zero on the own AP (eq. 2), inference
#   $d^p = V^T_u\alpha_{u,m}\rho_u^j/\mathbb{P}^f_h$ (eqs. 3-4); the latency is their sum (eq. 5);
# * **on the CS**: upload, then the backhaul $D_u/B_{h_0,c} + \delta_{h_0,c}$, then the most
#   complex model at $P_c$ = 400 GFLOP/s;
# * **on the device**: the lightest model only, $V^T_u\alpha_{u,m}\rho_u^0/P^f_u$ (eq. 5).
#
# `ecmeta_lib.option_table` computes every option of every user at once. Below, a *typical* user:
# the median of every state distribution (36 MHz, 65 m, -100 dBm, 1250 KB task, 15 KB result),
# attached to AP 0, with user 0's models under condition G1, mid pre-processing (m = 1) and the
# middle model (j = 1) on the ESs.

# %%
U = system.n_users
typical = UserState(ap=np.zeros(U, dtype=np.int64), bandwidth_hz=np.full(U, 36e6),
                    distance_m=np.full(U, 65.0), noise_dbm=np.full(U, -100.0),
                    task_bits=np.full(U, 1250.0 * KB_BITS), result_bits=np.full(U, 15.0 * KB_BITS),
                    accuracy_req=np.full(U, 70.0))
g1 = task_set["G1"]
tab = option_table(system, g1, typical)
u, m, j = 0, 1, 1
last = g1.n_models - 1
# The CS's inference time is the same work as on ES h at the cloud's speed.
cloud_proc = tab.edge_proc_s[u, m, last, 0] * system.es_flops[0] / system.cloud_flops
rows = {"local (device, j=0)": (0.0, 0.0, tab.local_s[u, m])}
for h in range(system.n_servers):
    where = "own ES" if h == typical.ap[u] else "remote ES"
    rows[f"{where} {h}"] = (tab.comm_s[u, m], tab.forward_s[u, m, h], tab.edge_proc_s[u, m, j, h])
rows["cloud (j=|F|-1)"] = (tab.comm_s[u, m], tab.cloud_s[u, m] - tab.comm_s[u, m] - cloud_proc,
                           cloud_proc)
parts = pd.DataFrame(rows, index=["upload d^c", "forward/backhaul", "inference d^p"]).T * 1e3
parts["total"] = parts.sum(axis=1)
# consistency with the library's own totals
assert np.isclose(parts.loc["own ES 0", "total"], tab.edge_s[u, m, j, 0] * 1e3)
assert np.isclose(parts.loc["cloud (j=|F|-1)", "total"], tab.cloud_s[u, m] * 1e3)

# %%
# NBVAL_CHECK_OUTPUT
print(f"typical user: rate {tab.rate_bps[u] / 1e6:.1f} Mbit/s, alpha_m = "
      f"{system.ds_ratio[u, m]:.3f}, rho = {np.round(g1.flop_per_bit[u], 1)} FLOP/bit")
print("latency components (ms):")
print(parts.round(2).to_string())

# %%
fig, ax = plt.subplots(figsize=(8, 3.8))
bottom = np.zeros(len(parts))
for col, color in zip(["upload d^c", "forward/backhaul", "inference d^p"], ["C0", "C1", "C2"],
                      strict=True):
    ax.bar(parts.index, parts[col], bottom=bottom, color=color, label=col)
    bottom += parts[col].to_numpy()
ax.set(ylabel="latency (ms)", title="Latency components of a typical user per placement "
       "(m = 1; ES model j = 1)")
ax.tick_params(axis="x", rotation=20)
ax.legend()
fig.tight_layout()
fig.savefig(FIG / "01_latency_components.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# ## 4. Eq. (6): accuracy
#
# The paper only asks the mapping from data quality to accuracy to be increasing, and more
# complex models to be more accurate. We take $A_u^j(q) = a_u^j\,q^{\gamma_u}$ with data quality
# $q = \alpha_{u,m}$, peak accuracy $a_u^j$ ~ U[70, 98] % (three draws, sorted) and
# sensitivity $\gamma_u$ ~ U[0.1, 0.4] **(ours)**: concave, increasing, and equal to the peak on
# raw data. The device always runs model 0, the CS model |F|-1; an ES runs the chosen one.
# Constraint C1 (eq. 7) asks $A_u \ge \tau_u$, with $\tau_u$ ~ N(70, 5²).

# %%
q = np.linspace(0.5, 1.0, 101)
users = [0, 1, 2]
fig, axes = plt.subplots(1, len(users), figsize=(11, 3.4), sharey=True)
for ax, uu in zip(axes, users, strict=True):
    for jj in range(g1.n_models):
        ax.plot(q, accuracy_pct(g1.peak_accuracy[uu, jj], q, g1.quality_exponent[uu]),
                label=f"model {jj} (rho {g1.flop_per_bit[uu, jj]:.0f} FLOP/bit)")
        ax.plot(system.ds_ratio[uu], tab.accuracy[uu, :, jj], "o", color=f"C{jj}", ms=4)
    ax.axhline(70, color="grey", ls="--", lw=1)
    ax.set(xlabel="data quality q = kept fraction alpha", title=f"user {uu}, "
           f"gamma = {g1.quality_exponent[uu]:.2f}")
    ax.legend(fontsize=7, loc="lower right")
axes[0].set_ylabel("accuracy (%)")
fig.suptitle("Accuracy against data quality per AI model (dots: the user's three methods; "
             "dashed: mean requirement)", fontsize=9)
fig.tight_layout()
fig.savefig(FIG / "01_accuracy.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# ## 5. Accuracy repair (Sec. IV-B)
#
# An action may miss C1. Before capacity is considered, the slot model repairs it: first the
# highest-quality data; if that is not enough, the most complex model on the chosen ES. A task on
# the device that still fails moves to the ES of its own AP with the most complex model
# **(ours)**: the device can only run the lightest model. A request that no option can satisfy
# stays as repaired and counts as an accuracy violation. Repair never lowers accuracy (a property
# test in `tests/test_slot.py` checks this on random systems).

# %%
# NBVAL_CHECK_OUTPUT
env = gym.make(ecmeta_lib.ENV_ID, condition="G1", task_set=task_set)
env.action_space.seed(seed)
obs, _ = env.reset(seed=seed)
base = env.unwrapped
action = base.as_user_actions(env.action_space.sample())
t0 = base.option_table
ds, ta, ms = repair(t0, action[:, 0], action[:, 1], action[:, 2])
idx = np.arange(U)
before = t0.accuracy[idx, action[:, 0], np.where(action[:, 1] == 0, 0, action[:, 2])]
after = t0.accuracy[idx, ds, np.where(ta == 0, 0, ms)]
changed = np.flatnonzero((ds != action[:, 0]) | (ta != action[:, 1])
                         | ((ms != action[:, 2]) & (ta != 0)))
demo = pd.DataFrame({"tau_%": t0.accuracy_req, "action [DS,TA,MS]": list(map(list, action)),
                     "acc_before_%": before, "repaired": [list(x) for x in zip(ds, ta, ms,
                                                                                strict=True)],
                     "acc_after_%": after}).iloc[changed[:8]].round(2)
print(f"random action: {changed.size} of {U} users repaired; accuracy violations "
      f"{np.sum(before < t0.accuracy_req)} -> {np.sum(after < t0.accuracy_req)}")
print(demo.to_string())

# %% [markdown]
# ## 6. Eqs. (8)-(9) and P2: capacity, and who goes to the cloud
#
# Each ES hosts at most $\mathbb{P}^n_h$ AiSFs (C2, one core each) and their models must fit its
# memory $\mathbb{R}_h$ (C3). After repair, every ES solves P2: keep the subset S of its users
# that minimises $\sum_{S} d^E + \sum_{\bar S} d^C$ under both limits; the others go to the
# cloud. That is a two-constraint 0/1 knapsack on the savings $d^C - d^E$, solved exactly by
# `ecmeta_lib.solve_p2` (branch and bound with a dynamic-programming fallback; checked against
# brute force, Gurobi and HiGHS in the tests). A user whose cloud latency is not worse than the
# ES's goes to the cloud *voluntarily*, even when the ES has room; a user with a positive saving
# that does not fit is *forced* out by a capacity bound.
#
# Below, `n_slots` slots of two kinds of actions: uniformly random ones, and the capacity-blind
# greedy heuristic (`ecmeta_lib.policies.greedy_action`: each user's fastest accuracy-feasible
# option as if the ESs had no limits). For every ES: how many users it pushed to the cloud per
# slot, forced or voluntarily, and which bound was binding when it had to.

# %%
H = system.n_servers


def overflow_stats(kind: str, n: int, state_seed: int) -> pd.DataFrame:
    """Per ES and slot: users allocated (after repair), kept, forced out, sent voluntarily."""
    rng_env = gym.make(ecmeta_lib.ENV_ID, condition="G1", task_set=task_set)
    rng_env.action_space.seed(state_seed)
    rng_env.reset(seed=state_seed)
    b = rng_env.unwrapped
    rows = []
    for _ in range(n):
        table = b.option_table
        action = (rng_env.action_space.sample() if kind == "random"
                  else greedy_action(table).ravel())
        a = b.as_user_actions(action)
        ds, ta, ms = repair(table, a[:, 0], a[:, 1], a[:, 2])
        _, _, _, truncated, info = rng_env.step(action)
        place = info["placement"]
        for h in range(H):
            on_h = ta == h + 1
            saving = table.cloud_s[idx, ds] - table.edge_s[idx, ds, ms, h]
            pushed = on_h & (place == H + 1)
            forced = pushed & (saving > 0)
            kept = place == h + 1
            room = system.es_memory_mb[h] - table.memory_mb[kept, ms[kept]].sum()
            # memory binds when not even the smallest forced-out model fits in what is left
            memory_full = forced.any() and table.memory_mb[forced, ms[forced]].min() > room
            rows.append({"actions": kind, "server": f"ES{h}", "allocated": int(on_h.sum()),
                         "kept": int(kept.sum()), "forced": int(forced.sum()),
                         "voluntary": int((pushed & ~forced).sum()),
                         "cores_bound": bool(forced.any() and kept.sum() == system.es_cores[h]),
                         "memory_bound": bool(memory_full)})
        assert info["to_cloud"] == sum(r["forced"] + r["voluntary"] for r in rows[-H:])
        if truncated:
            rng_env.reset()
    return pd.DataFrame(rows)


stats = pd.concat([overflow_stats("random", n_slots, seed + 1),
                   overflow_stats("greedy", n_slots, seed + 1)])
per_server = stats.groupby(["actions", "server"], sort=False).agg(
    allocated=("allocated", "mean"), kept=("kept", "mean"), forced=("forced", "mean"),
    voluntary=("voluntary", "mean"),
    overflow_slots=("forced", lambda x: float(np.mean(x > 0))),
    cores_bound=("cores_bound", "mean"), memory_bound=("memory_bound", "mean"))

# %%
# NBVAL_CHECK_OUTPUT
print(f"{n_slots} slots per kind of action; per ES and slot (means; overflow_slots, cores_bound "
      "and memory_bound are shares of slots):")
print(per_server.round(3).to_string())

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
x = np.arange(H)
labels = [f"ES{h}\n{c} cores\n{m:.0f} GB" for h, c, m in
          zip(range(H), system.es_cores, system.es_memory_mb / 1024, strict=True)]
for ax, kind in zip(axes[:2], ["random", "greedy"], strict=True):
    ps = per_server.loc[kind]
    ax.bar(x, ps["kept"], label="kept on the ES", color="C2")
    ax.bar(x, ps["forced"], bottom=ps["kept"], label="forced to the cloud (capacity)", color="C3")
    ax.bar(x, ps["voluntary"], bottom=ps["kept"] + ps["forced"],
           label="to the cloud voluntarily (faster)", color="C7")
    ax.set(xticks=x, xticklabels=labels, ylabel="users per slot",
           title=f"{kind} actions: users sent to each ES",
           ylim=(0, 1.3 * float((ps["kept"] + ps["forced"] + ps["voluntary"]).max())))
    ax.legend(fontsize=7)
w = 0.2
for i, (kind, col) in enumerate([(k, c) for k in ("random", "greedy")
                                 for c in ("cores_bound", "memory_bound")]):
    axes[2].bar(x + (i - 1.5) * w, per_server.loc[kind][col], w,
                label=f"{kind}: {col.replace('_bound', ' full')}")
axes[2].set(xticks=x, xticklabels=[f"ES{h}" for h in range(H)], ylim=(0, 1.05),
            ylabel="share of slots", title="Which bound forced users out (C2 cores, C3 memory)")
axes[2].legend(fontsize=7)
fig.tight_layout()
fig.savefig(FIG / "01_overflow.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# Under random actions the ESs rarely have to refuse anyone: users spread evenly over five
# places, and many of those an ES receives are faster on the cloud anyway (400 GFLOP/s per AiSF
# against 60-120 GFLOP/s per ES), so they leave voluntarily. The capacity-blind greedy choice
# crowds the ESs that are fast for many users, and there a capacity bound forces users out.

# %%
# NBVAL_CHECK_OUTPUT
for kind in ("random", "greedy"):
    ps = per_server.loc[kind]
    pushed = ps["forced"].sum() + ps["voluntary"].sum()
    print(f"{kind:>6}: {pushed:.2f} users per slot go to the cloud, "
          f"{ps['forced'].sum() / max(pushed, 1e-12):.0%} of them forced by capacity; "
          f"cores bound in {ps['cores_bound'].mean():.0%} and memory in "
          f"{ps['memory_bound'].mean():.0%} of server-slots")

# %% [markdown]
# With the paper's server sizes it is the cores that bind. Memory cannot bind at all on a server
# whose cores, each filled with the largest possible model (2048 MB), still fit in its memory;
# elsewhere it needs many heavy models at once. The tests and `benchmarks/bench_env.py` build P2
# instances where both bounds bind on purpose, so the solver is exercised there too.

# %%
# NBVAL_CHECK_OUTPUT
largest_mb = ecmeta_lib.ConditionConfig().memory_mb_range[1]
for h in range(H):
    worst = system.es_cores[h] * largest_mb
    verdict = ("can never bind" if worst <= system.es_memory_mb[h]
               else f"binds only with > {system.es_memory_mb[h] / system.es_cores[h]:.0f} MB "
                    "per hosted model on average")
    print(f"ES{h}: {system.es_cores[h]} cores x {largest_mb:.0f} MB = {worst / 1024:.0f} GB vs "
          f"{system.es_memory_mb[h] / 1024:.0f} GB memory -> memory {verdict}")

# %% [markdown]
# ## 7. P1 and the reward
#
# P1 minimises the long-run mean service latency subject to C1-C6: one method (C4), one model
# (C5) and one place (C6) per user, which the action encoding guarantees. The environment's reward
# for a slot is minus the mean latency over users in seconds; slots are i.i.d., so the next state
# does not depend on the action, and an episode lasts 20 slots **(ours)**. With random actions:

# %%
# NBVAL_CHECK_OUTPUT
env.action_space.seed(seed + 2)
env.reset(seed=seed + 2)
rewards = []
for _ in range(min(n_slots, 200)):
    _, reward, _, truncated, info = env.step(env.action_space.sample())
    rewards.append(reward)
    if truncated:
        env.reset()
rewards = np.asarray(rewards)
print(f"random actions over {rewards.size} slots: mean latency {-rewards.mean() * 1e3:.1f} ms "
      f"(per-slot range {-rewards.max() * 1e3:.1f}-{-rewards.min() * 1e3:.1f} ms)")
