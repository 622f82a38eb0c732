"""Run-time calibration: measured once per machine signature, cached, scaled by the spec; a constant until then."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, replace

import pytest
import torch

from akp import calibration as cal
from akp.design import SECONDS_PER_IMAGE_EPOCH, calibration_threads, estimate_note, estimate_seconds
from akp.experiment import ExperimentSpec, load_preset


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty calibration cache folder; calibration on, one worker's default settings."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(cal.CACHE_ENV, str(folder))
    monkeypatch.delenv(cal.CALIBRATE_ENV, raising=False)
    for env in ("AKP_EXECUTOR", "AKP_WORKERS", "AKP_THREADS_PER_WORKER"):
        monkeypatch.delenv(env, raising=False)
    return folder


def _fixed(threads: int, **changes) -> cal.Calibration:
    """A calibration with round numbers, for the signature of ``threads``."""
    c = cal.Calibration(signature=cal.machine_signature(threads), seconds_per_image_epoch=4e-4,
                        small_seconds_per_image_epoch=1e-4, reference_cost=2.0e6, small_cost=1.0e5,
                        run_overhead_seconds=0.5, data_seconds_per_image=1e-3, measured_at="2026-12-02T12:00:00+00:00",
                        load_average=1.0, seconds=2.0)
    return replace(c, **changes)


def _write(folder, *calibrations) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / cal.CACHE_FILE).write_text(json.dumps({c.signature: asdict(c) for c in calibrations}))


def test_the_signature_names_the_machine_torch_and_threads():
    sig = cal.machine_signature(3, "cpu")
    assert f"torch {torch.__version__}" in sig and "3 threads" in sig and sig.endswith("cpu")
    assert cal.machine_signature(1) != cal.machine_signature(2)


@pytest.mark.slow
def test_calibrate_measures_through_the_real_path_caches_it_and_is_not_repeated(cache, monkeypatch):
    threads = 1  # 2 OpenMP threads stall on a shared, busy core; the thread count is part of the signature
    before = torch.get_num_threads()
    measured = cal.ensure_calibration(threads)
    assert measured is not None and measured.signature == cal.machine_signature(threads)
    assert measured.seconds_per_image_epoch > measured.small_seconds_per_image_epoch > 0
    assert measured.run_overhead_seconds >= 0 and measured.data_seconds_per_image > 0
    stored = json.loads((cache / cal.CACHE_FILE).read_text())
    assert stored[measured.signature]["seconds_per_image_epoch"] == measured.seconds_per_image_epoch
    assert torch.get_num_threads() == before  # measured with 1 thread, then restored

    def no_second_measurement(*a, **k):
        raise AssertionError("measured again although a calibration is cached")

    monkeypatch.setattr(cal, "calibrate", no_second_measurement)
    cal._MEMO.clear()  # read back from the file, as a new process would
    assert cal.ensure_calibration(threads) == measured


def test_estimate_uses_the_constant_until_calibrated_and_says_so(cache):
    spec = load_preset("teaching")
    constant = estimate_seconds(spec, seconds_per_image_epoch=SECONDS_PER_IMAGE_EPOCH)
    assert estimate_seconds(spec) == pytest.approx(constant)
    assert estimate_note().startswith("Not calibrated yet")


def test_estimate_uses_this_machines_calibration_for_the_workers_thread_count(cache):
    spec = load_preset("teaching")
    threads = calibration_threads(1)
    _write(cache, _fixed(threads), _fixed(threads + 1, seconds_per_image_epoch=1.0))  # another thread count
    units = 1500 + (600 + 256) / 3
    per_run = 0.5 + _fixed(threads).image_epoch_seconds(cal.model_cost(spec.model, 32)) * units * 8
    data = 1e-3 * (1500 + 600) * 2  # generated for the probe set, then once by the training process
    assert estimate_seconds(spec) == pytest.approx(data + 16 * per_run)
    assert estimate_note().startswith("Calibrated on this machine (2026-12-02T12:00:00+00:00, load average 1")


def test_the_calibrated_estimate_scales_with_the_spec():
    c = _fixed(1)
    spec = load_preset("teaching")
    base = cal.estimate_with(c, spec)

    def changed(**fields):
        return cal.estimate_with(c, ExperimentSpec.from_dict(spec.to_dict() | fields))

    data = 1e-3 * 2100 * 2
    per_run = (base - data) / 16
    assert changed(epochs=16) - data == pytest.approx(16 * (2 * per_run - 0.5))
    assert changed(seeds=[0, 1, 2, 3]) - data == pytest.approx(32 * per_run)
    assert cal.estimate_with(c, spec, workers=4) - data == pytest.approx(math.ceil(16 / 4) * per_run)
    assert changed(model={"width": 32, "depth": 3, "embedding_dim": 64}) > 2.5 * base
    bigger_images = changed(dataset_options=spec.dataset_options | {"size": 64})
    assert bigger_images > 3 * base


def test_small_models_keep_the_measured_floor_and_cost_grows_linearly_between_the_two_models():
    c = _fixed(1)
    assert c.image_epoch_seconds(1.0e5) == pytest.approx(1e-4)
    assert c.image_epoch_seconds(2.0e6) == pytest.approx(4e-4)
    assert c.image_epoch_seconds(1.05e6) == pytest.approx(2.5e-4)
    assert c.image_epoch_seconds(10.0) == pytest.approx(1e-4)  # below the tiny model: its floor
    noisy = _fixed(1, small_seconds_per_image_epoch=5e-4)  # the tiny model measured slower: no negative slope
    assert noisy.image_epoch_seconds(4.0e6) == pytest.approx(5e-4)


def test_an_unreadable_cache_or_an_old_entry_counts_as_not_calibrated(cache):
    cache.mkdir()
    (cache / cal.CACHE_FILE).write_text("{not json")
    assert cal.load_calibration(1) is None
    (cache / cal.CACHE_FILE).write_text(json.dumps({cal.machine_signature(1): {"seconds_per_image_epoch": 1}}))
    assert cal.load_calibration(1) is None


def test_calibration_can_be_turned_off(cache, monkeypatch):
    monkeypatch.setenv(cal.CALIBRATE_ENV, "0")
    assert cal.ensure_calibration(1) is None and cal.start_calibration(1) is None
    assert not (cache / cal.CACHE_FILE).exists()
