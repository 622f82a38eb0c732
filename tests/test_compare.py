"""Comparing runs across experiments: grouped curves (mean and band), the figure, and the spec diff."""
from __future__ import annotations

import numpy as np
import pytest

from akp.analysis.common import AnalysisError
from akp.analysis.compare import gather_comparison, group_curves, group_key
from akp.analysis.spec_diff import MISSING, flatten_spec, spec_diff
from akp.plots.compare import comparison_figure
from tests.specs import small_smoke_spec


def _rows(values, start=0):
    """Per-epoch metric rows with the given test accuracies (train acc one higher)."""
    return [{"epoch": start + i, "test_acc": v, "train_acc": None if v is None else v + 0.1, "gap": 0.1}
            for i, v in enumerate(values)]


RUNS = [
    {"run_id": "a0", "experiment_id": "ea", "experiment_name": "A", "condition": "steady", "seed": 0},
    {"run_id": "a1", "experiment_id": "ea", "experiment_name": "A", "condition": "steady", "seed": 1},
    {"run_id": "a2", "experiment_id": "ea", "experiment_name": "A", "condition": "steady", "seed": 2},
    {"run_id": "b0", "experiment_id": "eb", "experiment_name": "B", "condition": "steady", "seed": 0},
    {"run_id": "b1", "experiment_id": "eb", "experiment_name": "B", "condition": "shock", "seed": 0},
]
METRICS = {
    "a0": _rows([0.5, 0.6, 0.7]),
    "a1": _rows([0.7, 0.8, 0.9]),
    "a2": _rows([0.6, float("nan")]),  # stopped early, with a NaN at epoch 1
    "b0": _rows([0.2, 0.4, 0.6]),
    "b1": _rows([0.1]),
}


def test_groups_by_experiment_and_condition_with_min_max_band() -> None:
    groups = {g.key: g for g in group_curves(RUNS, METRICS, metric="test_acc", band="minmax")}
    assert list(groups) == ["A · steady", "B · steady", "B · shock"]
    a = groups["A · steady"]
    assert a.epochs.tolist() == [0, 1, 2]
    assert a.n.tolist() == [3, 2, 2]  # the NaN and the missing epoch do not count
    np.testing.assert_allclose(a.mean, [0.6, 0.7, 0.8])
    np.testing.assert_allclose(a.low, [0.5, 0.6, 0.7])
    np.testing.assert_allclose(a.high, [0.7, 0.8, 0.9])
    np.testing.assert_allclose(groups["B · shock"].mean, [0.1])


def test_sd_band_is_sample_standard_deviation_and_zero_for_one_run() -> None:
    groups = {g.key: g for g in group_curves(RUNS, METRICS, metric="train_acc", band="sd")}
    a = groups["A · steady"]
    sd0 = np.std([0.6, 0.8, 0.7], ddof=1)  # epoch 0 train accuracies: 0.1 above the test ones
    assert a.low[0] == pytest.approx(0.7 - sd0)
    assert a.high[0] == pytest.approx(0.7 + sd0)
    single = groups["B · shock"]
    assert single.low.tolist() == single.high.tolist() == pytest.approx(single.mean.tolist())


def test_pooling_by_condition_mixes_experiments() -> None:
    groups = {g.key: g for g in group_curves(RUNS, METRICS, by="condition")}
    assert set(groups) == {"steady", "shock"}
    steady = groups["steady"]
    assert {r["run_id"] for r in steady.runs} == {"a0", "a1", "a2", "b0"}
    np.testing.assert_allclose(steady.mean[0], np.mean([0.5, 0.7, 0.6, 0.2]))
    assert group_key(RUNS[0], "condition") == "steady"


@pytest.mark.parametrize("kwargs, field", [({"metric": "speed"}, "metric"), ({"band": "iqr"}, "band"),
                                           ({"by": "owner"}, "by")])
def test_unknown_choices_name_their_field(kwargs, field) -> None:
    with pytest.raises(AnalysisError) as info:
        group_curves(RUNS, METRICS, **kwargs)
    assert info.value.field == field


