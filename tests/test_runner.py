"""The experiment grid: cache, resume after a kill, run ids, reports, and the CLI's errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecmeta_lib import analysis, plots, runner
from ecmeta_lib.__main__ import main
from ecmeta_lib.evaluation import FINAL_SEED
from ecmeta_lib.runner import RunSpec
from ecmeta_lib.study import ADAPT_CONTEXT

METHODS = ["sac_aisf_1", "pearl"]


@pytest.fixture(scope="module")
def smoke_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("results")
    table = runner.run_grid("smoke", METHODS, [0], results_root=root, progress=False)
    return root, table


def test_grid_finishes_and_rerun_recomputes_nothing(smoke_grid) -> None:
    root, table = smoke_grid
    assert table.done.all() and len(table) == 2
    stamps = {d: (Path(d) / "done.json").stat().st_mtime_ns for d in table.dir}
    again = runner.run_grid("smoke", METHODS, [0], results_root=root, progress=False)
    assert again.run_id.tolist() == table.run_id.tolist()
    assert {d: (Path(d) / "done.json").stat().st_mtime_ns for d in again.dir} == stamps
    pearl_dir = Path(table[table.method == "pearl"].dir.iloc[0])
    adapt = pd.read_csv(pearl_dir / "adaptation.csv")
    assert set(adapt.condition) == {"T1", "T2", "T3"}
    assert sorted(adapt.n_context.unique()) == list(ADAPT_CONTEXT)


def test_run_id_follows_the_config() -> None:
    a = RunSpec("pearl", 0, "smoke")
    assert a.run_id == RunSpec("pearl", 0, "smoke").run_id  # deterministic
    others = {RunSpec("pearl", 1, "smoke").run_id, RunSpec("sac_dt", 0, "smoke").run_id,
              RunSpec("pearl", 0, "quick").run_id, RunSpec("pearl", 0, "smoke", 1).run_id}
    assert a.run_id not in others and len(others) == 4
    assert a.run_id.startswith("pearl-s0-")


def test_a_foreign_config_in_a_run_folder_is_refused(tmp_path: Path) -> None:
    spec = RunSpec("sac_aisf_1", 0, "smoke")
    run_dir = tmp_path / "smoke" / spec.run_id
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps({"method": "something else"}))
    with pytest.raises(RuntimeError, match="does not match the run's config"):
        runner.run_grid("smoke", ["sac_aisf_1"], [0], results_root=tmp_path, progress=False)


def test_bad_grid_arguments_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        runner.run_grid("fast", ["pearl"], [0], results_root=tmp_path)
    with pytest.raises(ValueError, match="unknown method"):
        runner.run_grid("smoke", ["ppo"], [0], results_root=tmp_path)
    with pytest.raises(ValueError, match="non-negative integers"):
        runner.run_grid("smoke", ["pearl"], [-1], results_root=tmp_path)
    with pytest.raises(ValueError, match="workers"):
        runner.run_grid("smoke", ["pearl"], [0], workers=0, results_root=tmp_path)
    with pytest.raises(SystemExit):  # argparse rejects an unknown method by name
        main(["run", "--profile", "smoke", "--methods", "ppo", "--results", str(tmp_path)])


def test_killed_grid_resumes_without_redoing_finished_runs(tmp_path: Path) -> None:
    """Kill the CLI once the first run is done and the second has a checkpoint, then rerun it."""
    cmd = [sys.executable, "-m", "ecmeta_lib", "run", "--profile", "smoke", "--seeds", "0",
           "--methods", "sac_aisf_2", "sac_dt", "--results", str(tmp_path), "--no-progress"]
    first = tmp_path / "smoke" / RunSpec("sac_aisf_2", 0, "smoke").run_id
    second = tmp_path / "smoke" / RunSpec("sac_dt", 0, "smoke").run_id
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not (second / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the grid did not reach its second run in time"
        time.sleep(0.05)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (first / "done.json").exists()
    stamp = (first / "done.json").stat().st_mtime_ns
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert (first / "done.json").stat().st_mtime_ns == stamp  # not recomputed
    assert (second / "done.json").exists()
    # the resumed run ends exactly where an uninterrupted one does
    clean = runner.run_grid("smoke", ["sac_dt"], [0], results_root=tmp_path / "clean",
                            progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(second / "final.csv"),
                                  pd.read_csv(Path(clean.dir.iloc[0]) / "final.csv"))


def test_reports_are_written(smoke_grid, tmp_path: Path) -> None:
    root, table = smoke_grid
    base = analysis.baselines("smoke", results_root=root)
    sticks = {p.name for p in analysis.yardsticks("smoke")}
    assert {"greedy", "random"} <= sticks and set(base.method) == sticks | {"oracle"}
    oracle = base[base.method == "oracle"].set_index("condition").mean_latency_s
    greedy = base[base.method == "greedy"].set_index("condition").mean_latency_s
    assert (oracle <= greedy + 1e-12).all()  # the oracle bounds every policy from below
    finals = analysis.load_finals(table)
    curves = analysis.load_curves(table)
    curve_base = analysis.curve_baselines("smoke", results_root=root)
    assert (curve_base.n_slots == runner.get_profile("smoke").eval_slots).all()  # the curve's slots
    plots.fig3(curves, curve_base, tmp_path, gradient_steps_per_iteration=6)
    res = analysis.results_table(finals, base, tmp_path)
    plots.final_latency(res, tmp_path)
    plots.adaptation(analysis.load_adaptation(table), base, finals, tmp_path)
    for name in ("fig3_latency.png", "fig3_latency.pdf", "results_table.csv",
                 "results_table.md", "adaptation.png", "final_latency.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert len(res) == 3 * (len(METHODS) + len(sticks) + 1)
    md = (tmp_path / "results_table.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| T")]
    assert len(rows) == len(res) and "oracle (per-slot MILP)" in md
    # the table says which interval each row has: seeds for learned methods, slots otherwise
    learned = res.method.isin(METHODS)
    assert res[learned].ci_kind.str.startswith("t over seeds (n=1)").all()
    assert res[~learned].ci_kind.str.startswith("slot bootstrap").all()


def test_every_row_of_the_results_table_shares_one_slot_stream(smoke_grid) -> None:
    """Learned methods (final.csv), heuristics, yardsticks and the oracle are scored on the same
    slots (FINAL_SEED, final_slots): the oracle's latency is identical across a condition's rows."""
    root, table = smoke_grid
    base = analysis.baselines("smoke", results_root=root)
    finals = analysis.load_finals(table)
    assert set(base.seed) == {FINAL_SEED}
    assert set(base.n_slots) == set(finals.n_slots) == {runner.get_profile("smoke").final_slots}
    res = analysis.results_table(finals, base)
    for cond, g in res.groupby("condition"):
        assert g.oracle_latency_s.nunique() == 1, (cond, g[["method", "oracle_latency_s"]])


def test_decisions_of_the_grid(smoke_grid, tmp_path: Path) -> None:
    from ecmeta_lib import decisions

    root, table = smoke_grid
    dec = decisions.grid_decisions(table, "smoke", results_root=root)
    slots = runner.get_profile("smoke").final_slots
    assert {"oracle", "greedy", *METHODS} <= set(dec.method)
    assert set(dec.place) <= {"device", "edge", "cloud"}
    per = dec.groupby(["method", "condition"]).size()
    assert (per == slots * 80).all()  # one row per (slot, user); one seed in this grid
    assert not dec[dec.method == "oracle"].repaired_any.any()
    # the recorder sees the same slots as the harness: its latencies give final.csv's mean
    finals = analysis.load_finals(table).set_index(["method", "condition"]).mean_latency_s
    mine = dec.groupby(["method", "condition"]).latency_s.mean()
    for key in [("sac_aisf_1", "T1"), ("pearl", "T2")]:
        assert mine[key] == pytest.approx(finals[key], rel=1e-5)
    # and the oracle's per-user decisions give the oracle line of the baselines
    base = analysis.baselines("smoke", results_root=root)
    orc = base[base.method == "oracle"].set_index("condition").mean_latency_s
    assert mine["oracle", "T3"] == pytest.approx(orc["T3"], rel=1e-5)
    plots.decisions_figure(dec, analysis.load_curves(table), tmp_path)
    assert (tmp_path / "decisions.png").stat().st_size > 0
    assert set(analysis.decision_summary(dec).index) == set(dec.method)


def test_latent_posteriors_narrow(smoke_grid) -> None:
    _, table = smoke_grid
    lat = analysis.latent_posteriors(table[table.method == "pearl"].dir.iloc[0], "smoke",
                                   n_context=(0, 2, 8), repeats=1)
    var = lat.groupby("n_context").posterior_var.mean()
    assert var.loc[0] == pytest.approx(1.0) and var.loc[8] < var.loc[2] < var.loc[0]
    assert set(lat.condition) == {"G1", "G1'", "G1''", "G2", "G2'", "G3", "T1", "T2", "T3"}
    assert np.isfinite(lat[["z0", "z1"]].to_numpy()).all()


def test_project_root_is_found_from_a_subfolder() -> None:
    root = runner.project_root(Path(__file__).parent)
    assert (root / "pyproject.toml").is_file() and (root / "ecmeta_lib").is_dir()
    with pytest.raises(FileNotFoundError, match="no ecmeta project"):
        runner.project_root("/")
