"""Heuristic policies: valid, deterministic actions that do what their names say."""

from __future__ import annotations

import numpy as np
import pytest

from ecmeta_lib import (
    BlindGreedyPolicy,
    Condition,
    EdgeCloudEnv,
    EnvConfig,
    IdentifyGreedyPolicy,
    SystemConfig,
    make_task_set,
)
from ecmeta_lib.evaluation import Policy, clear_oracle_cache, evaluate
from ecmeta_lib.oracle import oracle
from ecmeta_lib.physics import uplink_rate_bps
from ecmeta_lib.policies import (
    CONTEXT_SEED,
    GreedyPolicy,
    LocalPolicy,
    NearestPolicy,
    RandomPolicy,
    TwinIdentifier,
    context_action,
    dt_mean_condition,
    greedy_action,
    make_heuristic,
)
from ecmeta_lib.slot import outcome_of

SMALL = EnvConfig(system=SystemConfig(n_users=12, n_servers=3, es_gflops=(60.0, 80.0, 120.0),
                                      es_memory_gb=(2.0, 3.0, 4.0), es_cores=(2, 3, 4)))


@pytest.fixture(scope="module")
def env() -> EdgeCloudEnv:
    cfg = SMALL
    return EdgeCloudEnv("T1", task_set=make_task_set(0, cfg.system, cfg.conditions), config=cfg)


ALL = [RandomPolicy(3), LocalPolicy(), NearestPolicy(), GreedyPolicy(), BlindGreedyPolicy(),
       IdentifyGreedyPolicy(4)]


@pytest.mark.parametrize("policy", ALL, ids=lambda p: p.name)
def test_actions_are_valid_and_deterministic(env, policy):
    obs, _ = env.reset(seed=1)
    policy.reset(env)
    first = [policy.act(obs)]
    for _ in range(3):
        a = first[-1]
        assert a.dtype == np.int64 and env.action_space.contains(a)
        obs, reward, _, _, info = env.step(a)
        policy.observe(obs, a, reward, obs, info)
        first.append(policy.act(obs))
    obs, _ = env.reset(seed=1)
    policy.reset(env)
    again = [policy.act(obs)]
    for a in first[:-1]:
        obs, *_ = env.step(a)
        again.append(policy.act(obs))
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)


def test_act_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        LocalPolicy().act(np.zeros(3))


def test_reset_needs_an_edge_cloud_env():
    with pytest.raises(TypeError, match="EdgeCloudEnv"):
        LocalPolicy().reset(object())


def test_nearest_uses_own_server_raw_data_heaviest_model(env):
    obs, _ = env.reset(seed=2)
    pol = NearestPolicy()
    pol.reset(env)
    act = pol.act(obs).reshape(-1, 3)
    cfg = SMALL.system
    np.testing.assert_array_equal(act[:, 1], env.user_state.ap + 1)
    assert np.all(act[:, 0] == cfg.n_methods - 1) and np.all(act[:, 2] == cfg.n_models - 1)
    ap = env.user_state.ap
    _, _, _, _, info = env.step(act.ravel())
    place = info["placement"]
    on_edge = (place >= 1) & (place <= cfg.n_servers)
    np.testing.assert_array_equal(place[on_edge], ap[on_edge] + 1)  # own server or the cloud
    assert np.all(place[~on_edge] == cfg.n_servers + 1)


def test_local_keeps_tasks_on_device_unless_repair_moves_them(env):
    obs, _ = env.reset(seed=4)
    table = env.option_table
    pol = LocalPolicy()
    pol.reset(env)
    _, _, _, _, info = env.step(pol.act(obs))
    # only a task whose raw data still misses tau on the device leaves it
    raw_local_ok = table.local_accuracy[:, -1] >= table.accuracy_req
    assert np.all(info["placement"][raw_local_ok] == 0)
    assert np.all(info["placement"][~raw_local_ok] != 0)


