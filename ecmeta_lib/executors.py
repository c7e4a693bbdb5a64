"""Where the grid's runs execute: a local process pool (default) or a Ray cluster.

An executor gets a function and a list of `Job` s (a key - the run id - and the function's
arguments), calls ``fn(*job.args)`` for each, and reports every finished job to ``on_done(job,
result)`` in the driver as it finishes. The runner owns what a job does (train, resume, write
its folder); the executors own only where it happens, so both give the same files.

`run_local`: in this process (``workers == 1``) or in a spawn process pool.

`run_ray`: one Ray task per job, asking for the job's resources (``num_cpus`` = its torch
threads, ``num_gpus`` = 1 for CUDA runs). Ray retries a task whose worker process or node dies
(``max_retries``); the job itself must be idempotent - the runner's resumes from its checkpoint
and returns at once when its run already finished. Every run writes to one results folder, so
that folder must be shared by every node: `check_shared_results` proves it before any run starts
(each node must see the marker file the driver wrote and write a file the driver can see), and
each task checks the marker again (nodes that join later, e.g. by autoscaling).

This module imports nothing else from ecmeta_lib and Ray only when asked for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from types import ModuleType
from typing import Any

RAY_INSTALL_HINT = "pip install -e '.[ray]'"
RESULTS_MARKER = ".ecmeta-results"
"""File in the results folder holding its id: a node that sees it sees the driver's folder."""
PROBE_DIR = ".ecmeta-probes"
"""Folder of the per-node files that `check_shared_results` writes (removed after the check)."""
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20
"""Object store of a Ray instance the runner starts itself: runs return only a small dict."""
_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5})$")

log = logging.getLogger(__name__)


class RayUnavailableError(ImportError):
    """The Ray executor was asked for but ray is not installed."""


class RayConnectionError(ConnectionError):
    """No Ray cluster could be reached at the given address."""


class ResultsNotSharedError(RuntimeError):
    """The results folder is not one folder that every Ray node can read and write."""


class GridRunError(RuntimeError):
    """One or more runs of the grid failed (the others finished; their results are kept)."""


@dataclass(frozen=True)
class Job:
    """One call ``fn(*args)``; `key` names it in progress lines and errors (the run id)."""

    key: str
    args: tuple[Any, ...]


OnDone = Callable[[Job, Any], None]
OnPoll = Callable[[Sequence[Job]], None]
"""Called with the unfinished jobs every `poll_s` seconds while the executor waits."""


# ============================================================================================
# local process pool
# ============================================================================================
def run_local(fn: Callable[..., Any], jobs: Sequence[Job], *, workers: int, on_done: OnDone,
              on_poll: OnPoll | None = None, poll_s: float = 2.0,
              on_start: Callable[[Job], None] | None = None) -> None:
    """Run `jobs` in this process (``workers == 1``; `on_start` is called before each) or in a
    pool of `workers` spawned processes (spawn: no forked torch/OpenMP state). The first failed
    job's error is raised as is."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        for job in jobs:
            if on_start is not None:
                on_start(job)
            on_done(job, fn(*job.args))
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(fn, *job.args): job for job in jobs}
        while pending:
            finished, _ = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                on_done(job, fut.result())  # re-raises a worker's error with its message
            if on_poll is not None and pending:
                on_poll(list(pending.values()))


# ============================================================================================
# Ray
# ============================================================================================
def import_ray() -> ModuleType:
    """The `ray` module, or a `RayUnavailableError` that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(
            f"the Ray executor needs ray, which is not installed here: {RAY_INSTALL_HINT} "
            "(on every node of the cluster too)") from exc
    return ray


def check_address(address: str | None) -> str | None:
    """`address` if it has the shape of a Ray address, else a `ValueError` saying which do."""
    if address is None:
        return None
    if not isinstance(address, str) or not _ADDRESS.match(address.strip()):
        raise ValueError(
            f"--address {address!r} is not a Ray address: give 'auto' (the cluster this node "
            "belongs to), HOST:PORT of the head node's GCS (port 6379 by default, as printed by "
            "`ray start --head`), or ray://HOST:10001 (Ray Client)")
    return address.strip()


