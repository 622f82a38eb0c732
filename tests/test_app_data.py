"""App tests (Streamlit AppTest) of the Design page's "My data": upload, register, dataset card, launch."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui
from akp.datasets import list_datasets, load_dataset
from akp.datasets.uploads import register_upload
from akp.experiment import load_preset
from akp.store import RunStore
from tests.datasets.test_uploads import CLASSES, image_zip, medmnist_npz, png_bytes

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
TIMEOUT = 120


OFF = "server paths are off on this instance; upload a .zip or .npz, or ask the admin to set AKP_DATA_ROOTS"


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "store"
    monkeypatch.setenv("AKP_HOME", str(home))
    monkeypatch.delenv("AKP_DATA_ROOTS", raising=False)  # server paths off unless a test opens a root
    yield home
    ui.shutdown_managers(home)


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root exported as $AKP_DATA_ROOTS: the app may read server paths under it."""
    root = tmp_path / "data-root"
    root.mkdir()
    monkeypatch.setenv("AKP_DATA_ROOTS", str(root))
    return root


def image_folder(folder: Path) -> Path:
    for k, cls in enumerate(CLASSES):
        (folder / cls).mkdir(parents=True)
        for i in range(10):
            (folder / cls / f"{i}.png").write_bytes(png_bytes(30 + 100 * k + i))
    return folder


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def my_data(preset: str = "smoke") -> AppTest:
    """The Design page on the smoke preset (a fast model and budget), with "My data" chosen."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/design.py").run()
    ok(at)
    at.selectbox(key="design-preset").select(preset).run()
    at.radio(key="design-dataset_kind").set_value("my data").run()
    return ok(at)


def errors(at: AppTest) -> list[str]:
    return [ui.plain(e.value) for e in at.error]  # as read (user text in them is escaped)


def assert_card_shown(at: AppTest, dataset_id: str, total: int) -> None:
    assert any(dataset_id in s.value for s in at.subheader), [s.value for s in at.subheader]
    (table,) = [d.value for d in at.dataframe if "class" in getattr(d.value, "columns", [])]
    assert list(table["class"]) == [*CLASSES, "all"]
    assert int(table["total"].iloc[-1]) == total
    assert any("8x8 px" in c.value for c in at.caption)
    assert len(at.get("image")) >= len(CLASSES)  # one image group per class


def launch_and_check(at: AppTest, home: Path, dataset_id: str) -> None:
    at.button(key="design-launch").click().run()
    ok(at)
    store = RunStore(home)
    exps = store.experiments()
    assert len(exps) == 1, errors(at)
    spec = store.spec(exps[0]["id"])
    assert spec.dataset == dataset_id
    spec.validate()
    assert load_dataset(spec.dataset, spec.dataset_options, home=home).source == dataset_id
    runs = store.runs(exps[0]["id"])
    assert len(runs) == 4 and {r["state"] for r in runs} <= {"queued", "running", "done", "diverged"}
    manager = ui.manager_of(home)
    assert len(manager.status(exps[0]["id"])) == 4


def test_upload_zip_shows_the_card_and_launches(empty_home: Path) -> None:
    at = my_data()
    at.selectbox(key="design-data_size").select(8).run()
    at.file_uploader(key="design-data_upload").upload("cells.zip", image_zip(), "application/zip").run()
    ok(at)
    assert not errors(at), errors(at)
    (card,) = list_datasets(empty_home)
    assert at.text_input(key="design-dataset_path").value == card["id"]
    assert at.selectbox(key="design-registered").value == card["id"]
    assert_card_shown(at, card["id"], 20)
    # The same upload is handled once: a rerun registers nothing new.
    at.run()
    assert len(list_datasets(empty_home)) == 1
    assert not (empty_home / "uploads").exists()
    launch_and_check(at, empty_home, card["id"])


def test_bad_zip_upload_shows_the_error_and_registers_nothing(empty_home: Path) -> None:
    at = my_data()
    bad = image_zip(extra={"../evil.png": png_bytes(1)})
    at.file_uploader(key="design-data_upload").upload("evil.zip", bad, "application/zip").run()
    ok(at)
    assert any("evil.zip" in e and "outside the folder" in e for e in errors(at)), errors(at)
    assert list_datasets(empty_home) == []
    assert not (empty_home / "uploads").exists()
    at.run()  # the message stays while the file sits in the uploader
    assert any("evil.zip" in e for e in errors(at))


def test_npz_upload_registers(empty_home: Path) -> None:
    at = my_data()
    at.selectbox(key="design-data_size").select(16).run()
    at.file_uploader(key="design-data_upload").upload("mnist.npz", medmnist_npz(), "application/octet-stream").run()
    ok(at)
    (card,) = list_datasets(empty_home)
    assert card["image_size"] == [16, 16]
    assert at.text_input(key="design-dataset_path").value == card["id"]


def test_registered_dataset_selectbox_card_and_launch(empty_home: Path) -> None:
    dataset_id = register_upload(image_zip(), "fixture.zip", home=empty_home, size=8)
    at = my_data()
    at.selectbox(key="design-registered").select(dataset_id).run()
    ok(at)
    assert at.text_input(key="design-dataset_path").value == dataset_id
    assert not errors(at), errors(at)
    assert_card_shown(at, dataset_id, 20)
    launch_and_check(at, empty_home, dataset_id)


def test_register_button_for_a_server_path(empty_home: Path, data_root: Path) -> None:
    folder = image_folder(data_root / "imgs")
    at = my_data()
    at.selectbox(key="design-data_size").select(8).run()
    at.text_input(key="design-dataset_path").input(str(folder)).run()
    at.button(key="design-register").click().run()
    ok(at)
    (card,) = list_datasets(empty_home)
    assert at.text_input(key="design-dataset_path").value == card["id"]
    assert_card_shown(at, card["id"], 20)


def test_path_is_registered_at_launch(empty_home: Path, data_root: Path) -> None:
    folder = image_folder(data_root / "imgs")
    at = my_data()
    at.selectbox(key="design-data_size").select(8).run()
    at.text_input(key="design-dataset_path").input(str(folder)).run()
    (at.button(key="design-launch").click().run())
    ok(at)
    (card,) = list_datasets(empty_home)
    exps = RunStore(empty_home).experiments()
    assert len(exps) == 1 and RunStore(empty_home).spec(exps[0]["id"]).dataset == card["id"]


@pytest.mark.parametrize("value", ["no/such/folder", "ds-0123456789abcdef"])
def test_bad_path_shows_an_error_and_creates_nothing(empty_home: Path, data_root: Path, value: str) -> None:
    if not value.startswith("ds-"):
        value = str(data_root / value)  # inside the root: the loader may say it does not exist
    at = my_data()
    at.text_input(key="design-dataset_path").input(value).run()
    at.button(key="design-register").click().run()
    ok(at)
    problem = "is not registered" if value.startswith("ds-") else "no such folder or file"
    assert any(problem in e and value in e for e in errors(at)), errors(at)
    at.button(key="design-launch").click().run()
    ok(at)
    assert any("Nothing was queued" in e for e in errors(at)), errors(at)
    assert RunStore(empty_home).experiments() == []
    assert list_datasets(empty_home) == []


# -- server paths only inside $AKP_DATA_ROOTS (a shared instance must not read the rest of the server) -----------
def refused_everywhere(at: AppTest, home: Path, problem: str) -> list[str]:
    """Register and Launch both refuse with ``problem``; nothing registered or created. The messages shown."""
    at.button(key="design-register").click().run()
    ok(at)
    shown = errors(at)
    assert any(problem in e and "Nothing was registered" in e for e in shown), shown
    at.button(key="design-launch").click().run()
    ok(at)
    assert any(problem in e and "Nothing was queued" in e for e in errors(at)), errors(at)
    assert list_datasets(home) == [] and RunStore(home).experiments() == []
    return shown


def test_server_paths_are_off_without_data_roots(empty_home: Path, tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "imgs")
    at = my_data()
    at.text_input(key="design-dataset_path").input(str(folder)).run()
    assert any(OFF in e for e in errors(at)), errors(at)  # said as soon as the path is typed
    refused_everywhere(at, empty_home, OFF)
    # Uploads and registered ids keep working.
    at.file_uploader(key="design-data_upload").upload("cells.zip", image_zip(), "application/zip").run()
    ok(at)
    (card,) = list_datasets(empty_home)
    assert at.text_input(key="design-dataset_path").value == card["id"]
    assert not errors(at), errors(at)


@pytest.mark.parametrize("how", ["outside", "dotdot", "symlink"])
def test_server_path_outside_the_data_roots_is_refused(empty_home: Path, data_root: Path, tmp_path: Path,
                                                       how: str) -> None:
    folder = image_folder(tmp_path / "private" / "imgs")
    (data_root / "link").symlink_to(folder)
    path = {"outside": str(folder), "dotdot": f"{data_root}/../private/imgs", "symlink": str(data_root / "link")}[how]
    at = my_data()
    at.text_input(key="design-dataset_path").input(path).run()
    shown = refused_everywhere(at, empty_home, "outside the data folders")
    assert not any(str(folder) in e or "private" in e for e in shown), shown


def test_refusal_does_not_tell_whether_an_outside_path_exists(empty_home: Path, data_root: Path,
                                                              tmp_path: Path) -> None:
    existing = image_folder(tmp_path / "private")
    shown = []
    for path in (existing, tmp_path / "nothing-here"):
        at = my_data()
        at.text_input(key="design-dataset_path").input(str(path)).run()
        at.button(key="design-register").click().run()
        ok(at)
        shown.append(errors(at))
    assert shown[0] == shown[1] and shown[0], shown


@pytest.mark.parametrize("roots", [False, True])
def test_preset_and_spec_import_with_a_path_are_checked(empty_home: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, roots: bool) -> None:
    """The pcam preset names no path (it keeps the one typed); an imported spec may name any path."""
    if roots:
        monkeypatch.setenv("AKP_DATA_ROOTS", str((ROOT.parent / "shared" / "data").resolve()))
    at = my_data("pcam")
    assert at.text_input(key="design-dataset_path").value == ""
    assert at.radio(key="design-dataset_kind").value == "my data"
    assert at.number_input(key="design-epochs").value == load_preset("pcam", dataset="x").epochs
    at.button(key="design-launch").click().run()
    assert any("Nothing was queued" in e and "dataset" in e for e in errors(at)), errors(at)
    shared = str(ROOT.parent / "shared" / "data" / "pcam-test")
    at.selectbox(key="design-preset").select("smoke").run()
    at.radio(key="design-dataset_kind").set_value("my data").run()
    at.text_input(key="design-dataset_path").input(shared).run()
    at.selectbox(key="design-preset").select("pcam").run()
    assert at.text_input(key="design-dataset_path").value == shared  # kept: the preset brings no path
    assert any(OFF in e for e in errors(at)) != roots, errors(at)
    spec = load_preset("smoke").to_dict()
    spec["dataset"], spec["dataset_options"] = "/etc", {"size": 8}
    at.file_uploader(key="design-upload").upload("spec.json", json.dumps(spec).encode(), "application/json").run()
    ok(at)
    assert at.text_input(key="design-dataset_path").value == "/etc"
    expected = "outside the data folders" if roots else OFF
    assert any(expected in e for e in errors(at)), errors(at)
    at.button(key="design-launch").click().run()
    ok(at)
    assert any(expected in e and "Nothing was queued" in e for e in errors(at)), errors(at)
    assert RunStore(empty_home).experiments() == [] and list_datasets(empty_home) == []