def test_greedy_realises_each_users_best_option_including_cloud():
    roomy = SystemConfig(n_users=30, es_cores=(99, 99, 99, 99),
                         es_memory_gb=(999.0, 999.0, 999.0, 999.0))
    cfg = EnvConfig(system=roomy)
    ts = make_task_set(1, cfg.system, cfg.conditions)
    env = EdgeCloudEnv("T2", task_set=ts, config=cfg)
    n_cloud = 0
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        pol = GreedyPolicy()
        pol.reset(env)
        best = oracle(env.system, env.condition, env.user_state, table=env.option_table)
        _, _, _, _, info = env.step(pol.act(obs))
        # no capacity binds, so per user the greedy choice is the optimum's
        np.testing.assert_allclose(info["latency"], best.latency, rtol=1e-12)
        n_cloud += int(np.sum(info["placement"] == roomy.n_servers + 1))
    assert n_cloud > 0  # the cloud trick was exercised


def test_greedy_action_shape_and_range():
    ts = make_task_set(0)
    rng = np.random.default_rng(0)
    from ecmeta_lib.slot import option_table
    from ecmeta_lib.system import sample_user_state

    state = sample_user_state(rng, SystemConfig())
    act = greedy_action(option_table(ts.system, ts["T3"], state))
    assert act.shape == (80, 3) and act.dtype == np.int64
    assert act[:, 0].max() < 3 and act[:, 1].max() <= 4 and act[:, 2].max() < 3


def test_make_heuristic():
    assert isinstance(make_heuristic("random", seed=2), RandomPolicy)
    assert make_heuristic("greedy").name == "greedy"
    with pytest.raises(ValueError, match="unknown heuristic 'best'"):
        make_heuristic("best")


# --------------------------------------------------------------------------------------------
# yardsticks for adaptation: BlindGreedyPolicy and IdentifyGreedyPolicy
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def full_set():
    return make_task_set(0)


def test_yardsticks_obey_the_policy_protocol():
    for pol in (BlindGreedyPolicy(), IdentifyGreedyPolicy(2)):
        assert isinstance(pol, Policy)
    assert BlindGreedyPolicy().name == "blind_greedy"
    assert IdentifyGreedyPolicy(7).name == "identify_greedy[7]"
    assert IdentifyGreedyPolicy(7, name="twin").name == "twin"
    assert make_heuristic("blind_greedy").name == "blind_greedy"
    assert make_heuristic("identify_greedy", n_context=3).n_context == 3
    assert CONTEXT_SEED == 4000 and IdentifyGreedyPolicy(1).context_seed == CONTEXT_SEED


def test_context_seed_is_pearls():
    training = pytest.importorskip("ecmeta_lib.agent_policies")
    assert training.CONTEXT_SEED == CONTEXT_SEED


@pytest.mark.parametrize("bad", [-1, -50, 1.5, True, "3", None])
def test_identify_rejects_a_bad_context_size(bad):
    with pytest.raises(ValueError, match="n_context must be an integer >= 0"):
        IdentifyGreedyPolicy(bad)


def test_identify_rejects_a_bad_context_seed():
    with pytest.raises(ValueError, match="context_seed must be an integer >= 0"):
        IdentifyGreedyPolicy(3, context_seed=-1)


def test_yardsticks_act_before_reset_raises():
    for pol in (BlindGreedyPolicy(), IdentifyGreedyPolicy(1)):
        with pytest.raises(RuntimeError, match="reset"):
            pol.act(np.zeros(3))


def test_dt_mean_condition_by_hand(full_set):
    a = Condition(flop_per_bit=np.array([[300.0, 600.0]]), memory_mb=np.array([[256.0, 1001.0]]),
                  peak_accuracy=np.array([[70.0, 80.0]]), quality_exponent=np.array([0.1]))
    b = Condition(flop_per_bit=np.array([[500.0, 1000.0]]), memory_mb=np.array([[300.0, 1004.0]]),
                  peak_accuracy=np.array([[80.0, 90.0]]), quality_exponent=np.array([0.3]))
    m = dt_mean_condition([a, b])
    np.testing.assert_allclose(m.flop_per_bit, [[400.0, 800.0]])
    np.testing.assert_allclose(m.peak_accuracy, [[75.0, 85.0]])
    np.testing.assert_allclose(m.quality_exponent, [0.2])
    np.testing.assert_array_equal(m.memory_mb, [[278.0, 1002.0]])  # 1002.5 rounds to even
    # on a task set: the six DTs (not the test conditions), entry by entry
    dt = dt_mean_condition(full_set)
    names = ("G1", "G1'", "G1''", "G2", "G2'", "G3")
    u, j = 17, 2
    assert dt.flop_per_bit[u, j] == pytest.approx(
        sum(full_set[n].flop_per_bit[u, j] for n in names) / 6, rel=1e-12)
    assert dt.quality_exponent[u] == pytest.approx(
        sum(full_set[n].quality_exponent[u] for n in names) / 6, rel=1e-12)
    with pytest.raises(ValueError, match="at least one condition"):
        dt_mean_condition([])


