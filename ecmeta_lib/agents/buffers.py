"""Per-condition replay buffer and context buffer (numpy ring buffers, checkpointable).

Observations are stored as float16 (every feature is scaled to [0, 1], so the rounding is below
1e-3) to keep checkpoints of six conditions' buffers small; the same rounding applies to every run,
so a resumed run sees exactly the data an uninterrupted one does. Sampling takes an explicit
``numpy.random.Generator`` so that the trainer owns (and checkpoints) all randomness.

Besides the scalar reward, every transition can carry the per-user latency vector (U,) (the env's
``info["latency"]``; the controller observes each user's service latency): the per-user reward
decomposition and the per-user context encoder learn from it. Transitions added without it store
NaN there, and an agent that needs it refuses such a batch. Likewise the executed (post-repair)
decisions (U, 3) = (DS, placement 0 local / 1..H edge server / H+1 cloud, model) from the env's
``info``, which PEARL's encoder can read (``encoder_decisions``); missing ones are stored as -1.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class ReplayBuffer:
    """Ring buffer of transitions (s, a, r, s') from one condition.

    Args:
        capacity: most transitions kept; the oldest are overwritten.
        obs_dim: flat observation width.
        action_shape: shape of one integer action, (U, n_heads).
    """

    def __init__(self, capacity: int, obs_dim: int, action_shape: tuple[int, ...]) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs = np.zeros((capacity, obs_dim), np.float16)
        self.next_obs = np.zeros((capacity, obs_dim), np.float16)
        self.action = np.zeros((capacity, *action_shape), np.int8)
        self.reward = np.zeros(capacity, np.float32)
        self.latency = np.full((capacity, action_shape[0]), np.nan, np.float32)
        self.decision = np.full((capacity, *action_shape), -1, np.int8)
        self.ptr = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float,
            next_obs: np.ndarray, latency: np.ndarray | None = None,
            decision: np.ndarray | None = None) -> None:
        """Store one transition; ``latency`` is the per-user latency vector (U,) in s, if known,
        ``decision`` the executed (DS, placement, model) per user (U, 3), if known."""
        i = self.ptr
        self.latency[i] = np.nan if latency is None else np.asarray(latency, np.float32)
        self.decision[i] = -1 if decision is None else np.asarray(decision).reshape(
            self.decision.shape[1:])
        self.obs[i] = obs
        self.action[i] = np.asarray(action).reshape(self.action.shape[1:])
        self.reward[i] = reward
        self.next_obs[i] = next_obs
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        return rng.integers(0, self.size, size=n)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` transitions drawn uniformly with replacement."""
        return self.take(self.indices(n, rng))

    def take(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"obs": self.obs[idx].astype(np.float32),
                "action": self.action[idx].astype(np.int64), "reward": self.reward[idx],
                "latency": self.latency[idx], "next_obs": self.next_obs[idx].astype(np.float32),
                "decision": self.decision[idx].astype(np.int64)}

    def recent(self, n: int) -> dict[str, np.ndarray]:
        """The ``n`` most recent transitions (fewer if the buffer holds fewer)."""
        n = min(n, self.size)
        idx = (self.ptr - 1 - np.arange(n)) % self.capacity
        return self.take(idx[::-1])

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"capacity": self.capacity, "ptr": self.ptr, "size": n,
                "obs": self.obs[:n].copy(), "next_obs": self.next_obs[:n].copy(),
                "action": self.action[:n].copy(), "reward": self.reward[:n].copy(),
                "latency": self.latency[:n].copy(), "decision": self.decision[:n].copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity or state["obs"].shape[1:] != self.obs.shape[1:]:
            raise ValueError("replay buffer state does not match this buffer's shape")
        n = state["size"]
        self.ptr, self.size = state["ptr"], n
        self.obs[:n], self.next_obs[:n] = state["obs"], state["next_obs"]
        self.action[:n], self.reward[:n] = state["action"], state["reward"]
        self.latency[:] = np.nan
        if "latency" in state:
            self.latency[:n] = state["latency"]
        self.decision[:] = -1
        if "decision" in state:
            self.decision[:n] = state["decision"]


class ContextBuffer(ReplayBuffer):
    """The recent transitions of one condition that PEARL samples contexts c^k from.

    As in PEARL, the encoder is trained on contexts drawn from recently collected data (a small
    ring buffer), while the SAC losses use the full replay buffer.
    """

    def sample_context(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """``n`` distinct transitions (or all, if fewer are held), in random order."""
        n = min(n, self.size)
        return self.take(rng.permutation(self.size)[:n])
