"""AppTest of the analysis pages (Families, Representations, Layers, Learn).

Each page runs standalone on an empty store and on the shared store trained on
the smoke preset (``smoke3_store`` in conftest). UMAP is warmed up once for the
module so the Representations page draws instead of waiting.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)


def charts(at: AppTest) -> list:
    return list(at.get("plotly_chart"))


def figure_json(chart) -> str:
    return chart.proto.spec


@pytest.fixture
def smoke_home(smoke3_store, monkeypatch) -> tuple:
    store, experiment_id = smoke3_store
    monkeypatch.setenv("AKP_HOME", str(store.home))
    return store, experiment_id


@pytest.fixture
def smoke6_home(smoke6_store, monkeypatch) -> tuple:
    store, experiment_id = smoke6_store
    monkeypatch.setenv("AKP_HOME", str(store.home))
    return store, experiment_id


@pytest.fixture(scope="module")
def warm_umap() -> None:
    from akp import projection

    projection.warm_up()


# -- empty store: a friendly message, never an exception ----------------------------------------------
@pytest.mark.parametrize("name", ["families", "representations", "layers"])
def test_pages_on_empty_store_show_info(name, tmp_home):
    at = page(name).run()
    assert not at.exception
    assert any("No experiments yet" in i.value for i in at.info)
    assert not charts(at)


def test_learn_page_teaches_the_principle(tmp_home):
    at = page("learn").run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "Happy families are all alike" in text and "2302.11380" in text
    assert "asymptotic limit" in text and "PERMDISP" in text and "Honest caveats" in [h.value for h in at.header]
    for term in ("swap event", "swap schedule", "condition", "run", "seed", "experiment", "probe set",
                 "family", "dispersion", "CKA", "debiased CKA", "PERMDISP"):
        assert f"- **{term}**:" in text


# -- unfinished runs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["families", "representations", "layers"])
def test_pages_on_unfinished_experiment_show_info(name, tmp_home):
    from akp.experiment import load_preset
    from akp.store import RunStore

    spec = load_preset("smoke")
    store = RunStore(tmp_home)
    store.create_experiment(spec, probe_images=__import__("numpy").zeros((8, 1, 32, 32), "float32"),
                            probe_labels=__import__("numpy").array([0, 1] * 4))
    at = page(name).run()
    assert not at.exception
    infos = " ".join(i.value for i in at.info)
    assert "still queued or running" in infos
    assert not charts(at)


# -- smoke store ----------------------------------------------------------------------------------------
def test_layers_page_heatmap_and_table(smoke_home):
    store, experiment_id = smoke_home
    at = page("layers").run()
    assert not at.exception
    (chart,) = charts(at)
    spec = figure_json(chart)
    assert '"type":"heatmap"' in spec.replace(" ", "") and "Layer-by-layer CKA" in spec
    diagonal = at.dataframe[0].value
    layers = store.layers(store.runs(experiment_id)[0]["run_id"])
    assert list(diagonal["layer_a"]) == layers and list(diagonal["layer_b"]) == layers
    # Default B is a run of another condition than A.
    a, b = at.selectbox(key="run_a").value, at.selectbox(key="run_b").value
    assert store.run(a)["condition"] != store.run(b)["condition"]
    # Same run against itself: CKA 1 on the diagonal.
    at.selectbox(key="run_b").set_value(a).run()
    assert not at.exception
    assert at.dataframe[0].value["cka"].tolist() == pytest.approx([1.0] * len(layers))


def test_families_page_does_not_reopen_run_files_on_a_rerun(smoke_home, monkeypatch):
    """store.layers / representation_epochs open a .npz each: cached on the store's fingerprint."""
    from akp.store import RunStore

    calls: list[str] = []
    for name in ("layers", "representation_epochs", "representations"):
        def counting(self, *args, _orig=getattr(RunStore, name), _name=name, **kwargs):
            calls.append(_name)
            return _orig(self, *args, **kwargs)
        monkeypatch.setattr(RunStore, name, counting)
    at = page("families").run()
    assert not at.exception and charts(at)
    calls.clear()
    at.run()  # a rerun (any widget change) with the store unchanged
    assert not at.exception and charts(at)
    assert calls == []


