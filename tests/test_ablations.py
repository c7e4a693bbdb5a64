"""Ablations: every variant is a valid profile that differs from the base in its listed fields
only, the registry adapts to the base profile, run ids are per ablation and stable, the paired
effects are right, and a tiny ablation study runs end to end through the runner and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecmeta_lib import ablations, analysis, plots, runner
from ecmeta_lib.__main__ import main
from ecmeta_lib.agents.config import couplings
from ecmeta_lib.config import EnvConfig, SystemConfig
from ecmeta_lib.profiles import PROFILES, get_profile
from ecmeta_lib.runner import RunSpec
from ecmeta_lib.tuning import apply_overrides

TINY = replace(PROFILES["smoke"], name="tiny_ablate",
               env=EnvConfig(system=SystemConfig(n_users=4, n_servers=2, es_gflops=(60.0, 120.0),
                                                 es_memory_gb=(24.0, 32.0), es_cores=(2, 3))),
               iterations=3, checkpoint_every=3, eval_every=3, final_slots=3)


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_every_active_ablation_is_valid_and_changes_only_its_fields(profile: str) -> None:
    base = get_profile(profile)
    names = ablations.active(base)
    assert names, "the base profile uses none of our choices?"
    for name in names:
        ab = ablations.ABLATIONS[name]
        prof = ablations.variant(base, name)  # the dataclasses validate it
        changed = ablations.changed_fields(base, prof)
        # beyond its own fields, only what the agent's compatibility rules turn off with it
        merged = {**base.agent.flat(), **{k[len("agent."):]: v for k, v in ab.overrides.items()
                                          if k.startswith("agent.")}}
        ruled = {f"agent.{k}" for k in couplings(merged)}
        assert set(changed) <= set(ab.overrides) | ruled, (name, changed)
        for key in ruled & set(changed):
            # each rule turns its dependent choice to its "off" value (False, or the default)
            assert ablations._get(prof, key) in (False, None, "random") \
                or key == "agent.twin_critics", key
        switched = {k for k in ab.switch if ablations._get(base, k) != ab.switch[k]}
        assert switched and switched <= set(changed), name
        for key, value in ab.overrides.items():
            assert ablations._get(prof, key) == value
        assert ab.what and "\n" not in ab.what


def test_a_choice_switched_off_by_validation_is_ablated_in_reverse() -> None:
    """Exactly one of context_size_sampling / _on is active, whichever way a profile sets it."""
    for prof in (get_profile("smoke"), get_profile("quick")):
        names = set(ablations.active(prof))
        on = prof.context_size_sampling
        assert ("context_size_sampling" in names, "context_size_sampling_on" in names) == (
            on, not on)
    quick = get_profile("quick")
    assert not quick.context_size_sampling  # chosen on validation task seeds 102 and 103
    assert ablations.variant(quick, "context_size_sampling_on").context_size_sampling


def test_inactive_ablations_are_refused_and_left_out() -> None:
    quick = get_profile("quick")
    off = replace(quick, agent=quick.agent.with_(lr_cosine=False))
    assert ablations.is_active("lr_cosine", quick) and not ablations.is_active("lr_cosine", off)
    assert "lr_cosine" not in ablations.active(off)
    with pytest.raises(ValueError, match="inactive"):
        ablations.variant(off, "lr_cosine")
    with pytest.raises(ValueError, match="unknown ablation"):
        ablations.variant(quick, "no_such_switch")
    assert ablations.select("all") == list(ablations.ABLATIONS)
    assert ablations.select("gamma0, per_user_reward") == ["per_user_reward", "gamma0"]
    table = ablations.registry_table(off)
    assert not table.set_index("ablation").loc["lr_cosine", "active"]
    scope = table.set_index("ablation")["scope"]
    assert (scope["twin_samples"], scope["kl_weight"], scope["lr_cosine"]) == (
        "PEARL, SAC_DT", "PEARL only", "every method")


def test_brief_ablations_and_coupled_fields() -> None:
    """The coupled fields follow SACConfig's validity rules: the switch alone is refused."""
    quick = get_profile("quick")
    for name in ("per_user_reward", "gamma0", "structured_networks", "per_user_latents"):
        ab = ablations.ABLATIONS[name]
        with pytest.raises(ValueError):
            apply_overrides(quick, ab.switch)
    assert ablations.ABLATIONS["per_user_latents"].pearl_only
    assert not ablations.ABLATIONS["per_user_reward"].pearl_only