def test_twin_greedy_on_the_true_condition_is_the_informed_greedy(env):
    """The twin path (option table of the observed state under a given condition) reproduces
    GreedyPolicy's actions exactly when the twin is the truth."""
    obs, _ = env.reset(seed=5)
    twin, informed = BlindGreedyPolicy(), GreedyPolicy()
    twin.reset(env)
    informed.reset(env)
    twin.twin = env.condition
    for _ in range(4):
        a = informed.act(obs)
        np.testing.assert_array_equal(twin.act(obs), a)
        obs, *_ = env.step(a)


def test_context_action_round_robin(env):
    env.reset(seed=6)
    state = env.user_state
    cfg = SMALL.system
    f, m = cfg.n_models, cfg.n_methods
    acts = np.stack([context_action(t, state, m, f) for t in range(f * m)])  # (T, U, 3)
    assert np.all(acts[0, :, 2] == 0) and np.all(acts[0, :, 1] == 0)  # slot 0: model 0, device
    for a in acts:
        assert env.action_space.contains(a.ravel().astype(np.int64))
        on_device = a[:, 2] == 0
        np.testing.assert_array_equal(a[on_device, 1], 0)
        np.testing.assert_array_equal(a[~on_device, 1], state.ap[~on_device] + 1)
    for u in range(cfg.n_users):  # every (model, method) pair once per user in |F| x |M| slots
        pairs = {(int(a[u, 2]), int(a[u, 0])) for a in acts}
        assert pairs == {(j, q) for j in range(f) for q in range(m)}
    one_model = context_action(3, state, n_methods=2, n_models=1)
    assert np.all(one_model[:, 2] == 0) and np.all(one_model[:, 1] == 0)


def test_compute_intensity_inverted_by_hand(env):
    """One slot of telemetry: rho from the latency formulas written out by hand, per placement
    (device, own server, another server, cloud), against the identifier and the truth."""
    env.reset(seed=11)
    state, system, cond = env.user_state, env.system, env.condition
    n, h = SMALL.system.n_users, SMALL.system.n_servers
    u = np.arange(n)
    act = np.empty((n, 3), dtype=np.int64)
    act[:, 0] = 2
    act[:, 1] = np.select([u % 4 == 0, u % 4 == 2], [0, (state.ap + 1) % h + 1], state.ap + 1)
    act[:, 2] = np.select([u % 4 == 0, u % 4 == 3], [0, 2], 1)
    _, _, _, _, info = env.step(act.ravel())
    place, ds, model, lat = info["placement"], info["ds"], info["model"], info["latency"]
    ident = TwinIdentifier(system, dt_mean_condition(env.task_set))
    ident.add(state, info)
    est = ident.estimate()

    bits = state.task_bits * system.ds_ratio[u, ds]
    sent = bits + state.result_bits
    up = sent / uplink_rate_bps(state.bandwidth_hz, state.distance_m, state.noise_dbm,
                                system.tx_power_dbm)
    srv = np.clip(place - 1, 0, h - 1)
    with np.errstate(divide="ignore"):
        fwd = np.where(srv == state.ap, 0.0, sent / system.ap_rate[state.ap, srv]
                       + system.ap_delay[state.ap, srv])
    hand = np.select(
        [place == 0, place == h + 1],
        [lat * system.local_flops / bits,
         (lat - up - sent / system.cloud_rate[state.ap] - system.cloud_delay[state.ap])
         * system.cloud_flops / bits],
        (lat - up - fwd) * system.es_flops[srv] / bits)
    kinds = {"device": place == 0, "cloud": place == h + 1,
             "own server": place == state.ap + 1,
             "other server": (place >= 1) & (place <= h) & (place != state.ap + 1)}
    assert all(k.any() for k in kinds.values()), {k: int(v.sum()) for k, v in kinds.items()}
    np.testing.assert_allclose(hand, cond.flop_per_bit[u, model], rtol=1e-9)
    np.testing.assert_allclose(est.condition.flop_per_bit[u, model], hand, rtol=1e-9)
    assert est.flop_observed.sum() == n and np.all(est.flop_observed[u, model])
    unseen = ~est.flop_observed
    np.testing.assert_array_equal(est.condition.flop_per_bit[unseen],
                                  dt_mean_condition(env.task_set).flop_per_bit[unseen])


