"""The trainer: Algorithm 1 (PEARL meta-training) and the SAC baselines, as resumable runs.

Every method follows Algorithm 1's loop (`Trainer`, one method per step of the algorithm): per
iteration, collect ``collect_steps`` slots in every training condition (lines 2-5, a fresh
episode each iteration), draw K' conditions once (line 6), then ``t_train`` epochs on them
(lines 7-19; the update rule is the agent's, `ecmeta_lib.agents.updates`). Fairness: every
method runs the same number of iterations and epochs (hence the same gradient steps) and sees the
same samples per gradient step: K' x ``batch_size`` slots (a single-condition method draws all of
them from its one condition). Env steps on the curves count all slots the agent collected,
summed over its training conditions. Which conditions a method trains on, and the profiles, are
in `ecmeta_lib.profiles`.

Early stopping (no test leakage): every ``eval_every`` iterations the greedy policy is scored on
the agent's *own* training conditions (validation seed, PEARL adapted with ``eval_context``
transitions on each DT); the best-scoring weights are kept and used for ``final.csv``. The
learning curve on T1-T3 (``curve.csv``) is recorded at the same points but never used to select.
PEARL's adaptation protocol is in `ecmeta_lib.agent_policies`; the checkpoint files in
`ecmeta_lib.checkpoints`.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .agent_policies import critic_rmse, make_policy
from .agents import ActionSpec, ContextBuffer, DiscreteSACAgent, NonFiniteLossError, ReplayBuffer
from .agents.sac import resolve_device
from .checkpoints import (
    BEST_AGENT,
    CHECKPOINT,
    CheckpointError,
    check_header,
    load_checkpoint,
    run_header,
    safe_save,
)
from .conditions import (
    DT_NAMES,
    TEST_NAMES,
    TaskSet,
    make_task_set,
    twin_sample_names,
    with_twin_samples,
)
from .env import EdgeCloudEnv
from .evaluation import CURVE_SEED, FINAL_SEED, HELDOUT_SEED, VALIDATION_SEED, evaluate
from .policies import identified_twins
from .profiles import Profile, get_profile, training_conditions
from .rollout import probe_action, random_slots, rollout

__all__ = ["CheckpointError", "NonFiniteLossError", "TrainResult", "Trainer", "critic_error",
           "train"]


# ============================================================================================
# training
# ============================================================================================
@dataclass
class TrainResult:
    """What `train` returns (the CSVs are also on disk in ``run_dir``)."""

    method: str
    seed: int
    run_dir: Path
    agent: DiscreteSACAgent
    """The best agent (by validation on its own training conditions)."""
    curve: pd.DataFrame
    train_log: pd.DataFrame
    final: pd.DataFrame
    best_iteration: int
    wall_s: float
    """Wall time of this call (a resumed run: the resumed part only)."""
    resumed_from: int
    """Iteration the run resumed from (0 = fresh start)."""


def _score(agent: DiscreteSACAgent, method: str, conditions: Sequence[str], task_set: TaskSet,
           profile: Profile, n_slots: int, seed: int, with_oracle: bool = False) -> list[dict]:
    out = []
    for name in conditions:
        pol = make_policy(agent, method, profile.eval_context)
        out.append(evaluate(pol, name, n_slots=n_slots, seed=seed, task_set=task_set,
                            config=profile.env, with_oracle=with_oracle).summary)
    return out


def critic_error(agent: DiscreteSACAgent, data: dict[str, np.ndarray],
                 n_context: int = 0) -> float:
    """RMS error (s) of the critics' per-user latency on the slots of `data` (PEARL: z is the
    posterior mean of the first ``n_context`` slots, scored on the rest); NaN without a per-user
    critic."""
    if not agent.cfg.critic.per_user_reward:
        return float("nan")
    z = agent.infer_z({k: v[:n_context] for k, v in data.items()}, sample=False)
    return critic_rmse(agent, z, {k: v[n_context:] for k, v in data.items()})


class Trainer:
    """One run of Algorithm 1, in the steps a reader can match to the paper:

    ``collect`` (lines 2-5: data in every training condition), ``sample_tasks`` (line 6: K'
    conditions, once per iteration), ``train_epochs`` (lines 7-19: T_train epochs of critic,
    encoder, temperature and actor updates), plus ``evaluate`` (learning curve, validation for
    early stopping, the critic's held-out error), ``save``/``restore`` (atomic, bit-exact resume)
    and ``finish`` (best agent, final.csv). `train` drives it."""

    def __init__(self, method: str, profile: Profile, seed: int, run_dir: Path, task_seed: int,
                 device: torch.device) -> None:
        self.method, self.profile, self.seed, self.run_dir = method, profile, seed, run_dir
        self.task_seed = task_seed
        # validation and the held-out critic error use `val_names`; training may add twin samples
        self.val_names = training_conditions(method)
        self.task_set = make_task_set(task_seed, profile.env.system, profile.env.conditions)
        self.names = self.val_names
        self.twin_errors: list[dict[str, float]] = []
        if profile.twin_telemetry_slots and self.val_names == DT_NAMES:  # identified twins
            self.task_set, self.twin_errors = identified_twins(
                self.task_set, profile.env, profile.twin_telemetry_slots)
        if profile.twin_samples and self.val_names == DT_NAMES:
            self.task_set = with_twin_samples(self.task_set, profile.twin_samples,
                                              profile.env.conditions)
            self.names = DT_NAMES + twin_sample_names(profile.twin_samples)
        # the same slots per iteration as on the six DTs, spread over all training conditions
        share = len(self.val_names) / len(self.names)
        self.steps = {k: math.ceil(getattr(profile, k) * share)
                      for k in ("collect_steps", "initial_random_steps", "context_steps")}
        # everything random derives from `seed`
        ss_agent, ss_train, ss_env = np.random.SeedSequence(seed).spawn(3)
        self.envs = {n: EdgeCloudEnv(condition=n, task_set=self.task_set, config=profile.env)
                     for n in self.names}
        for env, ss in zip(self.envs.values(), ss_env.spawn(len(self.names)), strict=True):
            env.reset(seed=int(ss.generate_state(1)[0]))
        self.spec = ActionSpec.from_env(next(iter(self.envs.values())))
        self.acfg = profile.agent_config(method)
        self.agent = DiscreteSACAgent(self.spec, self.acfg,
                                      seed=int(ss_agent.generate_state(1)[0]), device=device)
        self.agent.set_lr_horizon(profile.iterations * profile.t_train)
        self.rng = np.random.default_rng(ss_train)
        random.seed(seed)
        torch.manual_seed(seed)
        shape = (self.spec.n_users, len(self.spec.heads))
        self.replay = {n: ReplayBuffer(profile.buffer_capacity, self.spec.obs_dim, shape)
                       for n in self.names}
        self.ctxbuf = {n: ContextBuffer(profile.context_capacity, self.spec.obs_dim, shape)
                       for n in self.names}
        # K' of Algorithm 1; single-condition methods draw their one condition with K' times
        # the batch, so every method gets the same samples per gradient step
        self.k_prime = min(profile.k_prime, len(self.names))
        self.batch = profile.batch_size * profile.k_prime // self.k_prime
        self.iteration, self.env_steps = 0, 0
        self.best: dict[str, Any] = {"score": float("inf"), "iteration": 0, "state": None}
        self.curve_rows: list[dict] = []
        self.log_rows: list[dict] = []
        self._heldout: dict[str, dict[str, np.ndarray]] | None = None
        self.header = run_header(method, profile, seed, task_seed)

    # --- Algorithm 1 ----------------------------------------------------------------------
    def collect(self) -> None:
        """Lines 2-5: a fresh episode in every training condition; PEARL acts on z drawn from
        the posterior of a context of that condition (the prior before it has any data). With
        ``random_context`` PEARL's context buffer is filled by separate slots of its context probe
        (uniformly random actions, or the round-robin of ``context_probe``)."""
        p, agent = self.profile, self.agent
        random_ctx = agent.encoder is not None and agent.cfg.encoder.random_context
        for n in self.names:
            warm = len(self.replay[n]) < self.steps["initial_random_steps"]
            if random_ctx:
                self._episode(n, self.steps["context_steps"], None, explore=1.0,
                              to_context=True)
            z = None
            if agent.encoder is not None:
                ctx = (self.ctxbuf[n].sample_context(p.context_size, self.rng)
                       if len(self.ctxbuf[n]) else None)
                z = agent.infer_z(ctx, sample=True)
            if warm:
                self._episode(n, self.steps["initial_random_steps"], z, explore=1.0,
                              to_context=not random_ctx)
            else:
                self._episode(n, self.steps["collect_steps"], z, explore=p.explore_fraction,
                              to_context=not random_ctx)

    def _episode(self, name: str, n_steps: int, z: torch.Tensor | None, *, explore: float,
                 to_context: bool) -> None:
        """``n_steps`` slots on condition `name` into its replay (and context) buffer: the
        agent's sampled actions, each user's replaced by a uniformly random one with probability
        `explore` (1 = all random; PEARL's context slots then follow ``context_probe``)."""
        env = self.envs[name]
        nvec = env.action_space.nvec.reshape(self.spec.n_users, -1)
        bufs = (self.replay[name], self.ctxbuf[name]) if to_context else (self.replay[name],)

        probe, slot = self.agent.cfg.encoder.context_probe, iter(range(n_steps))

        def act(obs: np.ndarray) -> np.ndarray:
            if explore >= 1.0 and to_context and probe != "random":  # one probe run, as adapting
                return probe_action(next(slot), env, probe, self.rng)
            if explore >= 1.0:
                return self.rng.integers(0, nvec).astype(np.int64).ravel()
            action = self.agent.act(obs, z, greedy=False).reshape(nvec.shape)
            if explore > 0.0:
                swap = self.rng.random(self.spec.n_users) < explore
                action[swap] = self.rng.integers(0, nvec[swap]).astype(np.int64)
            return action.ravel()

        rollout(env, n_steps, act, buffers=bufs)
        self.env_steps += n_steps

    def sample_tasks(self) -> list[str]:
        """Line 6: the K' conditions of this iteration's epochs."""
        idx = self.rng.choice(len(self.names), size=self.k_prime, replace=False)
        return [self.names[i] for i in idx]

    def _context_size(self) -> int:
        p = self.profile
        if p.context_size_sampling:  # ours: the small contexts of adaptation are in distribution
            return int(self.rng.integers(1, p.context_size + 1))
        return p.context_size

    def train_epochs(self, chosen: Sequence[str]) -> dict[str, float]:
        """Lines 7-19: T_train epochs, each on a fresh batch (and context) of every chosen
        condition; returns the epochs' mean diagnostics."""
        p, agent, diags = self.profile, self.agent, []
        for epoch in range(1, p.t_train + 1):
            batches = [self.replay[n].sample(self.batch, self.rng) for n in chosen]
            contexts = None
            if agent.encoder is not None:
                contexts = [self.ctxbuf[n].sample_context(self._context_size(), self.rng)
                            for n in chosen]
            try:
                diags.append(agent.update(batches, contexts, epoch, p.lambda1, p.lambda2))
            except NonFiniteLossError as exc:
                raise NonFiniteLossError(
                    f"{self.method} seed {self.seed}, iteration {self.iteration}, epoch {epoch}: "
                    f"{exc}; the last good checkpoint ({self.run_dir / CHECKPOINT}) is kept"
                ) from exc
        return pd.DataFrame(diags).mean(numeric_only=True).to_dict()

    # --- evaluation ----------------------------------------------------------------------
    def heldout(self) -> dict[str, dict[str, np.ndarray]]:
        """Random-action slots per training condition that training never sees (its own seed)."""
        if self._heldout is None:
            p = self.profile
            n = p.heldout_slots + (p.eval_context if self.agent.encoder is not None else 0)
            self._heldout = {
                name: random_slots(EdgeCloudEnv(condition=name, task_set=self.task_set,
                                                 config=p.env), n, HELDOUT_SEED)
                for name in self.val_names}
        return self._heldout

    def critic_rmse(self) -> float:
        """The critic's per-user latency RMS error (s) on the held-out slots of the training
        conditions (PEARL: z from the first ``eval_context`` of them)."""
        n_ctx = self.profile.eval_context if self.agent.encoder is not None else 0
        errs = [critic_error(self.agent, d, n_ctx) ** 2 for d in self.heldout().values()]
        return float(np.sqrt(np.mean(errs)))

    def evaluate(self) -> None:
        """The learning curve on T1-T3 (recorded only) and the validation on the agent's own
        training conditions (selects the best weights: no test leakage)."""
        p, it = self.profile, self.iteration
        self.score_curve()
        val = _score(self.agent, self.method, self.val_names, self.task_set, p, p.val_slots,
                     VALIDATION_SEED)
        score = float(np.mean([s["mean_latency_s"] for s in val]))
        self.log_rows[-1]["validation_latency_s"] = score
        self.log_rows[-1]["critic_rmse_s"] = self.critic_rmse()
        if score < self.best["score"]:
            self.best = {"score": score, "iteration": it,
                         "state": {k: v.detach().cpu().clone()
                                   for k, v in self.agent.state_dict().items()}}

    def score_curve(self) -> None:
        """One point of the learning curve: the greedy policy on T1-T3 (``eval_slots`` slots
        from `CURVE_SEED`), recorded, never used to choose anything."""
        p, it = self.profile, self.iteration
        for s in _score(self.agent, self.method, TEST_NAMES, self.task_set, p, p.eval_slots,
                        CURVE_SEED):
            self.curve_rows.append({"method": self.method, "seed": self.seed,
                                    "env_steps": self.env_steps, "iteration": it,
                                    "condition": s["condition"],
                                    "mean_latency_s": s["mean_latency_s"],
                                    "cloud_share": s["cloud_share"],
                                    "accuracy_violation_rate": s["accuracy_violation_rate"]})

    # --- persistence ---------------------------------------------------------------------
    def save(self) -> None:
        safe_save({**self.header, "iteration": self.iteration, "env_steps": self.env_steps,
                     "agent": self.agent.full_state(),
                     "replay": {n: b.state_dict() for n, b in self.replay.items()},
                     "context": {n: b.state_dict() for n, b in self.ctxbuf.items()},
                     "env_rng": {n: e.np_random.bit_generator.state
                                 for n, e in self.envs.items()},
                     "rng": self.rng.bit_generator.state, "python_rng": random.getstate(),
                     "torch_rng": torch.get_rng_state(), "best": self.best,
                     "curve": self.curve_rows, "train_log": self.log_rows},
                    self.run_dir / CHECKPOINT)

    def restore(self) -> None:
        """Resume from ``run_dir/checkpoint.pt`` if it exists (refusing another run's)."""
        path = self.run_dir / CHECKPOINT
        if not path.exists():
            return
        state = load_checkpoint(path)
        check_header(state, path, self.method, self.profile, self.seed, self.task_seed)
        try:
            self.agent.load_full_state(state["agent"])
            for n in self.names:
                self.replay[n].load_state_dict(state["replay"][n])
                self.ctxbuf[n].load_state_dict(state["context"][n])
                self.envs[n].np_random.bit_generator.state = state["env_rng"][n]
            self.rng.bit_generator.state = state["rng"]
            random.setstate(state["python_rng"])
            torch.set_rng_state(state["torch_rng"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this run: {exc}") from exc
        self.iteration, self.env_steps = state["iteration"], state["env_steps"]
        self.best, self.curve_rows = state["best"], state["curve"]
        self.log_rows = state["train_log"]

    def write_csvs(self) -> None:
        pd.DataFrame(self.curve_rows, columns=CURVE_COLUMNS).to_csv(self.run_dir / "curve.csv",
                                                                    index=False)
        pd.DataFrame(self.log_rows).to_csv(self.run_dir / "train_log.csv", index=False)
        if self.twin_errors:
            pd.DataFrame(self.twin_errors).to_csv(self.run_dir / "twin_errors.csv", index=False)

    def finish(self) -> pd.DataFrame:
        """Best agent -> agent.pt; its greedy policy on T1-T3 with the oracle -> final.csv."""
        agent = self.agent
        if self.best["state"] is not None:
            agent.load_state_dict(self.best["state"])
        safe_save({"method": self.method, "seed": self.seed, "task_seed": self.task_seed,
                     "spec": self.spec, "agent_config": self.acfg, "profile": self.profile,
                     "best_iteration": self.best["iteration"],
                     "model": {k: v.detach().cpu() for k, v in agent.state_dict().items()}},
                    self.run_dir / BEST_AGENT)
        rmse = self.critic_rmse()
        rows = [{**s, "method": self.method, "seed": self.seed,
                 "best_iteration": self.best["iteration"], "env_steps": self.env_steps,
                 "critic_rmse_s": rmse}
                for s in _score(agent, self.method, TEST_NAMES, self.task_set, self.profile,
                                self.profile.final_slots, FINAL_SEED, with_oracle=True)]
        final = pd.DataFrame(rows)
        final.to_csv(self.run_dir / "final.csv", index=False)
        self.write_csvs()
        return final


def train(method: str, profile: str | Profile, seed: int, run_dir: str | os.PathLike, *,
          task_seed: int = 0, device: str = "auto", progress: bool = True,
          num_threads: int | None = 1,
          hook: Callable[[int, DiscreteSACAgent], None] | None = None) -> TrainResult:
    """Train `method` under `profile` with `seed`; resumable from ``run_dir/checkpoint.pt``.

    Args:
        method: one of `METHODS`.
        profile: a profile name or a `Profile`.
        seed: training seed (networks, exploration, buffer sampling, collection env streams).
        run_dir: folder of the run (created); an existing checkpoint of the same run is resumed,
            one of another run is refused (`CheckpointError`).
        task_seed: seed of the task set (system, DTs, test conditions).
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        progress: show a tqdm progress bar.
        num_threads: torch CPU threads for this process (None: leave as is).
        hook: called as ``hook(iteration, agent)`` after each iteration (after its checkpoint);
            tests use it to interrupt a run. Not part of the run's identity.
    Writes ``curve.csv``, ``train_log.csv`` (per iteration: losses, temperature, entropy, KL;
    at evaluation points the validation latency and the critic's held-out per-user latency
    RMS error ``critic_rmse_s``), ``final.csv``, ``agent.pt`` (best agent) and
    ``checkpoint.pt`` in `run_dir`. Raises `NonFiniteLossError` on a NaN/inf loss (the last good
    checkpoint stays on disk).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    profile = get_profile(profile)
    training_conditions(method)  # refuses an unknown method before any work
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = Trainer(method, profile, int(seed), run_dir, int(task_seed), resolve_device(device))
    run.restore()
    start_iter = run.iteration
    if start_iter == 0 and 0 in profile.curve_iterations:  # the untrained policy
        run.score_curve()
    bar = tqdm(total=profile.iterations, initial=start_iter, desc=f"{method} s{seed}",
               disable=not progress, leave=False)
    try:
        for it in range(start_iter + 1, profile.iterations + 1):
            run.iteration = it
            run.collect()
            diag = run.train_epochs(run.sample_tasks())
            run.log_rows.append({"iteration": it, "env_steps": run.env_steps, **diag})
            if it % profile.eval_every == 0 or it == profile.iterations:
                run.evaluate()
                run.write_csvs()
                bar.set_postfix(val=f"{run.log_rows[-1]['validation_latency_s']:.4f}",
                                best=f"{run.best['score']:.4f}")
            elif it in profile.curve_iterations:
                run.score_curve()
            if it % profile.checkpoint_every == 0 or it == profile.iterations:
                run.save()
            bar.update(1)
            if hook is not None:
                hook(it, run.agent)
    finally:
        bar.close()
    final = run.finish()
    return TrainResult(method=method, seed=int(seed), run_dir=run_dir, agent=run.agent,
                       curve=pd.DataFrame(run.curve_rows, columns=CURVE_COLUMNS),
                       train_log=pd.DataFrame(run.log_rows), final=final,
                       best_iteration=run.best["iteration"], wall_s=time.perf_counter() - t0,
                       resumed_from=start_iter)


CURVE_COLUMNS = ["method", "seed", "env_steps", "iteration", "condition", "mean_latency_s",
                 "cloud_share", "accuracy_violation_rate"]


