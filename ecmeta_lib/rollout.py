"""The one rollout loop: a controller acting on an environment for some slots.

Training's collection, PEARL's context collection, the random-action slots the critic is scored
on, the evaluation harness and the lifecycle all run slots through `rollout`, so an episode
boundary, a buffer write or the executed decisions are handled in one place. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from .agents.buffers import ContextBuffer
from .env import decisions_of
from .policies import context_action

N_HEADS = 3
"""Sub-actions per user: pre-processing method (DS), place (TA), AI model (MS)."""


class TransitionSink(Protocol):
    """A replay or context buffer (`ecmeta_lib.agents.buffers`)."""

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
            latency: np.ndarray, decision: np.ndarray) -> None: ...


def rollout(env: Any, n_slots: int, act: Callable[[np.ndarray], np.ndarray], *,
            obs: np.ndarray | None = None, seed: int | None = None,
            buffers: Sequence[TransitionSink] = (),
            before: Callable[[int], None] | None = None,
            after: Callable[..., None] | None = None) -> np.ndarray:
    """Run `n_slots` slots of ``act(obs) -> action`` on `env`; returns the last observation.

    Args:
        obs: the current observation; None resets `env` first (with `seed`: None continues the
            environment's own slot stream, as collection does between iterations).
        buffers: every transition is added to each (with the users' latencies and the executed
            decisions).
        before: ``before(t)`` before slot t's action (the harness solves the oracle there, on
            the state the action will meet).
        after: ``after(t, obs, action, reward, next_obs, info)`` after slot t.
    Episodes are chained: at a truncation the environment is reset without a seed, so its state
    stream continues (common random numbers across policies).
    """
    if obs is None:
        obs, _ = env.reset(seed=seed)
    for t in range(n_slots):
        if before is not None:
            before(t)
        action = act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        for buf in buffers:
            buf.add(obs, action, reward, next_obs, info["latency"], decisions_of(info))
        if after is not None:
            after(t, obs, action, reward, next_obs, info)
        obs = env.reset()[0] if terminated or truncated else next_obs
    return obs


def transition_buffer(env: Any, capacity: int) -> ContextBuffer:
    """An empty context buffer shaped for `env` (its users and the three sub-actions)."""
    n_users = env.action_space.nvec.size // N_HEADS
    return ContextBuffer(max(int(capacity), 1), env.observation_space.shape[0],
                         (n_users, N_HEADS))


def probe_action(t: int, env: Any, probe: str, rng: np.random.Generator) -> np.ndarray:
    """Slot `t`'s flat action of a context probe on ``env``'s current users: "random" (uniform,
    drawn from `rng`), "round_robin" (`policies.context_action`, IdentifyGreedy's informative
    order), or "round_robin_first" (one round-robin block, the first |F| slots, which shows
    every user each model once, then uniform)."""
    base = env.unwrapped
    n_models = base.config.system.n_models
    if probe == "round_robin" or (probe == "round_robin_first" and t < n_models):
        return context_action(t, base.user_state, base.system.n_methods, n_models).ravel()
    if probe in ("random", "round_robin_first"):
        return rng.integers(0, env.action_space.nvec).astype(np.int64)
    raise ValueError(f"unknown context probe {probe!r}; choose one of "
                     "'random', 'round_robin', 'round_robin_first'")


def probe_slots(env: Any, n: int, seed: int, probe: str = "random") -> dict[str, np.ndarray]:
    """``n`` slots of a context probe (`probe_action`) on ``env`` reset with `seed` (the random
    actions seeded by it too), as a context dict: the critic's held-out slots ("random") and
    PEARL's contexts under ``random_context``."""
    buf = transition_buffer(env, n)
    rng, phase = np.random.default_rng(seed), iter(range(n))
    rollout(env, n, lambda _obs: probe_action(next(phase), env, probe, rng), seed=seed,
            buffers=(buf,))
    return buf.recent(n)


def random_slots(env: Any, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` slots of uniformly random actions on ``env`` (`probe_slots`' "random")."""
    return probe_slots(env, n, seed, "random")
