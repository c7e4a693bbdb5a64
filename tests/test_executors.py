"""The grid under Ray: same results as the process pool, retries after a killed worker or node
(resuming from the checkpoint, nothing finished recomputed), the shared-results check, and
clear errors for a bad address, an unreachable cluster or a missing ray.

Ray runs on the loopback only (node IP 127.0.0.1, no dashboard, small object stores) and is
shut down by the fixtures. The multi-node tests use `ray.cluster_utils.Cluster`: a head node
with no CPUs (it only runs the probes) and one-CPU worker nodes, all on this machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecmeta_lib import executors, runner
from ecmeta_lib.__main__ import main
from ecmeta_lib.runner import RunSpec

try:  # imported at collection: Ray's log handler keeps the first stderr it sees (not capsys's)
    import ray
except ImportError:  # .[dev] installs ray; without it the Ray tests say so in the summary
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason=f"ray is not installed: "
                               f"{executors.RAY_INSTALL_HINT}")

SMALL_STORE = 100 * 2**20
# Node deaths are noticed in ~1 s instead of Ray's default ~30 s.
FAST_HEALTH_CHECK = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 250,
                     "health_check_timeout_ms": 250, "health_check_failure_threshold": 4}


def _same_files(a: Path, b: Path, names=("final.csv", "curve.csv", "train_log.csv")) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _wait_for(cond, timeout_s: float, what: str, proc: subprocess.Popen | None = None,
              log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while True:
        out = cond()
        if out:
            return out
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the driver exited ({proc.returncode}) before {what}:\n"
                        + (log.read_text()[-3000:] if log else ""))
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


# ============================================================================================
# without Ray: arguments and messages
# ============================================================================================
def test_addresses_and_executors_are_checked(tmp_path: Path, capsys) -> None:
    for good in ("auto", "10.0.0.1:6379", "head.example.org:6379", "ray://10.0.0.1:10001"):
        assert executors.check_address(good) == good
    for bad in ("", "10.0.0.1", "http://x:1", "a b:1", "host:port"):
        with pytest.raises(ValueError, match="is not a Ray address"):
            executors.check_address(bad)
    with pytest.raises(ValueError, match="unknown executor"):
        runner.run_grid("smoke", ["sac_aisf_1"], [0], results_root=tmp_path, executor="spark")
    with pytest.raises(ValueError, match="executor='ray'"):
        runner.run_grid("smoke", ["sac_aisf_1"], [0], results_root=tmp_path, address="auto")
    with pytest.raises(SystemExit):  # argparse: a usage error, before anything starts
        main(["run", "--profile", "smoke", "--executor", "ray", "--address", "nowhere"])
    assert "is not a Ray address" in capsys.readouterr().err


def test_task_resources_follow_threads_and_device() -> None:
    assert executors.task_resources("cpu", 1) == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert executors.task_resources("auto", 2) == {"num_cpus": 2.0, "num_gpus": 0.0}
    assert executors.task_resources("cuda", 1) == {"num_cpus": 1.0, "num_gpus": 1.0}
    assert executors.task_resources("cuda:1", 1)["num_gpus"] == 1.0


def test_without_ray_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(executors.RayUnavailableError, match=r"pip install -e '\.\[ray\]'"):
        runner.run_grid("smoke", ["sac_aisf_1"], [0], results_root=tmp_path, executor="ray",
                        progress=False)
    assert main(["run", "--profile", "smoke", "--methods", "sac_aisf_1", "--seeds", "0",
                 "--executor", "ray", "--results", str(tmp_path), "--no-progress"]) == 2
    assert "pip install -e '.[ray]'" in capsys.readouterr().err


def test_an_unreachable_cluster_fails_fast_with_a_clear_error(tmp_path: Path, capsys) -> None:
    start = time.monotonic()
    assert main(["run", "--profile", "smoke", "--methods", "sac_aisf_1", "--seeds", "0",
                 "--executor", "ray", "--address", "127.0.0.1:1", "--results", str(tmp_path),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "could not reach a Ray cluster at --address 127.0.0.1:1" in err and "ray up" in err
    assert time.monotonic() - start < 30  # ray.init alone would retry for minutes


@needs_ray
def test_a_local_start_never_joins_a_ray_instance_found_running_here(monkeypatch) -> None:
    """ray.init() without an address joins the newest Ray instance on the machine (someone
    else's, on a shared one); the runner's own start asks for a new one, on the loopback."""
    seen = {}

    def fake_init(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(ray, "init", fake_init)
    with pytest.raises(RuntimeError, match="stop here"), executors.ray_session(num_cpus=1):
        pass
    assert seen["address"] == "local" and seen["_node_ip_address"] == "127.0.0.1"
    assert seen["include_dashboard"] is False and seen["num_cpus"] == 1


def test_a_node_that_does_not_share_the_results_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(executors.ResultsNotSharedError, match="cannot read .*not on a filesystem"):
        executors.verify_results(str(tmp_path), "abc")
    (tmp_path / executors.RESULTS_MARKER).write_text("other")
    with pytest.raises(executors.ResultsNotSharedError, match="different folder"):
        executors.verify_results(str(tmp_path), "abc")
    executors.verify_results(str(tmp_path), "other")


# ============================================================================================
# Ray on this machine
# ============================================================================================
@needs_ray
def test_one_run_gives_the_same_files_under_both_executors(tmp_path: Path, capsys) -> None:
    """The runner starts Ray itself (loopback, 1 CPU), runs, shuts it down."""
    local = runner.run_grid("smoke", ["sac_aisf_1"], [0], results_root=tmp_path / "local",
                            progress=False)
    table = runner.run_grid("smoke", ["sac_aisf_1"], [0], results_root=tmp_path / "ray",
                            executor="ray", workers=1, progress=True)
    assert not ray.is_initialized()
    assert table.done.all() and table.run_id.tolist() == local.run_id.tolist()
    _same_files(Path(local.dir.iloc[0]), Path(table.dir.iloc[0]))
    err = capsys.readouterr().err
    assert f"{table.run_id.iloc[0]}: done in" in err, err  # the per-run line
    status = runner.run_status("smoke", ["sac_aisf_1", "sac_aisf_2"], [0],
                               results_root=tmp_path / "ray")
    assert status.state.tolist() == ["done", "pending"]
    assert status.iteration.tolist() == [10, 0] and status.host.iloc[0]
    assert main(["status", "--profile", "smoke", "--methods", "sac_aisf_1", "--seeds", "0",
                 "--results", str(tmp_path / "ray")]) == 0
    assert " done " in capsys.readouterr().out


# ============================================================================================
# a two-node cluster on this machine
# ============================================================================================
@pytest.fixture(scope="module")
def cluster() -> Iterator:
    if ray is None:
        pytest.skip(f"ray is not installed: {executors.RAY_INSTALL_HINT}")
    from ray.cluster_utils import Cluster

    node = {"node_ip_address": "127.0.0.1", "object_store_memory": SMALL_STORE}
    with executors.loopback_only(ray):
        c = Cluster(initialize_head=True, head_node_args={
            **node, "num_cpus": 0, "include_dashboard": False,
            "_system_config": FAST_HEALTH_CHECK})
        c.add_node(**node, num_cpus=1)
    c.node_args = node
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


@pytest.fixture
def driver(cluster) -> Iterator:
    """Starts `python -m ecmeta_lib run --executor ray --address <cluster>` in its own process
    (killed at teardown if a test failed while it ran)."""
    procs: list[subprocess.Popen] = []
    # the env form of `executors.loopback_only`: without it the driver swaps 127.0.0.1 in the
    # address for this machine's routable IP, where the loopback-only cluster does not listen
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

    def start(root: Path, methods: list[str], log: Path) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "ecmeta_lib", "run", "--profile", "smoke", "--seeds", "0",
               "--methods", *methods, "--executor", "ray", "--address", cluster.address,
               "--results", str(root)]
        procs.append(subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                                      env=env))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _progress(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "progress.json").read_text())
    except (OSError, ValueError):
        return None


def _resumed(run_dir: Path) -> int:
    return json.loads((run_dir / "done.json").read_text())["resumed_from"]


def test_a_killed_node_is_retried_and_the_run_resumes(cluster, driver,
                                                       tmp_path: Path) -> None:
    """Two runs on a one-CPU node: once one finished and the other passed its first checkpoint,
    the node dies (every process of it); a new node joins; Ray reruns the task there, which
    resumes from the checkpoint; the finished run is not recomputed."""
    methods = ["sac_aisf_1", "pearl"]
    dirs = {m: tmp_path / "smoke" / RunSpec(m, 0, "smoke").run_id for m in methods}
    log = tmp_path / "driver.log"
    proc = driver(tmp_path, methods, log)

    def one_done_other_checkpointed():
        done = [m for m in methods if (dirs[m] / "done.json").exists()]
        if len(done) != 1:
            return None
        other = next(m for m in methods if m not in done)
        info = _progress(dirs[other])
        return (done[0], other, info) if info and info["iteration"] >= 2 else None

    finished, victim, info = _wait_for(one_done_other_checkpointed, 120,
                                       "one finished run and one checkpointed", proc, log)
    os.kill(info["pid"], signal.SIGSTOP)  # freeze the run where it is, then take the node down
    stamp = (dirs[finished] / "done.json").stat().st_mtime_ns
    node = next(iter(cluster.worker_nodes))
    cluster.remove_node(node, allow_graceful=False)
    os.kill(info["pid"], signal.SIGKILL)
    with executors.loopback_only(ray):
        cluster.add_node(**cluster.node_args, num_cpus=1)
    assert proc.wait(timeout=150) == 0, log.read_text()[-3000:]
    assert _resumed(dirs[victim]) >= info["iteration"] >= 2  # Ray reran it; it resumed
    assert f"{dirs[victim].name}: done in" in log.read_text()  # the driver's per-run line
    assert (dirs[finished] / "done.json").stat().st_mtime_ns == stamp  # not recomputed
    clean = runner.run_grid("smoke", [victim], [0], results_root=tmp_path / "clean",
                            progress=False)
    _same_files(dirs[victim], Path(clean.dir.iloc[0]))  # as if never interrupted


def test_a_killed_worker_is_retried_and_the_run_resumes(driver, tmp_path: Path) -> None:
    run_dir = tmp_path / "smoke" / RunSpec("sac_aisf_2", 0, "smoke").run_id
    log = tmp_path / "driver.log"
    proc = driver(tmp_path, ["sac_aisf_2"], log)
    info = _wait_for(lambda: (p := _progress(run_dir)) and p["iteration"] >= 2 and p, 120,
                     "the run's first checkpoint", proc, log)
    os.kill(info["pid"], signal.SIGKILL)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert _resumed(run_dir) >= 2
    clean = runner.run_grid("smoke", ["sac_aisf_2"], [0], results_root=tmp_path / "clean",
                            progress=False)
    _same_files(run_dir, Path(clean.dir.iloc[0]))


def test_a_node_that_cannot_write_the_results_folder_stops_the_grid(cluster, driver,
                                                                     tmp_path: Path) -> None:
    """A directory where a node's probe file goes makes that node's write fail: the grid stops
    before any run starts, naming the node and the cause."""
    probes = tmp_path / executors.PROBE_DIR
    for node in cluster.list_all_nodes():
        (probes / node.node_id).mkdir(parents=True)
    log = tmp_path / "driver.log"
    proc = driver(tmp_path, ["sac_aisf_1"], log)
    assert proc.wait(timeout=120) == 2
    out = log.read_text()
    assert f"--results {tmp_path} must be one folder that every Ray node" in out, out[-3000:]
    assert "node 127.0.0.1" in out and "IsADirectoryError" in out
    assert not (tmp_path / "smoke" / RunSpec("sac_aisf_1", 0, "smoke").run_id).exists()