def test_run_ids_differ_per_ablation_and_are_stable(tmp_path: Path) -> None:
    base = RunSpec("pearl", 0, "quick", 7)
    ids = {n: RunSpec("pearl", 0, "quick", 7, n).run_id for n in ablations.active(
        get_profile("quick"))}
    assert len(set(ids.values())) == len(ids) and base.run_id not in ids.values()
    for name, run_id in ids.items():
        spec = RunSpec("pearl", 0, "quick", 7, name)
        assert spec.run_id == run_id and run_id.startswith(f"pearl-s0-{name}-")
        assert spec.run_dir(tmp_path) == tmp_path / "quick" / "ablations" / name / run_id
        assert spec.config()["ablation"] == name
    # the grid's own runs keep their id, folder and config.json
    assert "ablation" not in base.config() and base.run_dir(tmp_path) == (
        tmp_path / "quick" / base.run_id)
    with pytest.raises(ValueError):
        RunSpec("pearl", 0, "quick", 7, "no_such_switch").run_id  # noqa: B018


def test_ablation_specs_skip_pearl_only_switches_for_sac() -> None:
    specs = runner.ablation_specs("quick", "all", ["pearl", "sac_aisf_1"], [0, 1], task_seed=7)
    by = {(s.ablation, s.method) for s in specs}
    assert (None, "pearl") in by and (None, "sac_aisf_1") in by
    for name in ablations.active(get_profile("quick")):
        assert (name, "pearl") in by
        expected = ablations.ABLATIONS[name].applies_to("sac_aisf_1")
        assert ((name, "sac_aisf_1") in by) == expected  # e.g. twin samples: PEARL, SAC_DT
    assert ("twin_samples", "sac_aisf_1") not in by and ("kl_weight", "sac_aisf_1") not in by
    assert all(s.task_seed == 7 for s in specs) and len(specs) == 2 * len(by)


def _fake(ablation: str, seeds, gaps, lat0=None, latn=None):
    finals = pd.DataFrame([{"ablation": ablation, "method": "pearl", "seed": s, "condition": c,
                            "gap_to_oracle_pct": g + i, "oracle_latency_s": 0.5}
                           for s, g in zip(seeds, gaps, strict=True)
                           for i, c in enumerate(("T1", "T2", "T3"))])
    adapt = pd.DataFrame([{"ablation": ablation, "method": "pearl", "seed": s, "condition": c,
                           "n_context": n, "mean_latency_s": v}
                          for s, a, b in zip(seeds, lat0, latn, strict=True)
                          for c in ("T1", "T2", "T3") for n, v in ((0, a), (2, b), (5, b))])
    return finals, adapt


def test_effects_are_paired_by_seed() -> None:
    f0, a0 = _fake(ablations.DEFAULT, [0, 1, 2], [10.0, 20.0, 30.0], [0.6] * 3, [0.55] * 3)
    f1, a1 = _fake("x", [0, 1, 2, 3], [11.0, 22.0, 33.0, 99.0], [0.6] * 4, [0.6] * 4)
    eff = ablations.effects(pd.concat([f0, f1]), pd.concat([a0, a1]), n_context=4, order=["x"])
    gap = eff[(eff.metric == "gap") & (eff.condition == "mean")].iloc[0]
    assert gap.n_seeds == 3 and gap.change == pytest.approx(2.0)  # seed 3 has no default
    assert gap.ci_low < 2.0 < gap.ci_high and np.isfinite(gap.p_value)
    gain = eff[(eff.metric == "gain") & (eff.condition == "mean")].iloc[0]
    assert gain.n_context == 2  # the largest recorded n <= eval_context
    assert gain.default == pytest.approx(10.0) and gain.change == pytest.approx(-10.0)
    assert gain.reading == "the choice helps"  # identical differences: a zero-width interval
    assert list(eff.metric.unique()) == ["gap", "gain"]
    md = ablations.effects_markdown(eff)
    assert "| x | pearl | gap to oracle, T1-T3 mean (%) |" in md


