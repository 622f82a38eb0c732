"""The command line's experiment management: rename, note, tag, delete, with owners; list shows owner and tags."""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest

from akp.cli import main
from akp.experiment import load_preset
from akp.store import RunStore

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
PROBE = (np.zeros((4, 1, 8, 8), np.float32), np.array([0, 1, 0, 1]))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A store with one experiment of ann's whose runs are all finished: (store, experiment_id, argv tail)."""
    monkeypatch.delenv("AKP_USER", raising=False)
    monkeypatch.delenv("AKP_ADMINS", raising=False)
    store = RunStore(tmp_path / "home")
    spec = load_preset("smoke")
    spec.name = "first"
    eid = store.create_experiment(spec, owner="ann", probe_images=PROBE[0], probe_labels=PROBE[1])
    for r in store.runs(eid):
        store.set_state(r["run_id"], "done")
    return store, eid, ["--home", str(store.home)]


def test_owner_renames_notes_and_tags_and_list_shows_owner_and_tags(setup, capsys, monkeypatch):
    store, eid, home = setup
    assert main(["rename", eid, "second try", "--user", "ann", *home]) == 0
    assert capsys.readouterr().out.strip() == f"experiment {eid}: renamed to second try"
    monkeypatch.setenv("AKP_USER", "ann")  # the default user
    assert main(["note", eid, "lr too high?\nrerun with 0.01", *home]) == 0
    assert main(["tag", eid, "class", "demo", *home]) == 0
    assert main(["tag", eid, "demo", "lab", *home]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"experiment {eid}: tags class, demo, lab"
    assert main(["tag", eid, "class", "--remove", *home]) == 0
    record = store.experiment(eid)
    assert (record["name"], record["notes"], record["tags"]) == ("second try", "lr too high?\nrerun with 0.01",
                                                                 ["demo", "lab"])
    capsys.readouterr()
    assert main(["list", *home]) == 0
    header, _, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["id", "name", "owner", "created", "runs", "states", "tags"]
    assert row.startswith(eid) and " ann " in row and row.rstrip().endswith("demo, lab") and "second try" in row
    assert main(["show", eid, *home]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:4] == ["owner ann; tags demo, lab", "notes: lr too high?", "       rerun with 0.01"]
    assert main(["note", eid, "--clear", *home]) == 0
    assert store.experiment(eid)["notes"] == ""


@pytest.mark.parametrize("argv", [
    ["rename", "{eid}", "mine"], ["note", "{eid}", "mine"], ["note", "{eid}", "--clear"], ["tag", "{eid}", "x"],
    ["tag", "{eid}", "x", "--remove"], ["delete", "{eid}", "--yes"], ["delete", "{eid}"],
])
def test_another_user_is_refused_with_one_line_naming_the_owner(setup, capsys, argv):
    store, eid, home = setup
    before = store.experiment(eid), store.runs(eid)
    assert main([a.format(eid=eid) for a in argv] + ["--user", "bob", *home]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: experiment {eid} belongs to 'ann': only its owner or an admin may "
                   f"{dict(rename='rename', note='annotate', tag='tag', delete='delete')[argv[0]]} it "
                   "('bob' is neither)\n")
    assert (store.experiment(eid), store.runs(eid)) == before


def test_the_default_user_is_local_and_admins_may_act(setup, capsys, monkeypatch):
    store, eid, home = setup
    assert main(["rename", eid, "x", *home]) == 2
    err = capsys.readouterr().err
    assert "belongs to 'ann'" in err and "('local' is neither)" in err
    monkeypatch.setenv("AKP_ADMINS", "root")
    assert main(["rename", eid, "by root", "--user", "root", *home]) == 0
    assert store.experiment(eid)["name"] == "by root"


@pytest.mark.parametrize("argv, message", [
    (["rename", "{eid}", " "], "error: name: must be non-empty text of at most 200 characters"),
    (["rename", "{eid}", "x" * 201], "error: name: at most 200 characters, got 201"),
    (["note", "{eid}"], "error: text: give the notes as TEXT, or --clear to remove them (not both)"),
    (["note", "{eid}", "x", "--clear"], "error: text: give the notes as TEXT, or --clear"),
    (["note", "{eid}", "x" * 5001], "error: notes: at most 5000 characters, got 5001"),
    (["tag", "{eid}", "a,b"], "error: tags[0]: must not contain commas or control characters"),
    (["tag", "{eid}", "ok", "t" * 40], "error: tags[1]: at most 32 characters, got 40"),
    (["tag", "e-nope", "x"], "error: experiment_id: no experiment 'e-nope'"),
    (["delete", "../etc", "--yes"], "error: experiment_id: invalid id"),
    (["rename", "{eid}", "y", "--user", "a\tb"], "error: --user: must not contain control characters"),
])
def test_bad_input_exits_2_naming_the_field_and_changes_nothing(setup, capsys, argv, message):
    store, eid, home = setup
    before = store.experiment(eid)
    assert main([a.format(eid=eid) for a in argv] + (["--user", "ann"] if "--user" not in argv else []) + home) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1 and "Traceback" not in err
    assert store.experiment(eid) == before


def test_delete_asks_on_a_terminal_refuses_without_one_and_refuses_active_runs(setup, capsys, monkeypatch):
    store, eid, home = setup
    ann = ["--user", "ann", *home]

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # not a terminal
    assert main(["delete", eid, *ann]) == 2
    assert "--yes: not asking on a non-interactive input; pass --yes" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    assert main(["delete", eid, *ann]) == 1
    assert "Delete experiment" in capsys.readouterr().out and store.experiment(eid)
    monkeypatch.setattr(sys, "stdin", Terminal(""))  # end of input: not a yes
    assert main(["delete", eid, *ann]) == 1

    run = store.runs(eid)[0]["run_id"]
    store.set_state(run, "running")
    assert main(["delete", eid, "--yes", *ann]) == 2
    assert "has 1 queued or running runs; cancel them first" in capsys.readouterr().err
    store.set_state(run, "cancelled")
    n_runs = len(store.runs(eid))
    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    assert main(["delete", eid, *ann]) == 0
    assert capsys.readouterr().out.endswith(f"experiment {eid}: deleted ({n_runs} runs)\n")
    assert store.experiments() == [] and not store.experiment_dir(eid).exists()


def test_delete_yes_in_a_subprocess_without_a_terminal(setup):
    store, eid, home = setup
    proc = subprocess.run([sys.executable, "-m", "akp", "delete", eid, "--yes", "--user", "ann", *home],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"experiment {eid}: deleted")
    assert store.experiments() == []