def test_representations_page_two_umaps_and_selection(smoke_home, warm_umap):
    from akp.analysis import label_families

    store, experiment_id = smoke_home
    runs = store.runs(experiment_id)
    family = dict(zip([r["run_id"] for r in runs], label_families(runs), strict=True))
    at = page("representations").run()
    assert not at.exception
    assert at.selectbox(key="layer").value == "embedding"
    # Default: one happy run (left) and one unhappy run (right).
    left, right = at.selectbox(key="left").value, at.selectbox(key="right").value
    assert (family[left], family[right]) == ("happy", "unhappy")
    umaps = charts(at)
    assert len(umaps) == 2 and all('"type":"scatter"' in figure_json(c).replace(" ", "") for c in umaps)
    # A run of the shock condition: its swap epoch is marked.
    shock = next(r["run_id"] for r in runs if r["condition"] == "sigmoid-shock")
    at.selectbox(key="right").set_value(shock).run()
    assert not at.exception
    assert any("⚡ epoch 1" in c.value for c in at.caption)
    # Colour by correctness: the legend holds correct/wrong.
    at.segmented_control(key="color").set_value("correctness").run()
    assert not at.exception
    names = {t["name"] for c in charts(at)[:2] for t in json.loads(figure_json(c))["data"]}
    assert names <= {"correct", "wrong", "selected"} and names & {"correct", "wrong"}
    # A probe id typed in the search box (a click fills the same box) shows that image, ringed in both plots.
    at.text_input(key="probe").input("3").run()
    assert not at.exception
    assert any("probe #3" in figure_json(c) for c in charts(at))
    rings = [t for c in charts(at)[:2] for t in json.loads(figure_json(c))["data"] if t["name"] == "selected"]
    assert [t["meta"] for t in rings] == [{"probe": 3}, {"probe": 3}]
    shown = [at.selectbox(key=k).options[at.selectbox(key=k).index] for k in ("left", "right")]
    assert [d.value["run"].tolist() for d in at.dataframe if "distance to class centre" in d.value.columns] == [shown]
    # A bad id names the box and what it allows, and keeps the image shown.
    at.text_input(key="probe").input("abc").run()
    assert not at.exception
    assert any(e.value.startswith("Probe id: a whole number from 0 to") for e in at.error)
    assert any("probe #3" in figure_json(c) for c in charts(at))


def test_families_page_verdict_heatmap_and_plots(smoke6_home):
    from akp.analysis import akp_test

    store, experiment_id = smoke6_home
    at = page("families").run()
    assert not at.exception
    assert at.selectbox(key="layer").value == "embedding"
    headers = [h.value for h in at.header]
    assert "Verdict" in headers
    expected = akp_test(store, experiment_id, layer="embedding", permutations=999)
    shown = [e.value for e in (*at.info, *at.warning, *at.success)]
    assert expected.verdict in shown
    specs = [figure_json(c).replace(" ", "") for c in charts(at)]
    assert any('"type":"heatmap"' in s for s in specs)  # the CKA matrix
    assert any('"name":"happy"' in s and '"type":"scatter"' in s for s in specs)  # accuracy vs gap

    # A manual threshold below every run that learnt: the runs that predict one class (all sigmoid-shock runs)
    # are collapsed, left out with their reason, and the verdict says only one family is left.
    learnt = [r["test_acc"] for r in store.runs(experiment_id) if r["test_acc"] > 0.52]
    assert len(learnt) >= 4, learnt
    cut = round((0.53 + min(learnt)) / 2, 3)
    at.toggle(key="auto_threshold").set_value(False).run()
    at.slider(key="threshold").set_value(cut).run()
    assert not at.exception
    expected = akp_test(store, experiment_id, layer="embedding", threshold=cut, permutations=999)
    assert expected.verdict_code == "one_family"  # every run below the cut is collapsed
    assert any(e["reason"].startswith("collapsed") for e in expected.excluded)
    assert expected.verdict in [e.value for e in (*at.warning, *at.success, *at.info)]
    assert any("collapsed run(s) excluded" in c.value for c in at.caption)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["p (principle)"] == "—" and metrics["p (reverse, anti-AKP)"] == "—"
    specs = [figure_json(c).replace(" ", "") for c in charts(at)]
    assert any("Convergence" in s for s in specs)

    # Angular distance and debiased CKA are honoured (and cached per option).
    at.segmented_control(key="distance").set_value("angular").run()
    at.toggle(key="debiased").set_value(True).run()
    assert not at.exception
    expected = akp_test(store, experiment_id, layer="embedding", threshold=cut, distance="angular",
                        debiased=True, permutations=999)
    assert expected.verdict in [e.value for e in (*at.warning, *at.success, *at.info)]


