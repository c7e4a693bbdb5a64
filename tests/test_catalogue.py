"""The model catalogue (published ImageNet models) and the "catalogue" condition source."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ecmeta_lib.catalogue import (
    CATALOGUE_PATH,
    REQUIRED_COLUMNS,
    CatalogueError,
    family_chains,
    load_catalogue,
    sample_catalogue_condition,
    upgrade_catalogue_condition,
    usable_families,
    validate_catalogue,
)
from ecmeta_lib.conditions import DT_NAMES, TEST_NAMES, make_task_set, with_twin_samples
from ecmeta_lib.config import ConditionConfig

CAT_CFG = ConditionConfig(source="catalogue")


def raw() -> pd.DataFrame:
    return pd.read_csv(CATALOGUE_PATH, keep_default_na=False)


def test_catalogue_loads_with_its_units_and_ranges():
    cat = load_catalogue()
    assert set(REQUIRED_COLUMNS) <= set(cat.columns)
    assert cat.family.nunique() >= 8
    assert (cat.groupby("family").model.nunique() >= 3).all()
    assert (cat.gflops > 0).all() and (cat.gflops < 100).all()  # GFLOPs per inference
    assert (cat.weight_file_mb > 1).all() and (cat.weight_file_mb < 1000).all()  # MB
    assert cat.top1_pct.between(50, 100).all()  # ImageNet-1K top-1, %
    assert cat.input_px.isin([224, 240, 256, 288, 300, 380, 384, 456, 480, 528, 600]).all()
    assert not cat.duplicated(["family", "model", "weights"]).any()
    for _, rows in cat.groupby("family", sort=False):
        assert np.all(np.diff(rows.gflops.to_numpy()) >= 0)  # sizes light to heavy
    upgrades = cat[cat.generation > 1]
    assert len(upgrades) >= 10 and (upgrades.upgrade_of == "IMAGENET1K_V1").all()
    # the example: ResNet-50 V1 76.13 % -> V2 80.858 % at 4.089 GFLOPs
    r50 = cat[cat.model == "resnet50"].set_index("weights")
    assert r50.loc["IMAGENET1K_V1", "top1_pct"] == pytest.approx(76.13)
    assert r50.loc["IMAGENET1K_V2", "top1_pct"] == pytest.approx(80.858)
    assert (r50.gflops == 4.089).all()
    assert set(cat.split) == {"twin", "test"}
    assert not set(cat.family[cat.split == "twin"]) & set(cat.family[cat.split == "test"])


def test_mapping_of_one_row_by_hand():
    """efficientnet_b1 IMAGENET1K_V2: 0.687 GFLOPs at 240 px, 30.136 MB, 79.838 %."""
    cat = load_catalogue()
    row = cat[(cat.model == "efficientnet_b1") & (cat.weights == "IMAGENET1K_V2")].iloc[0]
    bits = 240 * 240 * 3 * 8  # 1 382 400 bit
    assert row.input_bits == bits
    assert row.flop_per_bit == pytest.approx(0.687e9 / 1_382_400)  # 496.96 FLOP/bit
    assert row.flop_per_bit == pytest.approx(496.961805, rel=1e-8)
    assert row.memory_mb == 31  # 30.136 MB rounded up
    assert row.top1_pct == 79.838


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.drop(columns=["gflops"]), "missing column"),
    (lambda d: d.assign(gflops=d.gflops.where(d.index != 3, 0.0)), "non-positive gflops"),
    (lambda d: d.assign(top1_pct=d.top1_pct.where(d.index != 0, 100.5)), "outside \\(0, 100\\]"),
    (lambda d: d.assign(top1_pct=d.top1_pct.where(d.index != 0, 0.0)), "outside \\(0, 100\\]"),
    (lambda d: pd.concat([d, d.iloc[[5]]]), "duplicate"),
    (lambda d: d.iloc[[1, 0, *range(2, len(d))]], "not sorted light to heavy"),
    (lambda d: d.assign(split=d.split.where(d.index != 0, "train")), "split not one of"),
    (lambda d: d.assign(upgrade_of=d.upgrade_of.where(d.index != 3, "")), "upgrade_of"),
    (lambda d: d.assign(successor=d.successor.where(d.family != "ResNet", "Swin")),
     "same split"),
])
def test_validation_names_the_problem(edit, message):
    with pytest.raises(CatalogueError, match=message):
        validate_catalogue(edit(raw()))


def test_sizes_sorted_at_every_generation():
    cat = load_catalogue()
    for split in ("twin", "test"):
        fams = usable_families(cat, split, 3)
        assert len(fams) >= 5
        for fam in fams:
            assert family_chains(cat, fam, 3)
    cc = sample_catalogue_condition(np.random.default_rng(3), 200, 3, CAT_CFG)
    for _ in range(3):
        c = cc.condition
        for arr in (c.flop_per_bit, c.memory_mb, c.peak_accuracy):
            assert np.all(np.diff(arr, axis=1) >= 0)
        old = cc
        cc = upgrade_catalogue_condition(np.random.default_rng(4), cc, CAT_CFG)
        # an upgrade never lowers an accuracy; same-architecture steps keep the compute
        same = (cat.model.to_numpy()[cc.rows] == cat.model.to_numpy()[old.rows]).all(axis=1)
        assert np.all(cc.condition.peak_accuracy[same] >= old.condition.peak_accuracy[same])
        assert np.array_equal(cc.condition.flop_per_bit[same], old.condition.flop_per_bit[same])
        assert np.array_equal(cc.condition.quality_exponent, old.condition.quality_exponent)


def test_catalogue_task_set_is_reproducible_and_split():
    a = make_task_set(5, condition_cfg=CAT_CFG)
    b = make_task_set(5, condition_cfg=CAT_CFG)
    for name in (*DT_NAMES, *TEST_NAMES):
        for f in ("flop_per_bit", "memory_mb", "peak_accuracy", "quality_exponent"):
            assert np.array_equal(getattr(a[name], f), getattr(b[name], f))
    cat = load_catalogue()
    test_acc = set(cat.top1_pct[cat.split == "test"])
    twin_acc = set(cat.top1_pct[cat.split == "twin"])
    assert not test_acc & twin_acc  # the check below can tell the sides apart
    for name in DT_NAMES:
        assert set(a[name].peak_accuracy.ravel()) <= twin_acc
    for name in TEST_NAMES:
        assert set(a[name].peak_accuracy.ravel()) <= test_acc
    s = with_twin_samples(a, 2, CAT_CFG)
    assert set(s["S1"].peak_accuracy.ravel()) <= twin_acc
    # the upgrades do something: G1'' is on average more accurate than G1
    assert a["G1''"].peak_accuracy.mean() > a["G1"].peak_accuracy.mean()
    assert not np.array_equal(a["G1"].peak_accuracy, make_task_set(6, condition_cfg=CAT_CFG)[
        "G1"].peak_accuracy)


def test_uniform_default_unchanged():
    """The default source draws exactly what it drew before the field existed and adds nothing
    to the fields a config serialises (run keys, config.json, cache keys)."""
    d = make_task_set(0)
    u = make_task_set(0, condition_cfg=ConditionConfig(source="uniform"))
    for name in (*DT_NAMES, *TEST_NAMES):
        assert np.array_equal(d[name].flop_per_bit, u[name].flop_per_bit)
    # the values of the task seed 0 before the catalogue existed
    assert d["G1"].flop_per_bit[0] == pytest.approx([956.0642, 1951.7623, 2128.4315], abs=1e-3)
    from ecmeta_lib.cache import jsonable

    assert "source" not in jsonable(ConditionConfig())  # keys and config.json: as before
    assert jsonable(CAT_CFG)["source"] == "catalogue"
    assert CAT_CFG != ConditionConfig()
    assert dataclasses.replace(CAT_CFG, upgrade_prob=0.5).source == "catalogue"


def test_run_key_unchanged_by_the_default_source():
    """The run key of quick/pearl/seed 0 as it was before the field existed (with the quick
    profile's later choices, the adaptation probe and the extra curve points, taken back: every
    field added since is silent at its default)."""
    from ecmeta_lib.cache import run_key
    from ecmeta_lib.profiles import PROFILES

    before = dataclasses.replace(
        PROFILES["quick"], curve_iterations=(),
        agent=PROFILES["quick"].agent.with_(adaptation_probe=None))
    assert run_key("pearl", before, 0, 0) == "860fcab247d54993"
    assert run_key("pearl", PROFILES["quick"], 0, 0) != "860fcab247d54993"
    cat_profile = dataclasses.replace(
        PROFILES["quick"], env=dataclasses.replace(PROFILES["quick"].env, conditions=CAT_CFG))
    assert run_key("pearl", cat_profile, 0, 0) != "860fcab247d54993"


def test_bad_source_is_a_clear_error():
    with pytest.raises(ValueError, match="source must be one of 'uniform', 'catalogue'"):
        ConditionConfig(source="imagenet")


def test_a_catalogue_stream_takes_published_steps() -> None:
    """The lifecycle on catalogue conditions: the stream starts at the task set's T1, and every
    later condition is made of catalogue rows (rho, memory and top-1 of published weights)."""
    from ecmeta_lib.catalogue import load_catalogue
    from ecmeta_lib.lifecycle import make_scenario

    ts = make_task_set(0, condition_cfg=CAT_CFG)
    sc = make_scenario(ts, 0, "smoke", condition_config=CAT_CFG)
    assert np.array_equal(sc.condition_at(0).flop_per_bit, ts["T1"].flop_per_bit)
    cat = load_catalogue()
    published = set(np.round(cat["flop_per_bit"].to_numpy(float), 6))
    for _, cond in sc.segments:
        assert set(np.round(cond.flop_per_bit.ravel(), 6)) <= published
        assert (np.diff(cond.flop_per_bit, axis=1) >= 0).all()  # light to heavy, still
    assert sc.events and any(e.upgraded.any() for e in sc.events)


def test_a_catalogue_event_announces_only_the_users_whose_models_changed() -> None:
    from ecmeta_lib.lifecycle import make_scenario

    ts = make_task_set(0, condition_cfg=CAT_CFG)
    sc = make_scenario(ts, 0, "quick", condition_config=CAT_CFG)
    for before, ev in zip([c for _, c in sc.segments[:-1]], sc.events, strict=True):
        moved = (before.flop_per_bit != ev.condition.flop_per_bit).any(axis=1) | (
            before.peak_accuracy != ev.condition.peak_accuracy).any(axis=1) | (
            before.memory_mb != ev.condition.memory_mb).any(axis=1) | (
            before.quality_exponent != ev.condition.quality_exponent)
        assert np.array_equal(ev.upgraded, moved) and ev.upgraded.any()