def task_resources(device: str, threads: int) -> dict[str, float]:
    """Resources one run asks Ray for: a CPU per torch thread, and one GPU for a CUDA device.

    ``device="auto"`` asks for no GPU (Ray hides the GPUs from such a task, so it trains on the
    CPU); ask for GPUs with ``device="cuda"``.
    """
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return {"num_cpus": float(threads),
            "num_gpus": 1.0 if str(device).startswith("cuda") else 0.0}


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nobody listens at: ``ray.init`` would retry it for minutes."""
    if address == "auto":
        return  # Ray finds the local node's cluster itself, and fails fast when there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayConnectionError(
            f"could not reach a Ray cluster at --address {address}: {exc}. Start one with "
            "`ray up cluster.yaml` (or `ray start --head` on its first node), then pass the "
            "head's HOST:6379, or 'auto' on one of its nodes") from exc


@contextlib.contextmanager
def loopback_only(ray: ModuleType) -> Iterator[None]:
    """Make Ray started within this block use 127.0.0.1 as its node IP and bind there: Ray
    otherwise swaps a loopback ``_node_ip_address`` for the machine's routable address (see
    ``ray._private.services.get_node_ip_address``). For local instances and tests only."""
    from unittest import mock

    from ray._private import ray_constants

    with mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False):
        yield


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None,
                num_gpus: int | None = None) -> Iterator[ModuleType]:
    """A connected `ray`: the caller's session if Ray is initialised already (left open), else
    a connection to `address`, or a Ray instance on this machine on the loopback (no dashboard,
    `num_cpus` CPUs: default all) - both closed on exit."""
    address = check_address(address)
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        with loopback_only(ray):  # "local": a new instance, never one found running here
            ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                     _node_ip_address="127.0.0.1",
                     include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                     **quiet)
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, **quiet)
        except Exception as exc:  # noqa: BLE001 - Ray raises several types for one cause
            raise RayConnectionError(
                f"could not reach a Ray cluster at --address {address}: {exc}. Start one with "
                "`ray up cluster.yaml` (or `ray start --head` on its first node), then pass "
                "the head's HOST:6379, or 'auto' on one of its nodes") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _results_id(root: Path) -> str:
    """Create `root` and its marker file (once, race-free) and return the id it holds."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / RESULTS_MARKER
    with contextlib.suppress(FileExistsError):
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(uuid.uuid4().hex)
    for _ in range(50):  # another driver may be between its open and its write
        text = marker.read_text().strip()
        if text:
            return text
        time.sleep(0.1)
    raise ResultsNotSharedError(f"{marker} is empty; delete it and start again")


def verify_results(root: str, results_id: str) -> None:
    """On a node: raise `ResultsNotSharedError` unless `root` is the driver's results folder."""
    marker = Path(root) / RESULTS_MARKER
    where = f"node {socket.gethostname()}"
    try:
        found = marker.read_text().strip()
    except OSError as exc:
        raise ResultsNotSharedError(
            f"{where} cannot read {marker}, which the driver wrote ({exc}): the results folder "
            "is not on a filesystem shared with the driver") from exc
    if found != results_id:
        raise ResultsNotSharedError(
            f"{where} sees another {marker} (id {found}, the driver's is {results_id}): the "
            "path leads to a different folder on this node")


