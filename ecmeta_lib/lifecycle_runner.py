"""The lifecycle experiment: every controller over the same upgrade stream, scored slot by slot.

``python -m ecmeta_lib lifecycle --profile P --scenario-seed N --seeds 0 1 2`` (or
`run_lifecycle`) first makes sure the grid's PEARL and SAC_DT runs of those seeds exist (the
grid's own cache and executors: trained if missing, reused if done), then runs one job per
(scenario seed, controller, seed) through the same executors (a local process pool or one Ray
task per job), and writes::

    results/<profile>/lifecycle/<scenario id>/oracle.csv     the optimum per slot, solve time
                  .../<scenario id>/trace-<controller>-s<seed>.csv.gz      per-slot traces
    results/<profile>/lifecycle/lifecycle.csv     stream metrics per controller, seed, scenario

A job writes its trace atomically when the stream ends and is skipped when the trace exists, so a
killed command loses only the streams under way and a rerun gives the same numbers (every
controller is seeded; the stream is fixed by the scenario seed). ``lifecycle.csv`` is rebuilt
from the traces at the end. The scenario id hashes the scenario (task set, scenario config,
scenario seed) and the profile of the learned controllers.

Controllers (`CONTROLLERS`; only the informed greedy and the oracle read the true condition):
``greedy`` (informed), ``random``, ``blind_greedy`` (greedy on the mean of the twins),
``identify_greedy`` (`lifecycle.LiveIdentifyGreedy`: re-synchronised from live telemetry after
each announced upgrade), ``pearl_online`` (`lifecycle_controllers.PEARLOnline`, no gradient
step), ``sac_dt`` (meta-trained on the twins, never adapting), ``sac_retrain`` and
``sac_finetune`` (`lifecycle_controllers.SACOnline`, learning on the live stream with the
learner's budget per slot). The deterministic heuristics have no seed: one trace per scenario.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from . import executors
from .cache import digest, profile_payload, write_csv
from .conditions import make_task_set
from .detection import detection_metrics
from .lifecycle import LiveIdentifyGreedy, get_scenario_config, make_scenario
from .lifecycle_scoring import score_stream, stream_metrics
from .profiles import get_profile

CONTROLLERS: tuple[str, ...] = ("greedy", "random", "blind_greedy", "identify_greedy",
                                "identify_greedy_detect", "pearl_online", "pearl_online_detect",
                                "pearl_online_twin_detect", "pearl_continual", "sac_dt",
                                "sac_retrain", "sac_finetune")
SEEDLESS = ("greedy", "blind_greedy", "identify_greedy", "identify_greedy_detect")
DETECTING = ("identify_greedy_detect", "pearl_online_detect", "pearl_online_twin_detect")
"""Controllers on the unannounced stream: they find the upgrades themselves
(`detection.CusumDetector`)."""
CUSUM = {"identify_greedy_detect": dict(k=1.0, h=8.0, min_sd=0.05, warmup=10),
         "pearl_online_detect": dict(k=1.0, h=20.0, min_sd=0.1, warmup=5, track=True),
         "pearl_online_twin_detect": dict(k=1.0, h=12.0, min_sd=0.05, warmup=10)}
"""The detectors, chosen on validation scenario seed 100 (`docs/tuning/detection_cusum.csv`):
the fewest false alarms, on the stream and on an upgrade-free one, whose stream gap stays within
0.2 points of the announced controller's. The twin's residual is exact once identified: a
reference frozen after 10 residuals (k 1, h 8, sd floor 0.05: median delay 2 slots, 5 of 369
upgrades missed, no false alarm). The critic's residual errs by ~10 % and drifts as PEARL's
posterior keeps sharpening: frozen references raise 22-70 false alarms per 1,000 slots, so its
reference is the running mean of all its unflagged residuals (k 1, h 20, floor 0.1: 0-1.3 false
alarms, median delay ~23 slots, about half the upgrades missed - its accumulating posterior
follows the rest; an exponentially weighted reference missed 98 % and lost 3-5 points). PEARL
online with the twin's residual (`PEARLOnline(residual="twin")`: its probes are the identifying
greedy's, so its twin is identified as fast) starts from the identifying greedy's detector;
on scenario seed 100 (`docs/tuning/detection_twin_pearl.csv`, 3 seeds) h 8 raised 1.25 false
alarms per 1,000 slots, h 12 0.14 (delay 3 slots instead of 2, 5-7 of 369 upgrades missed,
stream gap 12.61 % against 12.77 % announced): h 12."""
STATIC_SLOTS = 1000
"""Slots of the upgrade-free stream on which a detector's false alarms are also counted."""
"""Deterministic controllers: one trace per scenario, the same for every seed."""
LEARNED = ("pearl", "sac_dt")
"""The grid's methods the lifecycle's learned controllers start from."""
PEARL_CONTEXT = 9
"""Probe slots per user and restart of PEARL online: one round-robin cycle over the |F| x |M|
(model, quality) pairs. With ``accumulate`` and the round-robin probe, chosen on validation
scenario seeds 100 and 101 (3 seeds each; `docs/tuning/lifecycle_pearl_online.csv`): stream gap
+13.3 % against +13.7 % (random probes, accumulating), +16.2 % (random, frozen after 9: the
static protocol), +17.5 % (round robin, frozen after 20) and +15.8 % (random, 20, accumulating);
+30 % over the first 20 slots after an upgrade against +38 to +68 %."""
PEARL_PROBE = "round_robin"
PEARL_ACCUMULATE = True
IDENTIFY_CONTEXT = 9
"""Live context slots of the identifying greedy (|F| x |M|: every (model, quality) pair)."""


