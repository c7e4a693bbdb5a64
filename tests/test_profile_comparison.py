"""Two profiles' agents on the same slots: the rescoring gives final.csv back, the paired
comparison matches hand-computed values, identical settings differ by exactly zero, and a missing
run is named with the command that trains it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecmeta_lib import profile_comparison as pc
from ecmeta_lib import runner
from ecmeta_lib.__main__ import main
from ecmeta_lib.profiles import PROFILES
from ecmeta_lib.study import ResultsError, Study

METHODS = ["pearl", "sac_aisf_1"]


@pytest.fixture(scope="module")
def two_profiles(tmp_path_factory: pytest.TempPathFactory):
    """The smoke grid and a copy of the smoke profile under another name ("smoke_twin"), both
    trained for PEARL and SAC_AiSF_1, seed 0, in one results folder."""
    root = tmp_path_factory.mktemp("results")
    PROFILES["smoke_twin"] = replace(PROFILES["smoke"], name="smoke_twin")
    try:
        tables = {p: runner.run_grid(p, METHODS, [0], results_root=root, progress=False)
                  for p in ("smoke", "smoke_twin")}
        yield root, tables
    finally:
        del PROFILES["smoke_twin"]


def test_rescoring_at_the_profiles_own_slots_gives_final_csv_back(two_profiles) -> None:
    root, tables = two_profiles
    study = Study.of("smoke", METHODS, [0], results_root=root)
    n = study.profile.final_slots
    scores = pc.rescore(study, tables["smoke"], n, n_contexts=(study.profile.eval_context,))
    for run in tables["smoke"].itertuples():
        final = pd.read_csv(Path(run.dir) / "final.csv").set_index("condition")
        mine = scores[scores.method == run.method].set_index("condition")
        assert len(mine) == 3
        for col in ("mean_latency_s", "oracle_latency_s", "gap_to_oracle_pct"):
            np.testing.assert_allclose(mine[col], final.loc[mine.index, col], rtol=1e-12)


def test_identical_settings_differ_by_exactly_zero(two_profiles, tmp_path: Path) -> None:
    root, _ = two_profiles
    scores, comp = pc.compare_profiles("smoke_twin", "smoke", METHODS, [0], results_root=root,
                                       out_dir=tmp_path)
    assert set(scores.n_slots) == {PROFILES["smoke"].final_slots}
    # PEARL at 0 and eval_context transitions, SAC_AiSF_1 greedy: 3 rows of T1-T3
    assert len(comp) == 9 and (comp.diff_pct == 0).all() and (comp.n_pairs == 1).all()
    assert comp.own_condition.sum() == 1  # SAC_AiSF_1 on T1
    for name in ("profile_comparison.md", "profile_comparison.csv",
                 "profile_comparison_scores.csv"):
        assert (tmp_path / name).stat().st_size > 0
    md = (tmp_path / "profile_comparison.md").read_text()
    assert "T1 (own)" in md and "PEARL(0 transitions)" in md


def test_paired_difference_against_hand_computed_values() -> None:
    rows = [{"profile": p, "method": "pearl", "seed": s, "condition": "T1", "n_context": 20,
             "n_slots": 100, "gap_to_oracle_pct": g}
            for s, (ga, gb) in enumerate([(11.0, 10.0), (12.0, 10.0), (13.0, 10.0)])
            for p, g in (("a", ga), ("b", gb))]
    comp = pc.compare(pd.DataFrame(rows), "a", "b")
    r = comp.iloc[0]
    # differences 1, 2, 3: mean 2, half-width t(0.975, 2) * 1 / sqrt(3) = 4.3027 * 0.57735
    assert r.diff_pct == pytest.approx(2.0)
    assert r.diff_ci_high - r.diff_pct == pytest.approx(2.48414, abs=1e-5)
    # t = 2 / (1 / sqrt 3) = 3.4641 on 2 degrees of freedom, one-sided
    assert r.p_value == pytest.approx(0.03709, abs=1e-5)
    assert r.gap_a_pct == pytest.approx(12.0) and r.gap_b_pct == pytest.approx(10.0)
    assert not r.own_condition


def test_different_slot_counts_are_refused() -> None:
    rows = [{"profile": p, "method": "pearl", "seed": 0, "condition": "T1", "n_context": 0,
             "n_slots": n, "gap_to_oracle_pct": 1.0} for p, n in (("a", 100), ("b", 200))]
    with pytest.raises(ValueError, match="different slots"):
        pc.compare(pd.DataFrame(rows), "a", "b")


def test_an_unfinished_run_is_named_with_the_command_that_trains_it(two_profiles) -> None:
    root, _ = two_profiles
    with pytest.raises(ResultsError, match=r"not started\): sac_aisf_1-s1.*--seeds 1"):
        pc.compare_profiles("smoke_twin", "smoke", ["sac_aisf_1"], [0, 1], results_root=root)
    study = Study.of("smoke", METHODS, [0], results_root=root)
    with pytest.raises(ResultsError, match="n_slots must be in 1..4"):
        pc.rescore(study, runner.run_table(study), 5)


def test_cli_compare_errors_are_one_line(two_profiles, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = two_profiles
    for argv, words in ((["--profile", "smoke", "--against", "smoke"], "both 'smoke'"),
                        (["--profile", "smoke", "--against", "quick", "--seeds", "0"],
                         "python -m ecmeta_lib run --profile quick"),
                        (["--slots", "0"], "a number of slots")):
        with pytest.raises(SystemExit) as exc:
            main(["compare", *argv, "--results", str(root)])
        assert exc.value.code == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.strip().splitlines()) == 1 and words in err
    out_dir = root / "figs"
    argv = ["compare", "--profile", "smoke_twin", "--against", "smoke", "--seeds", "0",
            "--results", str(root), "--figures", str(out_dir)]
    assert main(argv) == 0
    assert "| SAC_AiSF_1 | T1 (own) |" in capsys.readouterr().out
    record = (out_dir / "PROVENANCE_compare.md").read_text()
    assert f"`python -m ecmeta_lib {' '.join(argv)}`" in record
    for name in ("profile_comparison.md", "profile_comparison.csv",
                 "profile_comparison_scores.csv"):
        assert f"* `{name}`" in record
    assert "| commit | `" in record and "| wall time |" in record