def test_accuracy_parameters_identified_by_hand(env):
    """gamma = log(A_m / A_raw) / log(alpha_m) from one model at two qualities; the peak is the
    raw-data accuracy; with one quality only, gamma stays at the DT mean."""
    env.reset(seed=12)
    state, system, table = env.user_state, env.system, env.option_table
    n, h, f = SMALL.system.n_users, SMALL.system.n_servers, SMALL.system.n_models
    prior = dt_mean_condition(env.task_set)
    zeros = np.zeros(n, dtype=np.int64)

    def telemetry(ds: np.ndarray, place: np.ndarray) -> dict:
        out = outcome_of(table, ds, place, zeros, h, f)  # no repair, no knapsack: just physics
        return {"latency": out.latency, "placement": out.placement, "ds": out.ds,
                "model": out.model, "accuracy": out.accuracy}

    low = telemetry(zeros, zeros)  # model 0 on the device, most compressed data
    ident = TwinIdentifier(system, prior)
    ident.add(state, low)
    one = ident.estimate()
    assert not one.exponent_identified.any() and not one.peak_identified.any()
    np.testing.assert_array_equal(one.condition.quality_exponent, prior.quality_exponent)
    alpha0 = system.ds_ratio[:, 0]
    np.testing.assert_allclose(one.condition.peak_accuracy[:, 0],
                               low["accuracy"] / alpha0 ** prior.quality_exponent, rtol=1e-12)

    raw = telemetry(np.full(n, 2), state.ap + 1)  # model 0 on the own server, raw data
    ident.add(state, raw)
    two = ident.estimate()
    gamma_hand = np.log(low["accuracy"] / raw["accuracy"]) / np.log(alpha0)
    assert two.exponent_identified.all()
    np.testing.assert_allclose(two.condition.quality_exponent, gamma_hand, rtol=1e-9)
    np.testing.assert_allclose(gamma_hand, env.condition.quality_exponent, rtol=1e-9)
    np.testing.assert_allclose(two.condition.peak_accuracy[:, 0], raw["accuracy"], rtol=1e-12)
    np.testing.assert_allclose(raw["accuracy"], env.condition.peak_accuracy[:, 0], rtol=1e-12)
    assert two.peak_identified[:, 0].all() and not two.peak_identified[:, 1:].any()
    np.testing.assert_array_equal(two.condition.peak_accuracy[:, 1:], prior.peak_accuracy[:, 1:])
    np.testing.assert_allclose(two.condition.flop_per_bit[:, 0], env.condition.flop_per_bit[:, 0],
                               rtol=1e-9)