@pytest.mark.parametrize("name,marker", [("families", "Verdict"), ("learn", "Glossary")])
def test_pages_inside_the_app_navigation(name, marker, smoke_home):
    """The pages also run inside app.py's navigation (shared sidebar, job manager), with the URL's experiment."""
    import ui

    store, experiment_id = smoke_home
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        at.query_params["experiment"] = experiment_id
        at.run()
        at.switch_page(f"pages/{name}.py")
        at.query_params["experiment"] = experiment_id
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert marker in [h.value for h in (*at.header, *at.subheader)]
        if name != "learn":
            assert at.selectbox(key="akp_experiment").value == experiment_id
    finally:
        ui.shutdown_managers(store.home)


def _frame_with(at: AppTest, column: str):
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"one table with column {column!r}"
    return frames[0]


def test_families_page_diagnostics_floor_route_convergence_and_sweep(smoke6_home):
    from akp import analysis as A

    store, experiment_id = smoke6_home
    at = page("families").run()
    assert not at.exception
    result = A.akp_test(store, experiment_id, layer="embedding", rule="accuracy", permutations=999)

    # Diagnostics per run, as the verdict computed them; a warning before the verdict when any is flagged.
    diag = _frame_with(at, "effective_rank")
    assert list(diag["run_id"]) == [d["run_id"] for d in result.diagnostics]
    assert list(diag["collapsed"]) == [d["collapsed"] for d in result.diagnostics]
    ranks = [d["effective_rank"] for d in result.diagnostics if d["effective_rank"] is not None]
    assert diag["effective_rank"].dropna().tolist() == pytest.approx(ranks)
    flagged = any(d["rank_one"] or d["collapsed"] for d in result.diagnostics)
    assert flagged == any("Read the verdict with care" in w.value for w in at.warning)

    # Convergence within routes from epoch -1, with the untrained floor as a reference line.
    routes = A.route_convergence(store, experiment_id, layer="embedding", rule="accuracy", seed=0)
    floor = A.cka_floor(store, experiment_id, layer="embedding")
    assert floor.n_pairs == 66 and routes.floor.mean == floor.mean  # 12 runs, all captured untrained
    conv_figs = [json.loads(figure_json(c)) for c in charts(at) if "Convergence within routes" in figure_json(c)]
    assert len(conv_figs) == 1, [i.value for i in at.info]
    (conv,) = conv_figs
    epochs, by_route = A.route_series(routes.points)
    assert [t["name"] for t in conv["data"]] == list(by_route) and epochs[0] == -1
    assert [s["y0"] for s in conv["layout"]["shapes"] if s["y0"] == s["y1"]] == pytest.approx([floor.mean])
    trends = _frame_with(at, "trend")
    assert list(trends["trend"]) == [t.status for t in routes.trends]
    assert list(trends["seeds"]) == [t.n_seeds for t in routes.trends]

    # The threshold sweep: the verdict at each threshold of the default grid, with the runs near it.
    sweep = _frame_with(at, "near runs")
    rows = A.threshold_sweep(store, experiment_id, layer="embedding", rule="accuracy", permutations=999)
    assert list(sweep["threshold"]) == pytest.approx([r.threshold for r in rows])
    assert list(sweep["verdict"]) == [r.verdict_code or "refused" for r in rows]
    assert list(sweep["runs near"]) == [len(r.near) for r in rows]

    # The heatmap's colour bar carries the floor, and a caption states it (when two runs can be compared).
    figs = [json.loads(figure_json(c)) for c in charts(at)]
    heat = [f for f in figs if any(t.get("type") == "heatmap" for t in f["data"])]
    if len(result.run_ids) >= 2:
        (fig,) = heat
        assert any(abs(v - floor.mean) < 1e-12 for v in fig["data"][0]["colorbar"]["tickvals"])
        assert any(f"{floor.mean:.3f} on average" in c.value for c in at.caption)
        # Ecology's picture: the PCoA of the same distances, with each family's centre.
        ordination = A.family_pcoa(result.distances, result.families)
        (pcoa,) = [f for f in figs if "PCoA" in str(f["layout"].get("title"))]
        centres = {t["name"]: (t["x"][0], t["y"][0]) for t in pcoa["data"] if t["name"].endswith(" centre")}
        assert centres == {f"{fam} centre": pytest.approx(c) for fam, c in ordination.centres.items()}
    else:
        assert not heat
