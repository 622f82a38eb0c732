"""End-to-end: train a small experiment on each real data set, beat chance.

The data live outside the repository (../shared/data); the tests are skipped
where they are absent, except under CI=true, where they must be present.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from akp.datasets import load_dataset
from akp.experiment import load_preset
from akp.train import train_run
from tests.realdata import shared_data

# Real data path; skipped where absent, except under CI=true (then it must exist).
need_real = shared_data


@pytest.fixture
def one_thread():
    # A tiny CNN gains nothing from intra-op threads, and on a busy 2-core
    # machine two threads ran ~4x slower than one (measured); restore after.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_spec(dataset: Path, options: dict, *, epochs: int):
    spec = load_preset("smoke")
    spec.name = f"real-{dataset.name}"
    spec.dataset = str(dataset)
    spec.dataset_options = options
    spec.epochs = epochs
    spec.seeds = [0]
    spec.batch_size = 16 if dataset.suffix == ".npz" else 32
    spec.lr = 0.003
    spec.model = replace(spec.model, width=16, depth=3)
    spec.conditions = spec.conditions[:1]  # "steady": no swap, the plain baseline
    spec.validate()
    return spec


def test_train_on_pcam_folder_beats_chance(tmp_path, one_thread):
    path = need_real("pcam-test")
    # The PCam label describes the centre 32 x 32 pixels: crop them, no resize.
    spec = small_spec(path, {"size": 32, "channels": 3, "max_images": 1200, "crop": 32},
                      epochs=6)
    data = load_dataset(spec.dataset, spec.dataset_options, home=tmp_path)
    assert data.x_train.shape == (960, 3, 32, 32) and data.x_test.shape == (240, 3, 32, 32)
    start = time.perf_counter()
    result = train_run(spec, spec.conditions[0], 0, dataset=data, home=tmp_path)
    elapsed = time.perf_counter() - start
    acc = result.test_acc
    print(f"\nPCam: test accuracy {acc:.3f} after {spec.epochs} epochs in {elapsed:.1f} s")
    assert result.state == "done" and len(result.metrics) == 6
    chance = np.bincount(data.y_test).max() / len(data.y_test)  # 0.5: balanced
    # 240 test images: chance + 0.1 is about 3 standard errors above chance.
    assert acc > chance + 0.1, f"test accuracy {acc:.3f} vs chance {chance:.3f}"


def test_train_on_breastmnist_npz_beats_majority(tmp_path, one_thread):
    path = need_real("breastmnist.npz")
    spec = small_spec(path, {"size": 28}, epochs=18)
    start = time.perf_counter()
    result = train_run(spec, spec.conditions[0], 0, home=tmp_path)  # loads via load_dataset
    elapsed = time.perf_counter() - start
    acc = result.test_acc
    data = load_dataset(spec.dataset, spec.dataset_options, home=tmp_path)
    assert data.x_val is not None and data.x_test.shape == (156, 1, 28, 28)
    # Imbalanced (73 % label 1): chance is the majority rate, not 0.5.
    majority = np.bincount(data.y_test).max() / len(data.y_test)
    print(f"\nBreastMNIST: test accuracy {acc:.3f} (majority {majority:.3f}) "
          f"after {spec.epochs} epochs in {elapsed:.1f} s")
    assert result.state == "done"
    assert acc > majority + 0.03, f"test accuracy {acc:.3f} vs majority {majority:.3f}"