LIFECYCLE_SILENT = ("curve_iterations", "adaptation_probe")
"""Profile and agent fields left out of a scenario's key: the extra learning-curve points change
no weight (tested) and PEARL online probes with its own `PEARL_PROBE`, so streams cached before
those fields existed stay valid."""


def scenario_dir(profile: str, scenario_seed: int, task_seed: int,
                 results_root: Path | str) -> Path:
    """The folder of one scenario's traces."""
    prof = profile_payload(get_profile(profile))
    for name in LIFECYCLE_SILENT:  # fields the running system never reads
        prof.pop(name, None)
        prof["agent"].pop(name, None)
    scen = get_scenario_config(profile)
    payload = {"profile": prof, "scenario": scen, "scenario_seed": scenario_seed,
               "task_seed": task_seed}
    if get_profile(profile).env.conditions.source != "uniform":
        # an event announces the users whose models changed (a catalogue AiSF may have no newer
        # model): on uniform streams every drawn user changes, so their keys stay as they were
        payload["announced"] = "changed users"
    key = digest(payload)
    return Path(results_root) / profile / "lifecycle" / f"scn{scenario_seed}-t{task_seed}-{key}"


def _make_controller(name: str, seed: int, profile: str, task_seed: int, results_root: str,
                     env_config: Any) -> Any:
    """The controller `name` for training seed `seed` (learned ones load the grid's agents)."""
    from .policies import BlindGreedyPolicy, GreedyPolicy, RandomPolicy

    if name == "greedy":
        return GreedyPolicy()
    if name == "random":
        return RandomPolicy(seed=seed)
    if name == "blind_greedy":
        return BlindGreedyPolicy()
    detector = None
    if name in DETECTING:
        from .detection import CusumDetector

        detector = CusumDetector(env_config.system.n_users, **CUSUM[name])
    if name in ("identify_greedy", "identify_greedy_detect"):
        return LiveIdentifyGreedy(IDENTIFY_CONTEXT, detector=detector, name=name)
    import torch

    from .agent_policies import AgentPolicy
    from .agents import ActionSpec
    from .checkpoints import load_agent
    from .env import EdgeCloudEnv
    from .lifecycle_controllers import PEARLOnline, SACOnline
    from .runner import RunSpec

    torch.set_num_threads(1)

    def trained(method: str) -> Any:
        run = RunSpec(method, seed, profile, task_seed).run_dir(results_root)
        return load_agent(run)

    if name in ("pearl_online", "pearl_online_detect", "pearl_online_twin_detect"):
        return PEARLOnline(trained("pearl"), PEARL_CONTEXT, probe=PEARL_PROBE,
                           accumulate=PEARL_ACCUMULATE, seed=seed, detector=detector,
                           residual="twin" if name == "pearl_online_twin_detect" else "critic",
                           name=name)
    if name == "pearl_continual":
        return _continual(trained("pearl"), seed, profile, task_seed, env_config, name)
    if name == "sac_dt":
        return AgentPolicy(trained("sac_dt"), name=name)
    prof = get_profile(profile)
    spec = ActionSpec.from_env(EdgeCloudEnv(config=env_config))
    # the learner's budget: its gradient steps per collected slot in training, K' x batch each
    per_slot = max(1, round(prof.iterations * prof.t_train
                            / (prof.iterations * prof.collect_steps + prof.initial_random_steps)))
    common = dict(seed=seed, updates_per_slot=per_slot, batch=prof.k_prime * prof.batch_size,
                  warmup=prof.initial_random_steps, lambda1=prof.lambda1, lambda2=prof.lambda2,
                  buffer_capacity=prof.buffer_capacity, name=name)
    if name == "sac_retrain":
        # eager update: a compiled one would recompile at every restart (same algorithm)
        cfg = prof.agent_config("sac_aisf_1").with_(compiled_update=False)
        return SACOnline(spec, cfg, mode="retrain", **common)
    if name == "sac_finetune":
        dt = trained("sac_dt")
        return SACOnline(spec, dt.cfg.with_(compiled_update=False), mode="finetune",
                         init_state=dt.state_dict(), **common)
    raise ValueError(f"unknown controller {name!r}; choose from {', '.join(CONTROLLERS)}")