def test_figure_has_band_mean_and_hoverable_run_lines() -> None:
    groups = group_curves(RUNS, METRICS, metric="test_acc", band="minmax")
    fig = comparison_figure(groups, METRICS, metric="test_acc", band="minmax", color_by="seed")
    means = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in means] == ["A · steady (n=3)", "B · steady (n=1)", "B · shock (n=1)"]
    band = [t for t in fig.data if t.fill == "tonexty"]
    assert len(band) == 3
    assert list(band[0].y) == pytest.approx([0.5, 0.6, 0.7])
    runs = [t for t in fig.data if t.customdata is not None and t.name.endswith("seed 1")]
    assert len(runs) == 1
    assert tuple(runs[0].customdata[0][:2]) == ("a1", 1)
    assert "run %{customdata[0]}" in runs[0].hovertemplate and "seed %{customdata[1]}" in runs[0].hovertemplate
    # Colour by seed: the seed-0 runs of both experiments share a colour, seed 1 has another.
    by_name = {t.name: t.line.color for t in fig.data if t.name and " · seed " in t.name}
    assert by_name["A · steady · seed 0"] == by_name["B · steady · seed 0"] != by_name["A · steady · seed 1"]
    assert "min-max" in fig.layout.legend.title.text


def test_figure_shows_user_names_as_text() -> None:
    runs = [{**RUNS[0], "experiment_name": "<b>bold</b> %{y}"}]
    fig = comparison_figure(group_curves(runs, METRICS), METRICS)
    for trace in fig.data:
        assert "<b>bold" not in (trace.name or "") and "%{y} ·" not in (trace.hovertemplate or "")
    assert "&lt;b&gt;bold&lt;/b&gt; %&#123;y&#125; · steady (n=1)" in [t.name for t in fig.data]


def test_figure_without_epochs_says_so() -> None:
    groups = group_curves(RUNS[:1], {}, metric="test_acc")
    fig = comparison_figure(groups, {})
    assert "No finished epochs" in fig.layout.annotations[0].text


def test_spec_diff_shows_only_differing_fields() -> None:
    a = small_smoke_spec("alpha", epochs=2, seeds=[0, 1], n_train=64).to_dict()
    b = small_smoke_spec("beta", epochs=3, seeds=[0, 1], n_train=64).to_dict()
    b["model"]["width"] = 16
    b["conditions"][1]["events"][0]["activation"] = "tanh"
    b["conditions"] = b["conditions"][1:]  # no "steady" in beta
    rows = {r["field"]: r for r in spec_diff({"alpha": a, "beta": b})}
    assert set(rows) == {"name", "epochs", "model.width", "conditions[steady]", "conditions[sigmoid-shock]"}
    assert rows["epochs"] == {"field": "epochs", "alpha": "2", "beta": "3"}
    assert rows["model.width"]["beta"] == "16"
    assert rows["conditions[steady]"]["beta"] == MISSING
    assert rows["conditions[sigmoid-shock]"]["alpha"] == "relu, cross_entropy; e1 → sigmoid, mse"
    assert rows["conditions[sigmoid-shock]"]["beta"] == "relu, cross_entropy; e1 → tanh, mse"


def test_spec_diff_of_equal_specs_is_empty_unless_asked() -> None:
    a = small_smoke_spec("same", epochs=2, seeds=[0, 1], n_train=64).to_dict()
    b = {**a, "lr": float(a["lr"])}
    assert spec_diff({"x": a, "y": b}) == []
    assert spec_diff({"x": a, "y": b}, include=("epochs",)) == [{"field": "epochs", "x": "2", "y": "2"}]
    flat = flatten_spec(a)
    assert flat["dataset_options.n_train"] == 64 and flat["seeds"] == [0, 1]