def test_tiny_ablation_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PROFILES, TINY.name, TINY)
    table = runner.run_ablations(TINY.name, ["per_user_reward"], ["pearl"], [0],
                                 task_seed=7, results_root=tmp_path, progress=False)
    assert table.done.all() and list(table.ablation) == [ablations.DEFAULT, "per_user_reward"]
    run_dir = Path(table.dir.iloc[1])
    assert run_dir.parent == tmp_path / TINY.name / "ablations" / "per_user_reward"
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["ablation"] == "per_user_reward" and not cfg["profile"]["agent"]["per_user_reward"]
    eff = ablations.effects(analysis.load_finals(table), analysis.load_adaptation(table),
                            TINY.eval_context)
    assert set(eff.metric) == {"gap", "gain"} and (eff.ablation == "per_user_reward").all()
    plots.ablations_figure(eff, tmp_path / "fig")
    assert (tmp_path / "fig" / "06_ablations.png").is_file()
    # the CLI finds the cached runs (nothing retrains) and writes the table and the figure
    stamp = (run_dir / "done.json").stat().st_mtime_ns
    rc = main(["ablate", "--profile", TINY.name, "--ablations", "per_user_reward",
               "--methods", "pearl", "--seeds", "0", "--results", str(tmp_path),
               "--no-progress", "--figures", str(tmp_path / "cli")])
    assert rc == 0 and (run_dir / "done.json").stat().st_mtime_ns == stamp
    assert {p.name for p in (tmp_path / "cli").iterdir()} >= {"ablations.csv", "ablations.md",
                                                               "06_ablations.png"}
    with pytest.raises(SystemExit) as usage:  # a usage error: one line, exit status 2
        main(["ablate", "--profile", TINY.name, "--ablations", "nope", "--methods", "pearl",
              "--results", str(tmp_path)])
    assert usage.value.code == 2


def test_complete_rows_are_per_ablation_and_method() -> None:
    """A study run for PEARL alone reports PEARL's column; a pair missing a seed, or whose
    default is missing for that method, is named as missing and not reported."""
    d = ablations.DEFAULT
    rows = [(d, "pearl", s, True) for s in (0, 1)] + [(d, "sac_aisf_1", s, True) for s in (0, 1)]
    rows += [("a", "pearl", s, True) for s in (0, 1)]           # complete
    rows += [("a", "sac_aisf_1", 0, True), ("a", "sac_aisf_1", 1, False)]  # a seed missing
    rows += [("b", "pearl", 0, True), ("b", "pearl", 1, True)]  # complete
    table = pd.DataFrame(rows, columns=["ablation", "method", "seed", "done"])
    shown, missing = analysis.complete_ablation_rows(table)
    assert missing == [("a", "sac_aisf_1")]
    assert set(zip(shown.ablation, shown.method, strict=True)) == {(d, "pearl"), ("a", "pearl"),
                                                      ("b", "pearl")}
    assert len(shown) == 6
    no_default = table.copy()
    no_default.loc[(table.ablation == d) & (table.method == "pearl") & (table.seed == 1),
                   "done"] = False
    shown, missing = analysis.complete_ablation_rows(no_default)
    assert shown.empty and set(missing) == {("a", "pearl"), ("a", "sac_aisf_1"), ("b", "pearl")}


def test_rule_couplings_are_the_hand_written_ones_they_replace() -> None:
    """Switching the per-user reward off turns off everything that needs it (the joint actor, the
    log-latency critic; then acting on the critic, the compiled update; twins return), as the
    ablation registry once listed by hand."""
    base = get_profile("quick")
    prof = ablations.variant(base, "per_user_reward")
    assert {k: v[1] for k, v in ablations.changed_fields(base, prof).items()} == {
        "agent.per_user_reward": False, "agent.joint_actor": False,
        "agent.log_latency_critic": False, "agent.greedy_critic": False,
        "agent.compiled_update": False, "agent.twin_critics": True}