def _scenario(profile: str, scenario_seed: int, task_seed: int, *,
              n_slots: int | None = None) -> Any:
    """The profile's stream of `scenario_seed`; with `n_slots`, an upgrade-free one that long
    (the same user-state stream)."""
    prof = get_profile(profile)
    cfg = get_scenario_config(profile)
    if n_slots is not None:
        cfg = replace(cfg, n_slots=n_slots, min_gap_slots=n_slots + 1,
                      mean_interarrival_slots=n_slots + 1.0)
    task_set = make_task_set(task_seed, prof.env.system, prof.env.conditions)
    return make_scenario(task_set, scenario_seed, cfg, condition_config=prof.env.conditions)


def _continual(meta: Any, seed: int, profile: str, task_seed: int, env_config: Any,
               name: str) -> Any:
    """PEARL online with a twin pool that grows: the six DTs and the profile's twin samples
    first, then a twin identified after each upgrade; the meta-policy (an eager copy of the
    grid's agent) re-meta-trains on it with `twin_pool.ContinualConfig`'s budget."""
    from .agents import DiscreteSACAgent
    from .conditions import DT_NAMES, twin_sample_names, with_twin_samples
    from .twin_pool import ContinualConfig, PEARLContinual, TwinPool

    prof = get_profile(profile)
    agent = DiscreteSACAgent(meta.spec, meta.cfg.with_(compiled_update=False), seed=seed)
    agent.load_state_dict(meta.state_dict())
    cfg = ContinualConfig(k_prime=prof.k_prime, batch=prof.batch_size, context=prof.context_size,
                          lambda1=prof.lambda1, lambda2=prof.lambda2)
    task_set = with_twin_samples(make_task_set(task_seed, prof.env.system, prof.env.conditions),
                                 prof.twin_samples, prof.env.conditions)
    pool = TwinPool(task_set, env_config, cfg, seed=seed)
    for n in (*DT_NAMES, *twin_sample_names(prof.twin_samples)):
        pool.add(n, task_set[n])
    return PEARLContinual(agent, pool, cfg, n_context=PEARL_CONTEXT, probe=PEARL_PROBE,
                          accumulate=PEARL_ACCUMULATE, seed=seed, name=name)


def controller_seeds(controller: str, seeds: Sequence[int]) -> list[int]:
    """The seeds a controller runs on: all of them, or the first for a seedless one."""
    return [seeds[0]] if controller in SEEDLESS else list(seeds)


def stream_file(folder: Path, kind: str, controller: str, seed: int) -> Path:
    """A controller's file in a stream's folder: ``kind`` "trace" (per-slot, gzipped CSV),
    "detections" (a detector's flags) or "twins" (the growing pool's twins)."""
    tag = "" if controller in SEEDLESS else f"-s{seed}"
    return folder / f"{kind}-{controller}{tag}.csv{'.gz' if kind == 'trace' else ''}"


