"""AppTest of the analysis pages (Families, Representations, Layers, Learn).

Each page runs standalone on an empty store and on the shared store trained on
the smoke preset (``smoke_store`` in conftest). UMAP is warmed up once for the
module so the Representations page draws instead of waiting.
"""
from __future__ import annotations

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
def smoke_home(smoke_store, monkeypatch) -> tuple:
    store, experiment_id = smoke_store
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
    terms = list(at.dataframe[0].value["term"])
    for term in ("swap event", "swap schedule", "condition", "run", "seed", "experiment", "probe set",
                 "family", "dispersion", "CKA", "debiased CKA", "PERMDISP"):
        assert term in terms


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


def test_representations_page_two_umaps_and_selection(smoke_home, warm_umap):
    store, experiment_id = smoke_home
    at = page("representations").run()
    assert not at.exception
    assert at.selectbox(key="layer").value == "embedding"
    left, right = at.selectbox(key="left").value, at.selectbox(key="right").value
    assert left != right
    assert store.run(left)["test_acc"] >= store.run(right)["test_acc"]
    umaps = charts(at)
    assert len(umaps) == 2
    assert all("scatter" in figure_json(c) for c in umaps)
    # The swap epoch of the shock condition is marked.
    assert any("⚡ epoch 1" in c.value for c in at.caption)
    # Colour by correctness: legend holds correct/wrong.
    at.segmented_control(key="color").set_value("correctness").run()
    assert not at.exception
    assert '"name":"correct"' in figure_json(charts(at)[0]).replace(" ", "")
    # A clicked point (as the selection callback records it) shows the probe image.
    at.session_state["probe"] = 3
    at.run()
    assert not at.exception
    assert any("probe #3" in figure_json(c) for c in charts(at))
