"""How accurate can the learner's critic get on its own? (a diagnostic, validation task seeds only)

Trains the critic of a profile's SAC_AiSF agent as a plain supervised regressor: ``--slots``
slots of uniformly random actions on one condition are collected up front, then ``--steps``
calls of the agent's own `update` (K' x batch_size slots each, the profile's learning-rate
schedule; the actor and temperature step at their cadence but play no part in the critic's
loss) and prints the critic's per-user latency RMS error on 100 held-out random-action slots
(the same measure as ``critic_rmse_s`` in train_log.csv). Neither the policy's data nor its
progressive arrival is involved, so this isolates what the network, its inputs and its
optimiser can do; `tune` makes the choice on whole runs.

    python tools/critic_probe.py --task-seed 102 --set agent.tau_zscore=False,True

Only task seeds >= 100 are accepted (as with `tune`): nothing is tuned on reported conditions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ecmeta_lib.agents import ActionSpec, DiscreteSACAgent
from ecmeta_lib.conditions import make_task_set
from ecmeta_lib.env import EdgeCloudEnv
from ecmeta_lib.evaluation import HELDOUT_SEED
from ecmeta_lib.profiles import get_profile
from ecmeta_lib.rollout import random_slots
from ecmeta_lib.training import critic_error
from ecmeta_lib.tuning import MIN_VALIDATION_TASK_SEED, apply_overrides, parse_overrides


def probe(overrides: dict, *, task_seed: int, condition: str, slots: int, steps: int,
          seed: int = 0, profile: str = "quick") -> list[tuple[int, float, float]]:
    """(step, held-out RMS error in s, training-slot RMS error in s) at four points of the run."""
    prof = apply_overrides(get_profile(profile), overrides)
    task_set = make_task_set(task_seed, prof.env.system, prof.env.conditions)
    env = EdgeCloudEnv(condition=condition, task_set=task_set, config=prof.env)
    data = random_slots(env, slots, seed + 1)
    held = random_slots(env, 100, HELDOUT_SEED)
    agent = DiscreteSACAgent(ActionSpec.from_env(env), prof.agent_config("sac_aisf_1"), seed=seed)
    agent.set_lr_horizon(steps)
    rng = np.random.default_rng(seed)
    seen = {k: v[:200] for k, v in data.items()}
    out = []
    for step in range(1, steps + 1):
        batches = [{k: v[idx] for k, v in data.items()}
                   for idx in (rng.integers(0, slots, prof.batch_size)
                               for _ in range(prof.k_prime))]
        agent.update(batches, None, step, prof.lambda1, prof.lambda2)
        if step % max(steps // 4, 1) == 0:
            out.append((step, critic_error(agent, held), critic_error(agent, seen)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--task-seed", type=int, default=102)
    ap.add_argument("--condition", default="T1")
    ap.add_argument("--slots", type=int, default=4000)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=V1[,V2...]",
                    help="profile field (or agent.FIELD) and its candidate values; repeatable")
    args = ap.parse_args()
    if args.task_seed < MIN_VALIDATION_TASK_SEED:
        ap.error(f"--task-seed must be >= {MIN_VALIDATION_TASK_SEED} (validation task seeds)")
    torch.set_num_threads(args.threads)
    for overrides in parse_overrides(args.set):
        label = " ".join(f"{k}={v}" for k, v in overrides.items()) or "(base)"
        t = time.perf_counter()
        for step, held, seen in probe(overrides, task_seed=args.task_seed,
                                      condition=args.condition, slots=args.slots,
                                      steps=args.steps, profile=args.profile):
            print(f"{label} | step {step}: held-out {1e3 * held:.2f} ms, training slots "
                  f"{1e3 * seen:.2f} ms ({time.perf_counter() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
