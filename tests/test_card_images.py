"""Dataset-card sample images inlined as data URIs (they cannot 404 after a rerun)."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from akp.datasets.cards import MAX_INLINE_BYTES, inline_png


def test_a_png_becomes_a_data_uri_with_the_same_bytes(tmp_path) -> None:
    path = tmp_path / "cell.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(path)
    uri = inline_png(path)
    assert uri.startswith("data:image/png;base64,")
    decoded = base64.b64decode(uri.split(",", 1)[1])
    assert decoded == path.read_bytes()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(decoded))), np.asarray(Image.open(path)))


def test_not_a_png_too_big_or_missing_is_not_inlined(tmp_path) -> None:
    jpeg = tmp_path / "cell.jpg"
    Image.new("L", (8, 8)).save(jpeg, format="JPEG")
    assert inline_png(jpeg) is None
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * MAX_INLINE_BYTES)
    assert inline_png(big) is None
    assert inline_png(tmp_path / "absent.png") is None


def test_design_dataset_card_shows_its_samples_inline(tmp_path, monkeypatch) -> None:
    import ui
    from akp.datasets.uploads import register_upload
    from tests.datasets.test_uploads import image_zip
    from tests.test_app_data import my_data

    home = tmp_path / "store"
    monkeypatch.setenv("AKP_HOME", str(home))
    monkeypatch.delenv("AKP_DATA_ROOTS", raising=False)
    try:
        dataset_id = register_upload(image_zip(), "fixture.zip", home=home, size=8)
        at = my_data()
        at.selectbox(key="design-registered").select(dataset_id).run()
        assert not at.exception, [e.value for e in at.exception]
        urls = [img.url for el in at.get("image") for img in el.proto.imgs]
        assert urls, "the dataset card shows no sample images"
        # Inline PNGs: nothing for the browser to fetch from /media, so nothing to 404 after a rerun.
        assert all(u.startswith("data:image/png;base64,") for u in urls), urls[:2]
    finally:
        ui.shutdown_managers(home)
