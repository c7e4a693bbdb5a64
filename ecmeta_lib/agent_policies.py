"""Policies of the learned agents, beside the heuristics (`ecmeta_lib.policies`): the evaluation
harness's `Policy` protocol around a trained SAC or PEARL agent, and PEARL's adaptation.

Adaptation protocol (`PEARLPolicy`, `adaptation_curve`): on a condition, the meta-policy collects
``n`` context transitions in a *separate* environment (seeded by ``context_seed``; z re-inferred
as a posterior draw after each transition, actions sampled - PEARL's posterior sampling - or,
with ``random_context``, uniformly random), then freezes z at the posterior mean of those ``n``
transitions and acts greedily for the evaluation. ``n = 0`` is the prior mean z = 0. No gradient
step is taken; the encoder is frozen. The evaluation environment's slot stream is untouched, so
every n (and every method) is scored on the very same slots (common random numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from .agents import ContextBuffer, DiscreteSACAgent
from .conditions import Condition, TaskSet, make_task_set
from .config import EnvConfig
from .env import EdgeCloudEnv
from .evaluation import FINAL_SEED, evaluate
from .policies import CONTEXT_SEED  # one context seed for PEARL and the yardsticks
from .rollout import decisions_of, probe_slots, rollout, transition_buffer


class AgentPolicy:
    """Greedy (argmax) policy of a trained agent with a fixed z (None for the SAC baselines)."""

    def __init__(self, agent: DiscreteSACAgent, name: str = "agent",
                 z: torch.Tensor | None = None) -> None:
        self.agent, self.name, self.z = agent, name, z

    def reset(self, env: Any) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.act(obs, self.z, greedy=True)

    def observe(self, obs, action, reward, next_obs, info) -> None:
        pass


def collect_context(agent: DiscreteSACAgent, env: EdgeCloudEnv, n: int,
                    seed: int, probe: str | None = None) -> dict[str, np.ndarray]:
    """Run the meta-policy for ``n`` slots on ``env`` (reset with `seed`): before each slot z is
    drawn from the posterior of the transitions so far (the prior at first) and the action is
    sampled from pi(s, z), or (``random_context``) the encoder's adaptation probe
    (``adaptation_probe``, else ``context_probe``: uniformly random, IdentifyGreedy's
    round-robin, or its first block then random; `probe` overrides it, for diagnosis); returns
    the ``n`` transitions as a context."""
    if agent.cfg.encoder.random_context and n > 0:  # ours: an exploration policy shows all
        enc = agent.cfg.encoder
        return probe_slots(env, n, seed, probe or enc.adaptation_probe or enc.context_probe)
    buf = transition_buffer(env, n)
    if n == 0:
        return buf.recent(0)
    gen_state = agent.generator.get_state()
    agent.generator.manual_seed(int(seed))

    def act(obs: np.ndarray) -> np.ndarray:
        return agent.act(obs, agent.infer_z(buf.recent(n), sample=True), greedy=False)

    rollout(env, n, act, seed=int(seed), buffers=(buf,))
    agent.generator.set_state(gen_state)  # adaptation does not disturb the agent's training RNG
    return buf.recent(n)


class PEARLPolicy:
    """PEARL adapted on the evaluated condition with a fixed context of ``n_context`` transitions.

    ``reset(env)`` collects the context in a separate copy of ``env``'s condition (seeded with
    ``context_seed``, so the evaluated slots are untouched) and freezes z at the posterior mean;
    ``act`` is greedy. With ``online=True`` the policy instead starts from the prior and, for the
    first ``n_context`` evaluated slots, adds each observed transition to its context and
    re-infers z (posterior mean) - adaptation while acting.
    """

    def __init__(self, agent: DiscreteSACAgent, n_context: int, *, context_seed: int = CONTEXT_SEED,
                 online: bool = False, name: str | None = None,
                 probe: str | None = None) -> None:
        if agent.encoder is None:
            raise ValueError("PEARLPolicy needs an agent with a context encoder")
        if n_context < 0:
            raise ValueError(f"n_context must be >= 0, got {n_context}")
        self.agent, self.n_context, self.context_seed, self.online = (agent, int(n_context),
                                                                      int(context_seed), online)
        self.name = name or f"pearl[{n_context}]"
        self.probe = probe  # None: the agent's own context probe
        self.z: torch.Tensor | None = None
        self._online_buf: ContextBuffer | None = None

    def reset(self, env: Any) -> None:
        base: EdgeCloudEnv = env.unwrapped
        if self.online:
            self._online_buf = transition_buffer(base, self.n_context)
            self.z = self.agent.infer_z(None, sample=False)
            return
        ctx_env = EdgeCloudEnv(condition=base.condition, task_set=base.task_set,
                               config=base.config)
        self.context = collect_context(self.agent, ctx_env, self.n_context, self.context_seed,
                                       self.probe)
        self.z = self.agent.infer_z(self.context, sample=False)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.agent.act(obs, self.z, greedy=True)

    def observe(self, obs, action, reward, next_obs, info) -> None:
        buf = self._online_buf
        if self.online and buf is not None and buf.size < self.n_context:
            buf.add(obs, action, reward, next_obs, info["latency"], decisions_of(info))
            self.z = self.agent.infer_z(buf.recent(buf.size), sample=False)


def make_policy(agent: DiscreteSACAgent, method: str, n_context: int) -> AgentPolicy | PEARLPolicy:
    """The evaluated policy of a trained `agent`: PEARL adapted with `n_context` transitions, or
    the SAC baseline's greedy policy."""
    if agent.encoder is not None:
        return PEARLPolicy(agent, n_context, name=method)
    return AgentPolicy(agent, name=method)


