"""PEARL's context probe (`agent.context_probe`): the slots it collects, its place in the run key,
its refusals, and `adaptation_diagnosis`, which measures what the probe buys."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from test_agents import SMALL, _threads  # noqa: F401 - the 2-user system and 1-thread fixture
from test_learner import JOINT

from ecmeta_lib.agent_policies import adaptation_diagnosis, collect_context
from ecmeta_lib.agents import ActionSpec, DiscreteSACAgent
from ecmeta_lib.cache import run_key
from ecmeta_lib.conditions import make_task_set
from ecmeta_lib.env import EdgeCloudEnv
from ecmeta_lib.policies import context_action
from ecmeta_lib.profiles import get_profile
from ecmeta_lib.rollout import probe_slots, random_slots

PEARL = JOINT.with_(latent_dim=2, latent_per_user=True, encoder_decisions=True,
                    posterior_prior_factor=True, random_context=True)


def _replay(env: EdgeCloudEnv, n: int, seed: int) -> list[np.ndarray]:
    """The user states a probe run from `seed` meets, slot by slot (the probe does not change
    them: the states are i.i.d. draws of the environment's stream)."""
    env.reset(seed=seed)
    states = []
    for _ in range(n):
        states.append(env.user_state)
        env.step(env.action_space.sample())
    return states


def test_random_probe_is_the_random_slots_of_before() -> None:
    """"random": uniform actions drawn from default_rng(seed), one draw per slot, as the held-out
    slots and PEARL's contexts always were (the cached runs depend on it)."""
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    got = random_slots(env, 9, 5)
    rng = np.random.default_rng(5)
    want = np.stack([rng.integers(0, env.action_space.nvec) for _ in range(9)])
    assert np.array_equal(got["action"].reshape(9, -1), want)
    assert np.array_equal(probe_slots(env, 9, 5, "random")["obs"], got["obs"])


@pytest.mark.parametrize("probe", ["round_robin", "round_robin_first"])
def test_round_robin_probes_follow_identify_greedys_order(probe: str) -> None:
    """"round_robin" plays `context_action` on every slot; "round_robin_first" its first block
    of |F| slots, then the uniform actions of the same seed's generator."""
    env = EdgeCloudEnv(condition="T2", config=SMALL)
    n, f = 7, SMALL.system.n_models
    ctx = probe_slots(env, n, 3, probe)
    states = _replay(EdgeCloudEnv(condition="T2", config=SMALL), n, 3)
    rr = np.stack([context_action(t, s, env.system.n_methods, f).ravel()
                   for t, s in enumerate(states)])
    acts = ctx["action"].reshape(n, -1)
    head = f if probe == "round_robin_first" else n
    assert np.array_equal(acts[:head], rr[:head])
    if probe == "round_robin_first":
        rng = np.random.default_rng(3)
        tail = np.stack([rng.integers(0, env.action_space.nvec) for _ in range(n - f)])
        assert np.array_equal(acts[f:], tail)


def test_adaptation_uses_the_agents_probe_unless_told() -> None:
    """`collect_context` follows ``context_probe``; its `probe` argument overrides it."""
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    spec = ActionSpec.from_env(env)
    agent = DiscreteSACAgent(spec, PEARL.with_(context_probe="round_robin_first"), seed=0)
    own = collect_context(agent, env, 6, 7)
    assert np.array_equal(own["action"], probe_slots(env, 6, 7, "round_robin_first")["action"])
    told = collect_context(agent, env, 6, 7, probe="random")
    assert np.array_equal(told["action"], random_slots(env, 6, 7)["action"])


def test_probe_refusals_name_the_field() -> None:
    with pytest.raises(ValueError, match="context_probe must be one of"):
        PEARL.with_(context_probe="spiral")
    with pytest.raises(ValueError, match="needs random_context"):
        PEARL.with_(random_context=False, context_probe="round_robin")
    assert PEARL.switch(random_context=False).encoder.context_probe == "random"
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    with pytest.raises(ValueError, match="unknown context probe 'spiral'"):
        probe_slots(env, 2, 0, "spiral")


def test_the_probe_enters_pearls_key_only() -> None:
    """At "random" the field is out of every key (cached runs keep theirs); another probe moves
    PEARL's key and leaves the SAC baselines', which never read it."""
    quick = get_profile("quick")
    other = replace(quick, agent=quick.agent.with_(
        context_probe="random" if quick.agent.encoder.context_probe != "random" else "round_robin"))
    assert run_key("pearl", quick, 0, 0) != run_key("pearl", other, 0, 0)
    for method in ("sac_dt", "sac_t_m", "sac_aisf_1"):
        assert run_key(method, quick, 0, 0) == run_key(method, other, 0, 0)
    assert quick.agent_config("sac_dt").encoder.context_probe == "random"


def test_adaptation_diagnosis_rows() -> None:
    """One row per (probe, n), the reference n included; at n = 0 the posterior is the prior
    (sd 1), calibration is NaN at the reference itself; the critic error is a finite RMS."""
    env = EdgeCloudEnv(condition="T1", config=SMALL)
    agent = DiscreteSACAgent(ActionSpec.from_env(env), PEARL, seed=0)
    ts = make_task_set(0, SMALL.system, SMALL.conditions)
    d = adaptation_diagnosis(agent, "T1", task_set=ts, config=SMALL, n_context=(0, 2),
                             probes=("random", "round_robin_first"), reference_n=6,
                             eval_slots=3, heldout_slots=3)
    want = [(p, n) for p in ("random", "round_robin_first") for n in (0, 2, 6)]
    assert list(zip(d.probe, d.n_context, strict=True)) == want
    assert np.allclose(d[d.n_context == 0].posterior_sd, 1.0)
    assert d[d.n_context == 6].calibration.isna().all()
    assert d[d.n_context < 6].calibration.notna().all()
    assert (d.critic_rmse_s > 0).all() and np.isfinite(d.gap_to_oracle_pct).all()