@pytest.mark.parametrize("name", ["T1", "T2", "T3"])
def test_identify_with_enough_context_matches_informed_greedy(full_set, name):
    """n = 50: the identification is exact for every observed (user, model), nearly every pair
    is observed, and the evaluated latency is within 1 % of the informed greedy's."""
    pol = IdentifyGreedyPolicy(50)
    ident = evaluate(pol, name, n_slots=60, seed=3000, task_set=full_set, with_oracle=False)
    greedy = evaluate(GreedyPolicy(), name, n_slots=60, seed=3000, task_set=full_set,
                      with_oracle=False)
    truth, est = full_set[name], pol.estimate
    assert est is not None and est.n_slots == 50
    seen, pk, gm = est.flop_observed, est.peak_identified, est.exponent_identified
    assert seen.mean() >= 0.95 and pk.mean() >= 0.95 and gm.mean() >= 0.95
    np.testing.assert_allclose(est.condition.flop_per_bit[seen], truth.flop_per_bit[seen],
                               rtol=1e-9)
    np.testing.assert_allclose(est.condition.peak_accuracy[pk], truth.peak_accuracy[pk],
                               rtol=1e-9)
    np.testing.assert_allclose(est.condition.quality_exponent[gm], truth.quality_exponent[gm],
                               rtol=1e-9)
    a, b = ident.summary["mean_latency_s"], greedy.summary["mean_latency_s"]
    assert abs(a - b) / b < 0.01, (a, b)
    blind = evaluate(BlindGreedyPolicy(), name, n_slots=60, seed=3000, task_set=full_set,
                     with_oracle=False).summary["mean_latency_s"]
    assert blind > 1.05 * b  # not knowing the condition costs (measured: 16-19 % on T1-T3)


def test_zero_context_is_blind_greedy(full_set):
    blind, zero = BlindGreedyPolicy(), IdentifyGreedyPolicy(0)
    rb = evaluate(blind, "T2", n_slots=25, seed=7, task_set=full_set, with_oracle=False)
    rz = evaluate(zero, "T2", n_slots=25, seed=7, task_set=full_set, with_oracle=False)
    np.testing.assert_array_equal(rb.per_slot["mean_latency_s"], rz.per_slot["mean_latency_s"])
    for field in ("flop_per_bit", "peak_accuracy", "quality_exponent", "memory_mb"):
        np.testing.assert_array_equal(getattr(zero.twin, field), getattr(blind.twin, field))
    assert zero.estimate.n_slots == 0 and not zero.estimate.flop_observed.any()


class _Recorder:
    """Wraps a policy and records the raw user state of every slot it answers."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.states = inner, inner.name, []

    def reset(self, env) -> None:
        self.env = env
        before = env.user_state
        self.inner.reset(env)
        assert env.user_state is before  # reset never steps the evaluated environment

    def act(self, obs):
        self.states.append(np.concatenate([self.env.user_state.task_bits,
                                           self.env.user_state.accuracy_req, obs]))
        return self.inner.act(obs)

    def observe(self, *args) -> None:
        self.inner.observe(*args)


def test_yardsticks_keep_common_random_numbers():
    """Same evaluated slot states and the same per-slot oracle as another policy, with a context
    longer than an episode (the context environment chains episodes, the evaluation too)."""
    cfg = EnvConfig(system=SMALL.system, episode_slots=7)
    ts = make_task_set(0, cfg.system, cfg.conditions)
    runs = {}
    for pol in (RandomPolicy(1), BlindGreedyPolicy(), IdentifyGreedyPolicy(9)):
        clear_oracle_cache()  # each run solves its own oracle: the equality is not the cache's
        rec = _Recorder(pol)
        res = evaluate(rec, "T3", n_slots=10, seed=21, task_set=ts, config=cfg)
        runs[pol.name] = (np.stack(rec.states), res.per_slot)
    ref_states, ref_slots = runs["random"]
    for name in ("blind_greedy", "identify_greedy[9]"):
        states, slots = runs[name]
        np.testing.assert_array_equal(states, ref_states)
        np.testing.assert_array_equal(slots["oracle_latency_s"], ref_slots["oracle_latency_s"])
        assert np.all(slots["mean_latency_s"] >= slots["oracle_latency_s"] - 1e-9)


def test_identify_context_is_deterministic_and_seeded(full_set):
    env = EdgeCloudEnv("T1", task_set=full_set)
    env.reset(seed=0)
    a, b = IdentifyGreedyPolicy(4), IdentifyGreedyPolicy(4)
    a.reset(env)
    b.reset(env)
    np.testing.assert_array_equal(a.twin.flop_per_bit, b.twin.flop_per_bit)
    c = IdentifyGreedyPolicy(4, context_seed=CONTEXT_SEED + 1)
    c.reset(env)
    # another context stream: other slots, other repairs and overflows, other pairs observed
    assert not np.array_equal(a.estimate.flop_observed, c.estimate.flop_observed)