def adaptation_curve(agent: DiscreteSACAgent, condition: str | Condition, *,
                     n_context: Sequence[int] = (0, 1, 2, 5, 10, 20, 50), eval_slots: int = 50,
                     seed: int = FINAL_SEED, task_set: TaskSet | None = None, task_seed: int = 0,
                     config: EnvConfig | None = None, context_seed: int = CONTEXT_SEED,
                     with_oracle: bool = False) -> pd.DataFrame:
    """PEARL's latency on `condition` against the number of context transitions (no gradient step).

    For each n in `n_context`: a `PEARLPolicy` collects n transitions on the condition in a
    separate environment (``context_seed``), freezes z at the posterior mean, and is evaluated
    greedily by the harness for `eval_slots` slots from `seed` (same slots for every n).
    Returns columns: condition, n_context, mean_latency_s, ci_low_s, ci_high_s,
    oracle_latency_s, gap_to_oracle_pct (NaN without the oracle), accuracy_violation_rate.
    """
    if agent.encoder is None:
        raise ValueError("adaptation_curve needs a PEARL agent (one with a context encoder)")
    cfg = config or EnvConfig()
    if task_set is None:
        task_set = make_task_set(task_seed, cfg.system, cfg.conditions)
    rows = []
    for n in n_context:
        s = evaluate(PEARLPolicy(agent, int(n), context_seed=context_seed), condition,
                     n_slots=eval_slots, seed=seed, task_set=task_set, config=config,
                     with_oracle=with_oracle).summary
        rows.append({"condition": s["condition"], "n_context": int(n),
                     **{k: s[k] for k in ("mean_latency_s", "ci_low_s", "ci_high_s",
                                          "oracle_latency_s", "gap_to_oracle_pct",
                                          "accuracy_violation_rate")}})
    return pd.DataFrame(rows)


def critic_rmse(agent: DiscreteSACAgent, z: torch.Tensor | None,
                data: dict[str, np.ndarray]) -> float:
    """RMS error (s) of the critics' per-user latency of the actions taken in `data`'s slots,
    acting on `z` (None for a SAC baseline)."""
    with torch.no_grad():
        zz = None if z is None else z.unsqueeze(0).expand(len(data["reward"]), *z.shape)
        pred = agent.predicted_latency(agent._t(data["obs"]),
                                       agent._t(data["action"], torch.int64), zz)
    return float(np.sqrt(np.mean((pred.cpu().numpy() - data["latency"]) ** 2)))


def adaptation_diagnosis(agent: DiscreteSACAgent, condition: str | Condition, *,
                         task_set: TaskSet, config: EnvConfig,
                         n_context: Sequence[int] = (0, 1, 2, 5, 10, 20, 50),
                         probes: Sequence[str] = ("random", "round_robin"),
                         reference_n: int = 200, eval_slots: int = 50, heldout_slots: int = 20,
                         seed: int = FINAL_SEED, context_seed: int = CONTEXT_SEED,
                         heldout_seed: int = 987_654) -> pd.DataFrame:
    """Why PEARL(n) is where it is: for each context probe and n, on `condition`, the gap to the
    oracle (the adaptation protocol, same slots for every row), the critic's per-user latency
    error on held-out random-action slots at z = the posterior mean, the posterior's mean sd,
    and its calibration: the mean over users and dimensions of (mu_n - mu_ref)^2 / var_n, where
    mu_ref is the posterior mean of `reference_n` transitions of the same probe (about 1 for a
    calibrated posterior; far above 1: the posterior is surer than its mean is right). The row
    at ``n = reference_n`` is what the encoder and critic reach with ample context: the part of
    the gap that no context closes.

    Returns columns: condition, probe, n_context, gap_to_oracle_pct, critic_rmse_s,
    posterior_sd, calibration."""
    if agent.encoder is None:
        raise ValueError("adaptation_diagnosis needs a PEARL agent (one with a context encoder)")
    name = condition if isinstance(condition, str) else condition.name

    def env() -> EdgeCloudEnv:
        return EdgeCloudEnv(condition=condition, task_set=task_set, config=config)

    held = probe_slots(env(), heldout_slots, heldout_seed, "random")
    rows = []
    for probe in probes:
        full = probe_slots(env(), reference_n, context_seed, probe)
        with torch.no_grad():
            mu_ref, _ = agent.posterior(full)
        for n in sorted({*map(int, n_context), int(reference_n)}):
            with torch.no_grad():
                mu, var = agent.posterior({k: v[:n] for k, v in full.items()} if n else None)
            fixed = AgentPolicy(agent, f"pearl[{n}]", mu)
            s = evaluate(fixed, condition, n_slots=eval_slots, seed=seed, task_set=task_set,
                         config=config).summary
            rows.append({"condition": name, "probe": probe, "n_context": n,
                         "gap_to_oracle_pct": s["gap_to_oracle_pct"],
                         "critic_rmse_s": critic_rmse(agent, mu, held),
                         "posterior_sd": float(var.sqrt().mean()),
                         "calibration": float(((mu - mu_ref) ** 2 / var).mean())
                         if n < reference_n else np.nan})
    return pd.DataFrame(rows)
