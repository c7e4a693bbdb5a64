"""Heuristic policies: valid, deterministic actions that do what their names say."""

from __future__ import annotations

import numpy as np
import pytest

from ecmeta_lib import EdgeCloudEnv, EnvConfig, SystemConfig, make_task_set
from ecmeta_lib.oracle import oracle
from ecmeta_lib.policies import (
    GreedyPolicy,
    LocalPolicy,
    NearestPolicy,
    RandomPolicy,
    greedy_action,
    make_heuristic,
)

SMALL = EnvConfig(system=SystemConfig(n_users=12, n_servers=3, es_gflops=(60.0, 80.0, 120.0),
                                      es_memory_gb=(2.0, 3.0, 4.0), es_cores=(2, 3, 4)))


@pytest.fixture(scope="module")
def env() -> EdgeCloudEnv:
    cfg = SMALL
    return EdgeCloudEnv("T1", task_set=make_task_set(0, cfg.system, cfg.conditions), config=cfg)


ALL = [RandomPolicy(3), LocalPolicy(), NearestPolicy(), GreedyPolicy()]


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