def _job(profile: str, scenario_seed: int, task_seed: int, controller: str, seed: int,
         results_root: str) -> dict[str, Any]:
    """One controller over one stream; returns where its trace is. Idempotent."""
    prof = get_profile(profile)
    folder = scenario_dir(profile, scenario_seed, task_seed, results_root)
    out = stream_file(folder, "trace", controller, seed)
    if out.exists():
        return {"trace": str(out), "wall_s": float("nan"), "grad_steps": float("nan")}
    scenario = _scenario(profile, scenario_seed, task_seed)
    oracle = pd.read_csv(folder / "oracle.csv")["oracle_latency_s"].to_numpy()
    policy = _make_controller(controller, seed, profile, task_seed, results_root, prof.env)
    t0 = time.perf_counter()
    trace = score_stream(policy, scenario, config=prof.env, oracle_latency=oracle,
                         announce=controller not in DETECTING)
    wall = time.perf_counter() - t0
    trace["grad_steps"] = int(getattr(policy, "grad_steps", 0))
    trace["wall_s"] = wall
    if hasattr(policy, "twin_errors"):  # the growing twin pool: each new twin's error
        write_csv(stream_file(folder, "twins", controller, seed),
                  pd.DataFrame(policy.twin_errors))
    if controller in DETECTING:  # its flags, and its false alarms on an upgrade-free stream
        write_csv(stream_file(folder, "detections", controller, seed),
                  pd.DataFrame(policy.detections, columns=["slot", "user"]))
        calm = _scenario(profile, scenario_seed, task_seed, n_slots=STATIC_SLOTS)
        quiet = _make_controller(controller, seed, profile, task_seed, results_root, prof.env)
        score_stream(quiet, calm, config=prof.env, announce=False, with_oracle=False)
        trace["static_false_alarms_per_1000"] = 1000.0 * len(quiet.detections) / STATIC_SLOTS
    write_csv(out, trace.drop(columns=["oracle_ms"]), compression="gzip")
    return {"trace": str(out), "wall_s": wall, "grad_steps": trace["grad_steps"].iloc[0]}


def oracle_trace(profile: str, scenario_seed: int, task_seed: int,
                 results_root: Path | str) -> pd.DataFrame:
    """The per-slot optimum of one stream and its solve time (cached in ``oracle.csv``)."""
    from .policies import GreedyPolicy

    folder = scenario_dir(profile, scenario_seed, task_seed, results_root)
    path = folder / "oracle.csv"
    if path.exists():
        return pd.read_csv(path)
    prof = get_profile(profile)
    scenario = _scenario(profile, scenario_seed, task_seed)
    trace = score_stream(GreedyPolicy(), scenario, config=prof.env)  # solves every slot, timed
    out = trace[["slot", "segment", "upgrade", "oracle_latency_s", "oracle_ms"]]
    write_csv(path, out)
    return out


def run_lifecycle(profile: str, scenario_seeds: Sequence[int], seeds: Sequence[int], *,
                  task_seed: int = 0, controllers: Sequence[str] = CONTROLLERS,
                  results_root: Path | str = "results", workers: int = 1,
                  executor: str = "local", address: str | None = None,
                  progress: bool = True) -> pd.DataFrame:
    """Run every (scenario seed, controller, seed) not done yet; write and return lifecycle.csv.

    The learned controllers' grid runs (PEARL, SAC_DT of `seeds`) are trained first if missing
    (`runner.run_grid`, same cache and executor)."""
    from .runner import run_grid

    unknown = [c for c in controllers if c not in CONTROLLERS]
    if unknown:
        raise ValueError(f"unknown controller(s) {unknown}; choose from {', '.join(CONTROLLERS)}")
    get_scenario_config(profile)
    if any(c in ("pearl_online", "sac_dt", "sac_finetune") for c in controllers):
        run_grid(profile, LEARNED, seeds, task_seed=task_seed, results_root=results_root,
                 workers=workers, executor=executor, address=address, progress=progress)
    for s in scenario_seeds:
        oracle_trace(profile, s, task_seed, results_root)
    jobs = []
    for s in scenario_seeds:
        for c in controllers:
            for seed in controller_seeds(c, seeds):
                args = (profile, int(s), int(task_seed), c, int(seed), str(results_root))
                jobs.append(executors.Job(key=f"scn{s}/{c}/s{seed}", args=args))
    done = []

    def on_done(job: executors.Job, result: dict[str, Any]) -> None:
        done.append(job.key)
        if progress:
            print(f"[lifecycle] {job.key} done ({len(done)}/{len(jobs)})", flush=True)

    if executor == "ray":
        executors.run_ray(_job, jobs, results_root=results_root,
                          resources=executors.task_resources("cpu", 1), address=address,
                          num_cpus=workers, on_done=on_done)
    else:
        executors.run_local(_job, jobs, workers=max(1, workers), on_done=on_done)
    return lifecycle_table(profile, scenario_seeds, seeds, task_seed=task_seed,
                           controllers=controllers, results_root=results_root)


