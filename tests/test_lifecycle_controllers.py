"""The learned controllers of the running system, checked against the static code they mirror."""

from __future__ import annotations

import numpy as np
import torch

from ecmeta_lib.agents import ActionSpec, DiscreteSACAgent
from ecmeta_lib.lifecycle import EdgeCloudLifecycleEnv
from ecmeta_lib.lifecycle_controllers import PEARLOnline, SACOnline
from ecmeta_lib.profiles import get_profile
from ecmeta_lib.rollout import decisions_of, transition_buffer


def _pearl(env):
    return DiscreteSACAgent(ActionSpec.from_env(env), get_profile("smoke").agent_config("pearl"),
                            seed=0)


def test_running_posterior_is_the_encoders_posterior_and_restarts_per_user() -> None:
    """PEARL online's z after n transitions equals the encoder's posterior mean of the same n
    transitions (a product of Gaussian factors, computed in one batch by `agent.infer_z`); an
    announced upgrade sends exactly the upgraded users back to the prior."""
    env = EdgeCloudLifecycleEnv(scenario_seed=0, profile="smoke")
    agent = _pearl(env)
    ctrl = PEARLOnline(agent, n_context=4, probe="random", seed=1)
    obs, _ = env.reset()
    ctrl.reset(env)
    buf = transition_buffer(env, 4)
    for _ in range(4):
        action = ctrl.act(obs)
        nxt, reward, _, _, info = env.step(action)
        info = {**info, "upgrade": False}
        buf.add(obs, action, reward, nxt, info["latency"], decisions_of(info))
        ctrl.observe(obs, action, reward, nxt, info)
        obs = nxt
    want = agent.infer_z(buf.recent(4), sample=False)
    torch.testing.assert_close(ctrl.z, want, rtol=1e-5, atol=1e-6)
    assert not ctrl.in_context.any()
    users = np.zeros(env.system.n_users, dtype=bool)
    users[[0, 3]] = True
    action = ctrl.act(obs)
    nxt, reward, _, _, info = env.step(action)
    ctrl.observe(obs, action, reward, nxt, {**info, "upgrade": True, "upgraded_users": users})
    assert (ctrl.in_context == users).all()
    assert torch.all(ctrl.z[torch.as_tensor(users)] == 0)  # the prior mean
    torch.testing.assert_close(ctrl.z[torch.as_tensor(~users)], want[torch.as_tensor(~users)],
                               rtol=1e-5, atol=1e-6)


def test_sac_online_restarts_at_an_upgrade_and_counts_its_steps() -> None:
    env = EdgeCloudLifecycleEnv(scenario_seed=0, profile="smoke")
    cfg = get_profile("smoke").agent_config("sac_aisf_1")
    spec = ActionSpec.from_env(env)
    for mode in ("retrain", "finetune"):
        ctrl = SACOnline(spec, cfg, mode=mode, warmup=3, updates_per_slot=2, batch=4)
        obs, _ = env.reset()
        ctrl.reset(env)
        first = ctrl.agent
        for t in range(6):
            action = ctrl.act(obs)
            nxt, reward, _, _, info = env.step(action)
            info = {**info, "upgrade": t == 5,
                    "upgraded_users": np.ones(env.system.n_users, dtype=bool)}
            ctrl.observe(obs, action, reward, nxt, info)
            obs = nxt
        assert ctrl.grad_steps == 2 * (6 - 3 + 1) and ctrl.restarts == 1
        assert len(ctrl.replay) == 0  # emptied at the upgrade either way
        # retrain: a fresh agent that has taken no step; finetune: the same one, every step kept
        assert (ctrl.agent is first) == (mode == "finetune")
        assert int(ctrl.agent.n_updates) == (0 if mode == "retrain" else ctrl.grad_steps)


def test_the_twin_pool_grows_after_an_upgrade_and_the_meta_policy_trains_on_it() -> None:
    """A twin identified from the live probes joins the pool ``n_context + 1`` slots after an
    announced upgrade; the upgraded users' identified compute intensities are the true ones;
    the meta-policy then takes the stated number of gradient steps."""
    from ecmeta_lib.conditions import DT_NAMES
    from ecmeta_lib.twin_pool import ContinualConfig, PEARLContinual, TwinPool

    env = EdgeCloudLifecycleEnv(scenario_seed=0, profile="smoke")
    agent = _pearl(env)
    cfg = ContinualConfig(updates=3, twin_slots=8, batch=4, context=4, lambda1=1, lambda2=1)
    pool = TwinPool(env.task_set, env.config, cfg, seed=0)
    for n in DT_NAMES[:2]:
        pool.add(n, env.task_set[n])
    ctrl = PEARLContinual(agent, pool, cfg, n_context=3)
    obs, _ = env.reset()
    ctrl.reset(env)
    first_event = int(env.scenario.event_slots[0])
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    for _ in range(first_event + 3 + 2):
        action = ctrl.act(obs)
        nxt, reward, _, _, info = env.step(action)
        ctrl.observe(obs, action, reward, nxt, info)
        obs = nxt
    assert pool.names == [*DT_NAMES[:2], "twin1"] and ctrl.grad_steps == 3
    err = ctrl.twin_errors[0]
    assert err["log_rho_error_identified"] < 1e-9 and err["identified_share"] > 0
    assert any(not torch.equal(before[k], v) for k, v in agent.state_dict().items())


def test_pearl_online_finds_unannounced_upgrades_on_its_twin() -> None:
    """With ``residual="twin"`` PEARL online keeps a twin identified from its live telemetry
    (its probes are the identifying greedy's): before the first upgrade its residuals are near
    exact, so hardly anybody is flagged; after it, the flags are upgraded users, most of them
    within a few slots, and a flagged user restarts its context."""
    from ecmeta_lib.detection import CusumDetector

    env = EdgeCloudLifecycleEnv(scenario_seed=0, profile="smoke", announce=False)
    u = env.system.n_users
    ctrl = PEARLOnline(_pearl(env), n_context=9, probe="round_robin", accumulate=True,
                       detector=CusumDetector(u, k=1.0, h=8.0, min_sd=0.05, warmup=10),
                       residual="twin")
    first = env.scenario.events[0]
    obs, _ = env.reset()
    ctrl.reset(env)
    for t in range(first.slot + 15):
        action = ctrl.act(obs)
        nxt, reward, _, _, info = env.step(action)
        ctrl.observe(obs, action, reward, nxt, info)
        flagged = [w for s, w in ctrl.detections if s == t]
        assert ctrl.in_context[flagged].all()  # a flag restarts the user's context
        obs = nxt
    slots = np.array([s for s, _ in ctrl.detections])
    users = np.array([w for _, w in ctrl.detections])
    assert (slots < first.slot).sum() <= 2  # of 80 users x 53 slots (smoke stream 0)
    after = users[slots >= first.slot]
    assert first.upgraded[after].all()  # only upgraded users are flagged after the event
    assert np.unique(after).size >= first.upgraded.sum() / 2  # most of them within 15 slots
    with_critic = PEARLOnline(_pearl(env), residual="critic")
    assert with_critic.identifier is None
    import pytest

    with pytest.raises(ValueError, match="residual must be one of"):
        PEARLOnline(_pearl(env), residual="oracle")
