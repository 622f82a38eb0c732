"""Tests of akp.datasets.uploads and akp.datasets.cards: registering uploads and server paths, cards for display."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from akp.datasets import DatasetError, dataset_card, list_datasets, load_registered
from akp.datasets.cards import card_samples, card_summary, card_table, dataset_label
from akp.datasets.uploads import check_server_path, data_roots, parse_positive_classes, register_path, register_upload

CLASSES = ("benign", "malignant")


def png_bytes(value: int, size: int = 8, mode: str = "L") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), value if mode == "L" else (value, 0, 255 - value)).save(buf, format="PNG")
    return buf.getvalue()


def image_zip(n_per_class: int = 10, *, wrapper: str = "cells", extra: dict[str, bytes] | None = None) -> bytes:
    """A zip of an image folder: ``wrapper/<class>/img<i>.png``, tiny grayscale PNGs."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, cls in enumerate(CLASSES):
            for i in range(n_per_class):
                zf.writestr(f"{wrapper}/{cls}/img{i:02d}.png", png_bytes(40 + 150 * k + i))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def medmnist_npz(n: int = 12, size: int = 8) -> bytes:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, m in (("train", n), ("val", n // 2), ("test", n // 2)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (m, size, size), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(m) % 2).reshape(-1, 1).astype(np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def files_under(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file()) if home.exists() else []


def test_register_zip_upload(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ds_id = register_upload(image_zip(), "my cells.zip", home=home, size=8)
    card = dataset_card(ds_id, home=home)
    assert card["class_names"] == list(CLASSES)
    assert card["image_size"] == [8, 8] and card["channels"] == 1
    assert card["name"] == "my-cells"
    assert sum(card["n_images"].values()) == 20
    ds = load_registered(ds_id, home=home)
    assert ds.x_train.shape[1:] == (1, 8, 8)
    # The temporary upload and extracted folder are gone.
    assert not (home / "uploads").exists()
    assert [c["id"] for c in list_datasets(home)] == [ds_id]


def test_same_upload_twice_gives_the_same_id(tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = image_zip()
    first = register_upload(data, "a.zip", home=home, size=8)
    second = register_upload(io.BytesIO(data), "b.zip", home=home, size=8)  # file-like works too
    assert first == second
    assert len(list_datasets(home)) == 1
    # Other options give another dataset.
    assert register_upload(data, "a.zip", home=home, size=8, positive_classes=["malignant"]) != first


def test_register_npz_upload(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ds_id = register_upload(medmnist_npz(), "pathmnist.npz", home=home, size=None)
    card = dataset_card(ds_id, home=home)
    assert card["counts"] == {"train": {"0": 6, "1": 6}, "val": {"0": 3, "1": 3}, "test": {"0": 3, "1": 3}}
    assert not (home / "uploads").exists()


def test_npz_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    buf = io.BytesIO()
    np.savez(buf, train_images=np.array([{"a": 1}], dtype=object), train_labels=np.zeros(1))
    with pytest.raises(DatasetError, match=r"^evil\.npz"):
        register_upload(buf.getvalue(), "evil.npz", home=home)
    assert files_under(home) == []


@pytest.mark.parametrize(("name", "extra", "message"), [
    ("escape.zip", {"../evil.png": png_bytes(1)}, r"^escape\.zip: .*\.\."),
    ("abs.zip", {"/etc/evil.png": png_bytes(1)}, r"^abs\.zip"),
    ("notes.zip", {"cells/benign/readme.txt": b"hi"}, r"^notes\.zip/.*readme\.txt: not an image file"),
    ("broken.zip", {"cells/benign/bad.png": b"not a png"}, r"^broken\.zip: [^.]*bad\.png: not a readable image"),
])
def test_bad_zip_names_the_file_and_leaves_nothing(tmp_path: Path, name: str, extra: dict, message: str) -> None:
    home = tmp_path / "home"
    with pytest.raises(DatasetError, match=message):
        register_upload(image_zip(extra=extra), name, home=home, size=8)
    assert files_under(home) == []
    assert not (home / "uploads").exists() and not (home / "datasets").exists()
    assert not (tmp_path / "evil.png").exists()


def test_bad_zip_leaves_an_existing_home_as_it_was(tmp_path: Path) -> None:
    home = tmp_path / "home"
    good = register_upload(image_zip(), "good.zip", home=home, size=8)
    before = files_under(home)
    with pytest.raises(DatasetError, match=r"^escape\.zip"):
        register_upload(image_zip(extra={"../x.png": png_bytes(1)}), "escape.zip", home=home, size=8)
    assert files_under(home) == before
    assert [c["id"] for c in list_datasets(home)] == [good]


@pytest.mark.parametrize(("data", "name", "message"), [
    (b"PK\x03\x04garbage", "junk.zip", r"^junk\.zip: not a zip archive"),
    (b"hello", "data.csv", r"^data\.csv: not a dataset upload"),
    (b"x" * 100, "big.zip", r"^big\.zip: file is 100 bytes; at most 10 bytes"),
])
def test_refused_uploads(tmp_path: Path, data: bytes, name: str, message: str) -> None:
    home = tmp_path / "home"
    with pytest.raises(DatasetError, match=message):
        register_upload(data, name, home=home, max_bytes=10 if name == "big.zip" else 10**6)
    assert files_under(home) == []


def test_file_like_upload_over_the_cap(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"^big\.npz: file is larger than the limit of 10 bytes"):
        register_upload(io.BytesIO(b"x" * 100), "big.npz", home=tmp_path / "home", max_bytes=10)
    assert files_under(tmp_path / "home") == []


def test_filename_with_path_parts_is_reduced_to_its_name(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ds_id = register_upload(image_zip(), "../../etc/cells.zip", home=home, size=8)
    assert dataset_card(ds_id, home=home)["name"] == "cells"
    assert not (tmp_path / "etc").exists()


def test_register_path_folder_id_and_errors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    folder = tmp_path / "imgs"
    for k, cls in enumerate(CLASSES):
        (folder / cls).mkdir(parents=True)
        for i in range(5):
            (folder / cls / f"{i}.png").write_bytes(png_bytes(30 + 100 * k + i))
    ds_id = register_path(f"  {folder}  ", home=home, size=8)
    assert register_path(ds_id, home=home) == ds_id
    with pytest.raises(DatasetError, match="no such folder or file"):
        register_path(tmp_path / "missing", home=home)
    with pytest.raises(DatasetError, match="is not registered"):
        register_path("ds-0123456789abcdef", home=home)
    with pytest.raises(DatasetError, match="give an image folder"):
        register_path("  ", home=home)


# -- check_server_path: the app's gate on server-side paths ($AKP_DATA_ROOTS) -----------------------------
@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(a data root set in $AKP_DATA_ROOTS holding data/x.npz, a folder outside it holding secret/)."""
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    (root / "data" / "x.npz").write_bytes(b"")
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    monkeypatch.setenv("AKP_DATA_ROOTS", str(root))
    return root, outside


def test_check_server_path_inside_a_root_is_accepted(roots: tuple[Path, Path], monkeypatch) -> None:
    root, _ = roots
    assert check_server_path(root / "data") == (root / "data").resolve()
    assert check_server_path(f"  {root}/data/x.npz ") == (root / "data" / "x.npz").resolve()
    assert check_server_path(root / "data" / "not-yet") == (root / "data" / "not-yet").resolve()  # loaders say
    other = root.parent / "other"
    other.mkdir()
    monkeypatch.setenv("AKP_DATA_ROOTS", f" {other}{os.pathsep}{os.pathsep}{root} ")
    assert data_roots() == [other.resolve(), root.resolve()]
    assert check_server_path(root / "data") == (root / "data").resolve()
    monkeypatch.chdir(root)
    assert check_server_path("data/x.npz") == (root / "data" / "x.npz").resolve()  # relative to the cwd


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "symlink-file", "missing", "root-prefix"])
def test_check_server_path_outside_the_roots_is_refused(roots: tuple[Path, Path], how: str) -> None:
    root, outside = roots
    (outside / "secret" / "a.npz").write_bytes(b"")
    (root / "data" / "escape").symlink_to(outside / "secret")
    (root / "data" / "escape.npz").symlink_to(outside / "secret" / "a.npz")
    (root.parent / "root-evil").mkdir()  # shares the root's name as a string prefix
    path = {"absolute": str(outside / "secret"),
            "dotdot": f"{root}/data/../../outside/secret",
            "symlink": str(root / "data" / "escape"),
            "symlink-file": str(root / "data" / "escape.npz"),
            "missing": str(outside / "nothing-here"),
            "root-prefix": str(root.parent / "root-evil")}[how]
    with pytest.raises(DatasetError, match="outside the data folders") as info:
        check_server_path(path)
    assert str(outside) not in str(info.value) and path not in str(info.value)


def test_check_server_path_message_does_not_tell_whether_an_outside_path_exists(roots, tmp_path) -> None:
    _, outside = roots
    messages = set()
    for path in (outside / "secret", outside / "no-such-thing", "/etc/passwd", "/no/such/file.npz",
                 f"{outside}/secret/../../../../etc", "/etc/passwd/../../x"):
        with pytest.raises(DatasetError) as info:
            check_server_path(path)
        messages.add(str(info.value))
    assert len(messages) == 1, messages


@pytest.mark.parametrize("value", [None, "", f"  {os.pathsep} "])
def test_check_server_path_without_roots_refuses_every_path(tmp_path, monkeypatch, value) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    if value is None:
        monkeypatch.delenv("AKP_DATA_ROOTS", raising=False)
    else:
        monkeypatch.setenv("AKP_DATA_ROOTS", value)
    assert data_roots() == []
    messages = set()
    for path in (folder, tmp_path / "missing"):
        with pytest.raises(DatasetError, match="server paths are off on this instance; upload a .zip or .npz, "
                                               "or ask the admin to set AKP_DATA_ROOTS") as info:
            check_server_path(path)
        messages.add(str(info.value))
    assert len(messages) == 1
    # An explicit list overrides the environment.
    assert check_server_path(folder, roots=[tmp_path]) == folder.resolve()
    with pytest.raises(DatasetError, match="server paths are off"):
        check_server_path(folder, roots=[])
    with pytest.raises(DatasetError, match="give an image folder"):
        check_server_path("  ", roots=[tmp_path])


def test_parse_positive_classes() -> None:
    assert parse_positive_classes("") is None
    assert parse_positive_classes(None) is None
    assert parse_positive_classes(" , ") is None
    assert parse_positive_classes("malignant, atypical, malignant") == ["malignant", "atypical"]


def test_card_table_summary_samples_label(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ds_id = register_upload(image_zip(), "cells.zip", home=home, size=8)
    card = dataset_card(ds_id, home=home)
    rows = card_table(card)
    assert [r["class"] for r in rows] == [*CLASSES, "all"]
    assert list(rows[0]) == ["class", "train", "test", "total"]
    assert rows[0]["train"] + rows[0]["test"] == rows[0]["total"] == 10
    assert rows[-1]["total"] == 20
    assert card_summary(card) == "8x8 px · 1 channel (grayscale) · 2 classes: benign, malignant"
    samples = card_samples(card, home=home)
    assert set(samples) == set(CLASSES)
    assert all(len(v) == 4 and all(p.is_file() for p in v) for v in samples.values())
    assert dataset_label(card) == f"cells · 20 images · {ds_id}"
    # A card whose sample paths point outside its folder yields nothing for them.
    evil = dict(card, samples={"benign": ["../../../etc/passwd"]})
    assert card_samples(evil, home=home) == {"benign": []}
