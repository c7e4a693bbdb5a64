"""The command line's errors: one line naming the problem and the valid values, exit status 2,
no traceback, before anything runs (no training in these tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ecmeta_lib.__main__ import main
from ecmeta_lib.profiles import METHODS
from ecmeta_lib.runner import RunSpec


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one error line of `argv` (exit status 2, nothing on stdout)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", ["run", "report", "status"])
def test_unknown_profile_lists_the_profiles(command: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error([command, "--profile", "nope", "--results", str(tmp_path / "r")], capsys)
    assert "'nope'" in line and "paper, paper_8k, quick, smoke" in line
    assert not (tmp_path / "r").exists()  # nothing started


def test_unknown_method_lists_the_methods(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(["run", "--profile", "smoke", "--methods", "ppo",
                         "--results", str(tmp_path / "r")], capsys)
    assert "'ppo'" in line and all(m in line for m in METHODS)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("seeds", [["-1"], ["0", "1.5"], ["x"]])
def test_bad_seed(seeds: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(["run", "--profile", "smoke", "--seeds", *seeds,
                         "--results", str(tmp_path / "r")], capsys)
    assert "--seeds" in line and "non-negative integers" in line
    assert not (tmp_path / "r").exists()


def test_bad_task_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(["run", "--profile", "smoke", "--task-seed", "-3",
                         "--results", str(tmp_path / "r")], capsys)
    assert "--task-seed" in line and "'-3'" in line and "non-negative integers" in line


def test_bad_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(["run", "--profile", "smoke", "--workers", "0",
                         "--results", str(tmp_path / "r")], capsys)
    assert "--workers" in line and "positive integer" in line


@pytest.mark.parametrize("command", ["report", "status"])
def test_missing_results_folder(command: str, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    figures = ["--figures", str(tmp_path / "fig")] if command == "report" else []
    line = _usage_error([command, "--profile", "smoke", "--results", str(tmp_path / "none"),
                         *figures], capsys)
    assert "does not exist" in line and "python -m ecmeta_lib run --profile smoke" in line
    assert not (tmp_path / "fig").exists()


@pytest.mark.parametrize("command", ["report", "status"])
def test_empty_results_folder(command: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error([command, "--profile", "smoke", "--results", str(tmp_path)], capsys)
    assert "no runs of profile 'smoke'" in line and "python -m ecmeta_lib run" in line


def _finished_run(root: Path) -> Path:
    path = RunSpec("sac_dt", 0, "smoke").run_dir(root)
    path.mkdir(parents=True)
    (path / "done.json").write_text(json.dumps({"wall_s": 1.0}))
    (path / "curve.csv").write_text("method,seed,env_steps,condition,mean_latency_s\n"
                                    "sac_dt,0,10,T1,0.2\n")
    return path


def test_corrupt_final_csv_names_the_file(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _finished_run(tmp_path)
    (path / "final.csv").write_text('condition,mean_latency_s\nT1,"0.2\n')  # unclosed quote
    line = _usage_error(["report", "--profile", "smoke", "--methods", "sac_dt", "--seeds", "0",
                         "--results", str(tmp_path), "--figures", str(tmp_path / "fig")],
                        capsys)
    assert str(path / "final.csv") in line and "not a readable CSV" in line
    assert not (tmp_path / "fig").exists()


def test_final_csv_without_its_columns_names_them(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = _finished_run(tmp_path)
    (path / "final.csv").write_text("a,b\n1,2\n")
    line = _usage_error(["report", "--profile", "smoke", "--methods", "sac_dt", "--seeds", "0",
                         "--results", str(tmp_path), "--figures", str(tmp_path / "fig")],
                        capsys)
    assert str(path / "final.csv") in line and "mean_latency_s" in line


def test_corrupt_done_json_names_the_file(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _finished_run(tmp_path)
    (path / "done.json").write_text("{not json")
    line = _usage_error(["status", "--profile", "smoke", "--methods", "sac_dt", "--seeds", "0",
                         "--results", str(tmp_path)], capsys)
    assert str(path / "done.json") in line and "corrupt" in line


def test_unknown_ablation_lists_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _usage_error(["ablate", "--profile", "smoke", "--ablations", "nope",
                         "--results", str(tmp_path / "r")], capsys)
    assert "nope" in line
    assert not (tmp_path / "r").exists()


def test_the_real_command_line_prints_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ecmeta_lib", "run", "--profile", "nope",
                           "--results", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "choose one of catalogue, paper, paper_8k, quick, smoke" in proc.stderr