def test_gather_reads_runs_of_several_experiments_from_the_store(store) -> None:
    probe = np.zeros((16, 1, 32, 32), np.float32), np.arange(16) % 2
    ea = store.create_experiment(small_smoke_spec("A", epochs=2, seeds=[0, 1], n_train=64),
                                 probe_images=probe[0], probe_labels=probe[1])
    eb = store.create_experiment(small_smoke_spec("B", epochs=2, seeds=[0], n_train=64),
                                 probe_images=probe[0], probe_labels=probe[1])
    for i, run in enumerate(store.runs(ea) + store.runs(eb)):
        row = {"epoch": 0, "train_loss": 0.5, "train_acc": 0.5, "test_loss": 0.5, "test_acc": 0.1 * i, "gap": 0.0,
               "activation": "relu", "loss": "cross_entropy"}
        store.record_epoch(run["run_id"], row)
    comparison = gather_comparison(store, [eb, ea, eb], conditions=["steady"])
    assert [e["name"] for e in comparison.experiments] == ["B", "A"]
    assert [(r["experiment_name"], r["condition"], r["seed"]) for r in comparison.runs] == [
        ("B", "steady", 0), ("A", "steady", 0), ("A", "steady", 1)]
    groups = group_curves(comparison.runs, comparison.metrics)
    assert [g.key for g in groups] == ["B · steady", "A · steady"]
    assert groups[1].mean[0] == pytest.approx(np.mean([0.0, 0.1]))
    with pytest.raises(AnalysisError) as info:
        gather_comparison(store, [])
    assert info.value.field == "experiments"


# -- the page (AppTest) ----------------------------------------------------------------------------
def _fake_experiments(store, names=("A", "B")) -> list[str]:
    """Experiments with one recorded epoch per run (test accuracy 0.1 * run index), nothing trained."""
    probe = np.zeros((16, 1, 32, 32), np.float32), np.arange(16) % 2
    ids = []
    for k, name in enumerate(names):
        spec = small_smoke_spec(name, epochs=2 + k, seeds=[0, 1], n_train=64)
        eid = store.create_experiment(spec, probe_images=probe[0], probe_labels=probe[1])
        for i, run in enumerate(store.runs(eid)):
            for epoch in range(2):
                store.record_epoch(run["run_id"], {"epoch": epoch, "train_loss": 0.5, "train_acc": 0.6,
                                                   "test_loss": 0.5, "test_acc": 0.1 * i + 0.05 * epoch,
                                                   "gap": 0.1, "activation": "relu", "loss": "cross_entropy"})
        ids.append(eid)
    return ids


@pytest.fixture
def compare_home(tmp_path, monkeypatch):
    import ui
    from akp.store import RunStore

    home = tmp_path / "home"
    monkeypatch.setenv("AKP_HOME", str(home))
    ids = _fake_experiments(RunStore(home))
    yield home, ids
    ui.shutdown_managers(home)


def _compare_page(query: dict | None = None):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/compare.py")
    if query:
        at.query_params.update(query)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_compare_page_restores_a_shared_selection_and_shows_the_spec_diff(compare_home) -> None:
    home, (ea, eb) = compare_home
    at = _compare_page({"exp": [ea, eb], "condition": ["steady"], "band": "sd"})
    assert at.multiselect(key="compare-experiments").value == [ea, eb]
    assert at.multiselect(key="compare-conditions").value == ["steady"]
    assert at.session_state["compare-band"] == "sd"
    frames = [d.value for d in at.dataframe]
    summary = next(f for f in frames if "group" in f.columns)
    assert summary["group"].tolist() == ["A · steady", "B · steady"]
    diff = at.table[0].value
    assert set(diff.index) == {"name", "epochs"}
    # A changed selection goes back into the URL, ready to share.
    at.multiselect(key="compare-experiments").set_value([eb]).run()
    shared = at.query_params["exp"]
    assert (shared if isinstance(shared, list) else [shared]) == [eb]
    assert any("second experiment" in c.value for c in at.caption)


def test_compare_page_ignores_unknown_ids_in_the_url(compare_home) -> None:
    home, (ea, eb) = compare_home
    at = _compare_page({"exp": ["e-nope"], "metric": "speed"})
    assert at.multiselect(key="compare-experiments").value == []
    assert any("Choose at least one experiment" in i.value for i in at.info)