def _probe(root: str, results_id: str) -> dict[str, str]:
    """Runs on one node: check the marker and write this node's probe file."""
    import ray

    info = {"node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
            "ip": ray.util.get_node_ip_address()}
    try:
        verify_results(root, results_id)
        folder = Path(root) / PROBE_DIR
        folder.mkdir(exist_ok=True)
        (folder / info["node_id"]).write_text(results_id)
    except Exception as exc:  # noqa: BLE001 - reported to the driver, node by node
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def check_shared_results(ray: ModuleType, root: Path | str, *,
                         timeout_s: float = 120.0) -> str:
    """Prove that `root` is one folder that every alive node can read and write; return its id.

    The driver writes the marker; a zero-CPU task pinned to each node reads it and writes a
    probe file; the driver reads every probe back. Raises `ResultsNotSharedError` naming each
    node that failed and why.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    root = Path(root)
    try:
        results_id = _results_id(root)
    except OSError as exc:
        raise ResultsNotSharedError(f"the driver cannot write the results folder {root}: {exc}"
                                    ) from exc
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = ray.remote(_probe)
    refs = [probe.options(num_cpus=0, max_retries=0, scheduling_strategy=(
                NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))).remote(str(root),
                                                                                 results_id)
            for n in nodes]
    ready, not_ready = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    problems = [f"node {n['NodeManagerAddress']}: did not answer within {timeout_s:.0f} s"
                for n, r in zip(nodes, refs, strict=True) if r in not_ready]
    for info in ray.get(ready):
        name = f"node {info['ip']} ({info['host']})"
        probe_file = root / PROBE_DIR / info["node_id"]
        if "error" in info:
            problems.append(f"{name}: {info['error']}")
        elif not probe_file.is_file():
            problems.append(f"{name}: wrote {probe_file}, which the driver cannot see")
        else:
            probe_file.unlink()
    if problems:
        raise ResultsNotSharedError(
            f"--results {root} must be one folder that every Ray node can read and write (a "
            "shared filesystem mounted at the same path on every node: NFS, EFS, Filestore, "
            "Lustre, ...); these nodes cannot use it:\n  " + "\n  ".join(problems))
    with contextlib.suppress(OSError):
        (root / PROBE_DIR).rmdir()
    return results_id


def _ray_entry(fn: Callable[..., Any], args: tuple[Any, ...], root: str,
               results_id: str) -> Any:
    """A Ray task: refuse a node that does not share the results folder, then ``fn(*args)``."""
    verify_results(root, results_id)
    return fn(*args)


def run_ray(fn: Callable[..., Any], jobs: Sequence[Job], *, results_root: Path | str,
            resources: dict[str, float], address: str | None = None,
            num_cpus: int | None = None, max_retries: int = 3, on_done: OnDone,
            on_poll: OnPoll | None = None, poll_s: float = 2.0) -> None:
    """Run every job as one Ray task; see the module docstring.

    Args:
        fn: a module-level function (Ray workers import it by name, so ecmeta_lib must be
            installed on every node).
        jobs: the calls to make.
        results_root: the folder the jobs write to (checked first: `check_shared_results`).
        resources: ``num_cpus`` / ``num_gpus`` of each task (`task_resources`).
        address: the cluster (None: this session's Ray, or a new one on this machine).
        num_cpus: CPUs of a Ray instance started here (default: all of this machine's).
        max_retries: times Ray reruns a task whose worker or node died (not an error raised
            by `fn`: that is final).
        on_done: called in the driver with each finished job and its result.
        on_poll: called with the unfinished jobs every `poll_s` seconds.

    Raises `GridRunError` once every job has finished or failed, listing the failed ones.
    """
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    gpus = resources.get("num_gpus", 0.0)
    with ray_session(address, num_cpus=num_cpus, num_gpus=None) as ray:
        results_id = check_shared_results(ray, results_root)
        if gpus and not ray.cluster_resources().get("GPU"):
            log.warning("the runs ask for a GPU each and this Ray cluster has none yet; they "
                        "wait until GPU nodes join")
        task = ray.remote(_ray_entry).options(max_retries=max_retries, retry_exceptions=False,
                                              **resources)
        pending = {task.remote(fn, job.args, str(results_root), results_id): job
                   for job in jobs}
        failures: list[str] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=poll_s)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - collected, raised at the end
                    cause = getattr(exc, "cause", None) or exc
                    failures.append(f"{job.key}: {type(cause).__name__}: {cause}")
                    log.error("run %s failed: %s", job.key, cause)
                    continue
                on_done(job, result)
            if on_poll is not None and pending:
                on_poll(list(pending.values()))
    if failures:
        raise GridRunError(f"{len(failures)} of {len(jobs)} runs failed (the others finished; "
                           "rerun the same command to retry the failed ones):\n  "
                           + "\n  ".join(failures))
