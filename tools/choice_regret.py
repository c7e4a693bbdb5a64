"""How good are a trained agent's per-user choices, and its critic's? (a diagnostic)

For ``--slots`` slots of one condition (PEARL: z from ``--context`` transitions collected as in
adaptation), every user's latency under each of its joint (DS, TA, MS) actions is computed
exactly by the slot model (accuracy repair included, the servers' capacity ignored), and the
agent's choices are scored against each user's best one:

* ``critic RMSE``: the critic's per-user latency error over *all* joint actions (s);
* ``critic-argmin regret`` / ``actor regret``: mean latency of each user's critic-argmin / actor
  choice over the mean of the best choices, minus 1.

Capacity is ignored, so the regrets are against a bound no policy reaches; compare them between
agents and conditions, not with the gaps to the oracle.

    python tools/choice_regret.py results/quick/pearl-s0-<hash> --condition T1 --task-seed 0
    python tools/choice_regret.py <pearl run> --condition T1 G1 --task-seed 102 --context 0 20 100
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ecmeta_lib.agent_policies import collect_context
from ecmeta_lib.agents.networks import n_joint_actions, split_joint_index
from ecmeta_lib.checkpoints import load_agent
from ecmeta_lib.conditions import make_task_set
from ecmeta_lib.config import EnvConfig
from ecmeta_lib.env import EdgeCloudEnv
from ecmeta_lib.policies import CONTEXT_SEED
from ecmeta_lib.slot import outcome_of, repair


def choice_regret(run_dir: str, condition: str, task_seed: int, *, slots: int = 40,
                  context: int = 20, seed: int = 123) -> dict[str, float]:
    agent = load_agent(run_dir)
    # the run's own system (a test may shrink it), not the default one
    cfg = agent.profile.env if agent.profile is not None else EnvConfig()
    task_set = make_task_set(task_seed, cfg.system, cfg.conditions)
    env = EdgeCloudEnv(condition=condition, task_set=task_set, config=cfg)
    z = None
    if agent.encoder is not None:
        ctx_env = EdgeCloudEnv(condition=condition, task_set=task_set, config=cfg)
        z = agent.infer_z(collect_context(agent, ctx_env, context, CONTEXT_SEED), sample=False)
    # every joint (DS, TA, MS) action in the critic's output order
    joint = split_joint_index(torch.arange(n_joint_actions(agent.spec)), agent.spec).numpy()
    n_servers, n_models = cfg.system.n_servers, cfg.system.n_models
    obs, _ = env.reset(seed=seed)
    sq, reg_c, reg_a = [], [], []
    for _ in range(slots):
        table = env.option_table
        u = np.arange(table.accuracy_req.shape[0])
        true = np.stack([outcome_of(table, *repair(table, *(np.full(u.size, a) for a in act)),
                                    n_servers, n_models, u).latency for act in joint], axis=1)
        o = torch.as_tensor(obs, dtype=torch.float32).reshape(1, -1)
        zz = None if z is None else z.unsqueeze(0)
        with torch.no_grad():
            raw = agent.critics[0].values(o, None, zz)[0]
            pred = (-agent.user_values(raw) / agent.cfg.critic.reward_scale).numpy()
            choice = agent.actor(o, zz)[0].argmax(-1).numpy()
        best = true.min(axis=1).mean()
        sq.append(((pred - true) ** 2).mean())
        reg_c.append(true[u, pred.argmin(axis=1)].mean() / best - 1)
        reg_a.append(true[u, choice].mean() / best - 1)
        obs, *_ = env.step(joint[choice].ravel())
    return {"critic_rmse_s": float(np.sqrt(np.mean(sq))),
            "critic_argmin_regret_pct": 100 * float(np.mean(reg_c)),
            "actor_regret_pct": 100 * float(np.mean(reg_a))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dirs", nargs="+")
    ap.add_argument("--condition", nargs="+", default=["T1"])
    ap.add_argument("--task-seed", type=int, default=0)
    ap.add_argument("--slots", type=int, default=40)
    ap.add_argument("--context", type=int, nargs="+", default=[20],
                    help="PEARL: context sizes n to infer z from (a larger n separates what the "
                         "encoder cannot infer from what the critic cannot fit)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for run in args.run_dirs:
        for cond, n in ((c, n) for c in args.condition for n in args.context):
            r = choice_regret(run, cond, args.task_seed, slots=args.slots, context=n)
            print(f"{run} {cond} n={n}: critic RMSE over all options "
                  f"{1000 * r['critic_rmse_s']:.1f} ms, "
                  f"regret (capacity ignored) critic-argmin {r['critic_argmin_regret_pct']:.1f} %, "
                  f"actor {r['actor_regret_pct']:.1f} %")


if __name__ == "__main__":
    main()