def lifecycle_table(profile: str, scenario_seeds: Sequence[int], seeds: Sequence[int], *,
                    task_seed: int = 0, controllers: Sequence[str] = CONTROLLERS,
                    results_root: Path | str = "results", write: bool = True) -> pd.DataFrame:
    """The metrics of every finished trace of `scenario_seeds` (`lifecycle.stream_metrics`), one
    row per controller, seed and scenario seed; the oracle's own decision time as the row
    ``oracle``. Merged into ``results/<profile>/lifecycle/lifecycle.csv`` (atomically; the rows
    of other scenario seeds and of the controllers not asked for stay) unless
    ``write=False``."""
    rows = []
    for s in scenario_seeds:
        folder = scenario_dir(profile, s, task_seed, results_root)
        orc_path = folder / "oracle.csv"
        if not orc_path.exists():
            continue
        orc = pd.read_csv(orc_path)
        rows.append({"method": "oracle", "seed": -1, "scenario_seed": s, "task_seed": task_seed,
                     "stream_gap_pct": 0.0, "regret_s": 0.0,
                     "mean_latency_s": float(orc["oracle_latency_s"].mean()),
                     "decision_ms_p50": float(orc["oracle_ms"].median()),
                     "decision_ms_p99": float(orc["oracle_ms"].quantile(0.99)),
                     "n_upgrades": float(orc["upgrade"].sum())})
        for c in controllers:
            for seed in controller_seeds(c, seeds):
                path = stream_file(folder, "trace", c, seed)
                if not path.exists():
                    continue
                trace = pd.read_csv(path)
                m = stream_metrics(trace)
                det = {}
                if c in DETECTING:
                    flags = pd.read_csv(stream_file(folder, "detections", c, seed))
                    scen = _scenario(profile, s, task_seed)
                    det = {**detection_metrics(scen.events, flags, scen.n_slots,
                                               scen.condition_at(0).n_users),
                           "static_false_alarms_per_1000":
                               float(trace["static_false_alarms_per_1000"].iloc[0])}
                rows.append({"method": c, "seed": -1 if c in SEEDLESS else seed,
                             "scenario_seed": s, "task_seed": task_seed, **m.summary, **det,
                             "grad_steps": int(trace["grad_steps"].iloc[0]),
                             "wall_s": float(trace["wall_s"].iloc[0])})
    table = pd.DataFrame(rows)
    if write and len(table):  # the rows of other streams and other controllers stay
        path = Path(results_root) / profile / "lifecycle" / "lifecycle.csv"
        table_all = merge_rows(pd.read_csv(path), table) if path.exists() else table
        write_csv(path, table_all.sort_values(["task_seed", "scenario_seed"], kind="stable"))
    return table


def merge_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """`old` lifecycle rows with those of every (task seed, scenario seed, controller) in `new`
    replaced by `new`'s: a command that ran some controllers keeps the others' rows."""
    key = ["task_seed", "scenario_seed", "method"]
    same = pd.MultiIndex.from_frame(old[key]).isin(
        pd.MultiIndex.from_frame(new[key].drop_duplicates()))
    return pd.concat([old[~same], new], ignore_index=True)


def load_trace(profile: str, scenario_seed: int, controller: str, seed: int, *,
               task_seed: int = 0, results_root: Path | str = "results") -> pd.DataFrame:
    """One controller's per-slot trace (with the oracle), as `score_stream` returned it."""
    folder = scenario_dir(profile, scenario_seed, task_seed, results_root)
    path = stream_file(folder, "trace", controller, seed)
    if not path.exists():
        raise FileNotFoundError(
            f"no lifecycle trace {path}; run: python -m ecmeta_lib lifecycle --profile {profile} "
            f"--scenario-seed {scenario_seed} --seeds {seed} --results {results_root}")
    return pd.read_csv(path)


def load_twin_errors(profile: str, scenario_seed: int, seeds: Sequence[int], *,
                     task_seed: int = 0, results_root: Path | str = "results") -> pd.DataFrame:
    """The growing pool's twins, one row per (seed, upgrade): its users and its error against
    the true condition (`twin_pool.twin_error`)."""
    folder = scenario_dir(profile, scenario_seed, task_seed, results_root)
    frames = [pd.read_csv(p).assign(seed=s) for s in seeds
              if (p := stream_file(folder, "twins", "pearl_continual", s)).exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


__all__ = ["CONTROLLERS", "SEEDLESS", "controller_seeds", "lifecycle_table", "load_trace",
           "load_twin_errors", "oracle_trace", "run_lifecycle", "scenario_dir", "stream_file"]
