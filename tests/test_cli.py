import json
import subprocess
import sys

import numpy as np
import pytest

from akp.cli import main
from akp.experiment import load_preset
from akp.store import RunStore

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_experiment_smoke_end_to_end_in_a_subprocess(tmp_path):
    home = tmp_path / "store"
    proc = subprocess.run([sys.executable, "-m", "akp", "experiment", "smoke", "--home", str(home)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "condition" in proc.stdout and "steady" in proc.stdout and "sigmoid-shock" in proc.stdout
    assert "done 2" in proc.stdout
    store = RunStore(home)
    (exp,) = store.experiments()
    runs = store.runs(exp["id"])
    assert len(runs) == 4 and {r["state"] for r in runs} == {"done"}
    assert all(len(store.metrics(r["run_id"])) == 2 for r in runs)


@pytest.mark.parametrize("argv, message", [
    (["experiment", "nosuch"], "preset: unknown 'nosuch'; allowed: "),
    (["experiment", "smoke", "--epochs", "0"], "epochs: must be an integer from 1 to 200, got 0"),
    (["experiment", "smoke", "--seeds", "100"], "seeds: must be an integer from 1 to 64"),
    (["show", "e-nope"], "no experiment 'e-nope'"),
    (["show", "../../etc"], "invalid id"),
    (["experiment", "pcam"], "dataset: the pcam preset brings no data: give an image folder"),
])
def test_bad_input_exits_2_with_the_message_and_writes_nothing(tmp_path, capsys, argv, message):
    home = tmp_path / "store"
    assert main([*argv, "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not home.exists() or RunStore(home).experiments() == []


def test_bad_spec_file_is_reported(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "x", "conditions": [{"name": "a", "activation": "swish9"}]}))
    assert main(["experiment", str(path), "--home", str(tmp_path / "s")]) == 2
    assert "conditions[0]: activation: unknown function 'swish9'; allowed:" in capsys.readouterr().err


def test_list_and_show(smoke_store, capsys):
    store, eid = smoke_store
    assert main(["list", "--home", str(store.home)]) == 0
    out = capsys.readouterr().out
    assert eid in out and "done 4" in out
    assert main(["show", eid, "--home", str(store.home)]) == 0
    out = capsys.readouterr().out
    assert out.count(f"{eid}-c") == 4 and "sigmoid-shock" in out


def test_list_on_an_empty_store_suggests_a_first_command(tmp_path, capsys):
    assert main(["list", "--home", str(tmp_path / "empty")]) == 0
    assert "python -m akp experiment smoke" in capsys.readouterr().out


def test_verdict_prints_the_families_test_and_verdict(smoke3_store, capsys):
    from akp.analysis import akp_test

    store, eid = smoke3_store
    assert main(["verdict", eid, "--home", str(store.home), "--permutations", "99"]) == 0
    out = capsys.readouterr().out
    expected = akp_test(store, eid, permutations=99)
    assert f"verdict: {expected.verdict}" in out
    assert f"happy {expected.families.count('happy')}, unhappy {expected.families.count('unhappy')} runs" in out
    assert "exploratory (Holm-adjusted over these rows):" in out


def test_verdict_json_is_one_object_with_the_contract_keys(smoke3_store, capsys):
    from akp.analysis.report import REPORT_KEYS

    store, eid = smoke3_store
    assert main(["verdict", eid, "--home", str(store.home), "--json", "--permutations", "99"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("verdict_code", "verdict", "primary_layer", "threshold", "threshold_source", "unit",
                "family_counts", "dispersion", "p_value", "exploratory", "runs"):
        assert key in data
    assert set(REPORT_KEYS) <= set(data)
    assert data["primary_layer"] == "embedding" and data["unit"] in ("run", "condition")
    assert data["threshold_source"] in ("spec", "largest_gap", "option")
    assert sum(data["family_counts"].values()) == len(data["runs"]) - sum(r["collapsed"] for r in data["runs"])
    for run in data["runs"]:
        assert {"run_id", "condition", "seed", "family", "test_acc", "effective_rank", "total_variance",
                "collapsed"} <= set(run)
    # Every other captured layer x 3 measures, less the primary (embedding, 1-cka), each with its Holm p.
    assert len(data["exploratory"]) == 4 * 3 - 1
    assert all({"layer", "measure", "p_value", "p_holm"} <= set(e) for e in data["exploratory"])
    assert main(["verdict", eid, "--home", str(store.home), "--json", "--threshold", "0.6",
                 "--no-exploratory", "--permutations", "9"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["threshold_source"] == "option" and data["threshold"] == 0.6 and data["exploratory"] == []


def test_verdict_bad_input_exits_2_with_the_allowed_values(smoke_store, capsys):
    store, eid = smoke_store
    assert main(["verdict", eid, "--layer", "conv9", "--home", str(store.home)]) == 2
    assert "layer: 'conv9' was not captured in this experiment; allowed: conv1, conv2, embedding, logits" in (
        capsys.readouterr().err)
    assert main(["verdict", eid, "--permutations", "0", "--home", str(store.home)]) == 2
    assert "permutations: must be an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "field"), [
    ("[" * 30000 + "]" * 30000, "experiment: nested too deeply"),
    ('{"name": "x", "epochs": ' + "9" * 5000 + "}", "experiment: holds a number too long"),
    ('{"name": "x", "layers": 5}', "layers:"),
    ('{"name": "x", "capture_epochs": 5}', "capture_epochs:"),
    ('{"name": "x", "model": {"width": "wide"}}', "model.width:"),
    ('{"name": "x", "conditions": [5]}', "conditions[0]:"),
    ('{"name": "' + "x" * 100_000 + '"}', "name: at most 200 characters"),
])
def test_hostile_spec_files_exit_2_with_one_line_naming_the_field(tmp_path, capsys, content, field):
    spec = tmp_path / "spec.json"
    spec.write_text(content)
    home = tmp_path / "home"
    assert main(["experiment", str(spec), "--home", str(home), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {field}") and err.count("\n") == 1 and "Traceback" not in err
    assert len(err) < 400
    assert not (home / "akp.sqlite").exists() or RunStore(home).experiments() == []


def test_a_closed_pipe_exits_quietly(tmp_path):
    import subprocess
    import sys

    home = tmp_path / "home"
    store = RunStore(home)
    for _ in range(3):
        store.create_experiment(load_preset("smoke"), probe_images=np.zeros((4, 1, 16, 16), np.float32),
                                probe_labels=np.array([0, 1, 0, 1]))
    proc = subprocess.run(f"{sys.executable} -m akp list --home {home} | head -1", shell=True, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.startswith("id") and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_convergence_prints_the_floor_and_a_trend_per_route(smoke_store, capsys):
    from akp.analysis.convergence import cka_floor

    store, eid = smoke_store
    assert main(["convergence", eid, "--json", "--home", str(store.home)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["layer"] == "embedding"
    assert out["floor"]["mean"] == pytest.approx(cka_floor(store, eid, layer="embedding").mean)
    assert {t["condition"] for t in out["trends"]} <= {"steady", "sigmoid-shock"} and out["trends"]
    assert all(t["status"] in ("converging", "not converging", "too few seeds", "too few epochs")
               for t in out["trends"])
    assert main(["convergence", eid, "--home", str(store.home)]) == 0
    assert "untrained floor (epoch -1)" in capsys.readouterr().out
    assert main(["convergence", eid, "--layer", "conv9", "--home", str(store.home)]) == 2
    assert "layer: 'conv9' was not captured" in capsys.readouterr().err
