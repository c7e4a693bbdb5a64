"""The lifecycle experiment: resumable, the same numbers after a kill, every controller scored."""

from __future__ import annotations

import pandas as pd

from ecmeta_lib import lifecycle_runner as lr

HEURISTICS = ["greedy", "random", "blind_greedy", "identify_greedy", "identify_greedy_detect"]


def test_a_killed_run_loses_nothing_and_gives_the_same_numbers(tmp_path) -> None:
    table = lr.run_lifecycle("smoke", [0], [0, 1], controllers=HEURISTICS, results_root=tmp_path,
                             progress=False)
    assert set(table.method) == {"oracle", *HEURISTICS}
    assert (tmp_path / "smoke" / "lifecycle" / "lifecycle.csv").is_file()
    folder = lr.scenario_dir("smoke", 0, 0, tmp_path)
    # a job killed mid-stream leaves no trace (traces are written atomically at the end):
    # delete one, keep the others' modification times, and run the same command again
    victim = folder / "trace-random-s1.csv.gz"
    victim.unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in folder.glob("trace-*")}
    again = lr.run_lifecycle("smoke", [0], [0, 1], controllers=HEURISTICS,
                             results_root=tmp_path, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("trace-*")
            if p.name != victim.name} == kept  # nothing else recomputed
    cols = ["method", "seed", "stream_gap_pct", "regret_s"]
    pd.testing.assert_frame_equal(table[cols], again[cols])
    det = again[again.method == "identify_greedy_detect"].iloc[0]
    assert det["upgrades"] > 0 and det["false_alarms_per_1000_slots"] >= 0
    assert "static_false_alarms_per_1000" in again


def test_the_learned_controllers_run_on_the_grids_agents(tmp_path) -> None:
    table = lr.run_lifecycle("smoke", [0], [0], controllers=["pearl_online", "sac_dt",
                                                            "sac_retrain", "pearl_online_detect"],
                             results_root=tmp_path, progress=False)
    rows = table.set_index("method")
    assert rows.loc["sac_retrain", "grad_steps"] > 0 and rows.loc["pearl_online", "grad_steps"] == 0
    assert (rows.drop(index="oracle")["stream_gap_pct"] > -1e-6).all()  # nobody beats the oracle


def test_another_stream_keeps_the_first_streams_rows(tmp_path) -> None:
    lr.run_lifecycle("smoke", [0], [0], controllers=["greedy"], results_root=tmp_path,
                     progress=False)
    lr.run_lifecycle("smoke", [1], [0], controllers=["greedy"], results_root=tmp_path,
                     progress=False)
    csv = pd.read_csv(tmp_path / "smoke" / "lifecycle" / "lifecycle.csv")
    assert sorted(set(csv.scenario_seed)) == [0, 1]


def test_the_lifecycle_under_ray_gives_the_local_numbers(tmp_path) -> None:
    """`--executor ray`: one Ray task per (stream, controller, seed) on a loopback instance the
    runner starts and stops; the traces and metrics are the local executor's."""
    import pytest

    ray = pytest.importorskip("ray")
    ctrl = ["greedy", "identify_greedy"]
    local = lr.run_lifecycle("smoke", [0], [0], controllers=ctrl, results_root=tmp_path / "a",
                             progress=False)
    remote = lr.run_lifecycle("smoke", [0], [0], controllers=ctrl, results_root=tmp_path / "b",
                              executor="ray", workers=1, progress=False)
    assert not ray.is_initialized()
    cols = ["method", "stream_gap_pct", "regret_s"]
    pd.testing.assert_frame_equal(local[cols], remote[cols])


def test_a_run_of_some_controllers_keeps_the_others_rows() -> None:
    """lifecycle.csv after a command that ran one controller: that controller's rows of that
    stream are replaced, every other row stays (a subset once dropped the rest)."""
    import pandas as pd

    from ecmeta_lib.lifecycle_runner import merge_rows

    old = pd.DataFrame({"task_seed": 0, "scenario_seed": [0, 0, 0, 1],
                        "method": ["greedy", "pearl_online", "pearl_online", "greedy"],
                        "seed": [-1, 0, 1, -1], "stream_gap_pct": [1.0, 2.0, 3.0, 4.0]})
    new = pd.DataFrame({"task_seed": 0, "scenario_seed": [0], "method": ["pearl_online"],
                        "seed": [0], "stream_gap_pct": [9.0]})
    out = merge_rows(old, new)
    assert sorted(zip(out.scenario_seed, out.method, out.stream_gap_pct, strict=True)) == [
        (0, "greedy", 1.0), (0, "pearl_online", 9.0), (1, "greedy", 4.0)]
