"""Tests for akp.analysis.families: happy and unhappy families from outcomes."""
from __future__ import annotations

import json

import numpy as np
import pytest
from analysis_fakes import FakeStore, run

from akp import analysis as A
from akp.analysis import AnalysisError, akp_test, label_families, label_runs


def test_label_families_splits_at_largest_gap():
    accs = [0.91, 0.55, 0.93, 0.50, 0.89, 0.52]
    assert A.largest_gap_threshold(accs) == pytest.approx((0.55 + 0.89) / 2)
    assert label_families(accs) == ["happy", "unhappy", "happy", "unhappy", "happy", "unhappy"]


def test_label_families_with_threshold_ties_and_degenerate_input():
    assert label_families([0.7, 0.8, 0.9], threshold=0.8) == ["unhappy", "happy", "happy"]
    assert label_families([0.5, 0.5, 0.5]) == ["happy"] * 3  # no gap: no split
    assert label_families([0.6, None, float("nan")], threshold=0.5) == ["happy", "unhappy", "unhappy"]
    # Equal gaps: the split goes between the higher values.
    assert label_families([0.1, 0.2, 0.3]) == ["unhappy", "unhappy", "happy"]
    with pytest.raises(AnalysisError, match="threshold"):
        label_families([0.5], threshold=float("inf"))


def test_label_runs_diverged_unhappy_unfinished_excluded():
    runs = [run("a", 0.9), run("b", 0.92), run("c", 0.5), run("d", 0.95, state="diverged"),
            run("e", None, state="queued"), run("f", 0.4, state="cancelled"), run("g", None, state="diverged")]
    fam = label_runs(runs)
    assert fam.run_ids == ["a", "b", "c", "d", "g"]
    assert fam.families == ["happy", "happy", "unhappy", "unhappy", "unhappy"]
    assert fam.threshold == pytest.approx((0.5 + 0.9) / 2)  # diverged runs do not move the split
    assert [e["run_id"] for e in fam.excluded] == ["e", "f"]
    assert "queued" in fam.excluded[0]["reason"]
    assert fam.records[2]["family"] == "unhappy"
    assert fam.counts() == {"happy": 2, "unhappy": 3}
    json.dumps(fam.to_dict(), allow_nan=False)
    # label_families on run records: aligned with the input, None for excluded runs.
    assert label_families(runs) == ["happy", "happy", "unhappy", "unhappy", None, None, "unhappy"]


def test_label_runs_gap_rule():
    runs = [run("a", 0.9, gap=0.02), run("b", 0.8, gap=0.3), run("c", 0.5, gap=0.0), run("d", 0.85, gap=0.05)]
    fam = label_runs(runs, rule="gap", max_gap=0.1)
    assert fam.families == ["happy", "unhappy", "happy", "happy"]
    fam = label_runs(runs, rule="gap", max_gap=0.1, threshold=0.6)  # and above chance
    assert fam.families == ["happy", "unhappy", "unhappy", "happy"]
    assert label_runs(runs, rule="gap").max_gap == 0.1
    with pytest.raises(AnalysisError, match="rule"):
        label_runs(runs, rule="vibes")
    with pytest.raises(AnalysisError, match="max_gap"):
        label_runs(runs, rule="gap", max_gap=-1)
    with pytest.raises(AnalysisError, match="run_id"):
        label_runs([{"state": "done"}])


def test_automatic_split_needs_a_real_gap():
    close = [0.91, 0.92, 0.93, 0.925]
    assert A.largest_gap_threshold(close) is None  # differences of noise, not of generalization
    assert label_families(close) == ["happy"] * 4
    assert A.largest_gap_threshold(close, min_gap=0.0) == pytest.approx(0.915)
    assert A.largest_gap_threshold([0.5, 0.56, 0.9]) == pytest.approx(0.73)
    res = akp_test(FakeStore([run(f"r{i}", a) for i, a in enumerate(close)],
                             {(f"r{i}", "embedding", 0): np.random.default_rng(i).random((16, 3))
                              for i in range(4)}), "e", layer="embedding")
    assert res.verdict_code == "one_family"


def test_collapsed_runs_are_never_happy_and_are_listed_with_their_reason():
    runs = [run("ok", 0.9), run("chance", 0.731), run("one-class", 0.8), run("old", 0.5)]
    for r in runs[:3]:
        r["majority_rate"], r["pred_classes"] = 0.731, 2
    runs[2]["pred_classes"] = 1  # a model that answers one class, whatever its accuracy
    fams = label_runs(runs, threshold=0.85)
    assert fams.collapsed == {
        "chance": "collapsed: test accuracy 0.731 does not beat the majority-class rate 0.731 by 0.02",
        "one-class": "collapsed: predicts one class only"}
    assert fams.run_ids == ["ok", "old"] and fams.families == ["happy", "unhappy"]  # old records: not collapsed
    assert {e["run_id"] for e in fams.excluded} == {"chance", "one-class"}
    # Reports can say which route collapsed: the excluded entry keeps its condition, seed and accuracy.
    chance = next(e for e in fams.excluded if e["run_id"] == "chance")
    assert (chance["condition"], chance["seed"], chance["test_acc"]) == ("c", 0, 0.731)


def test_a_threshold_at_the_majority_rate_is_refused():
    runs = [run("a", 0.9), run("b", 0.77)]
    for r in runs:
        r["majority_rate"] = 0.731
    with pytest.raises(AnalysisError) as info:
        label_runs(runs, threshold=0.74)
    assert info.value.field == "threshold" and "majority-class rate 0.731" in str(info.value)
    assert label_runs(runs, threshold=0.8).families == ["happy", "unhappy"]


def test_describe_rule_never_contradicts_itself() -> None:
    # The automatic rule found no gap: no threshold is claimed.
    text = A.describe_rule("accuracy", None, automatic=True)
    assert text == "no split: no gap of 0.05 or more between test accuracies, so only diverged runs are unhappy"
    assert "threshold" not in text
    assert A.describe_rule("accuracy", 0.7123, automatic=True) == (
        "happy if test accuracy ≥ 0.712 (threshold at the largest accuracy gap, chosen from the data: exploratory)")
    assert A.describe_rule("accuracy", 0.8, automatic=False) == "happy if test accuracy ≥ 0.800"
    assert A.describe_rule("gap", 0.8, automatic=False, max_gap=0.05) == (
        "happy if test accuracy ≥ 0.800 and generalization gap ≤ 0.05")
    assert A.describe_rule("gap", None, automatic=True, max_gap=0.1) == (
        "happy if generalization gap ≤ 0.10 (no accuracy gap of 0.05 or more to split at)")
