"""akp.memory: the estimates launch checks are grounded in measurement (tracemalloc, autograd's saved tensors)."""
from __future__ import annotations

import tracemalloc

import pytest
import torch

from akp.datasets import synthetic_dataset
from akp.memory import FLOAT, K_TRAIN, activation_bytes, dataset_build_bytes, disk_bytes, footprint
from akp.models import build_model
from tests.specs import small_smoke_spec


def spec_at(size: int, n_train: int, n_test: int = 64):
    spec = small_smoke_spec("m", epochs=1, seeds=(0,), n_train=n_train, n_test=n_test, conditions=slice(0, 1))
    spec.dataset_options = {**spec.dataset_options, "size": size}
    return spec


@pytest.mark.parametrize(("size", "n_train"), [(32, 600), (64, 300), (128, 96)])
def test_dataset_estimate_bounds_the_measured_peak(size, n_train):
    """numpy's traced peak while both splits are built <= estimate <= 1.5 x that peak."""
    spec = spec_at(size, n_train)
    synthetic_dataset(40, 20, size=size)  # warm: lazy imports allocate once
    tracemalloc.start()
    try:
        synthetic_dataset(n_train, 64, size=size, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = dataset_build_bytes(spec)
    assert peak <= estimate <= 1.5 * peak, (peak, estimate)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_training_estimate_covers_what_autograd_keeps(size):
    """The bytes autograd saves for one training batch (measured with saved_tensors_hooks) fit the estimate,
    which allows for the backward pass on top: saved <= estimate <= K_TRAIN / 1.5 x saved."""
    spec = spec_at(size, 64)
    model = build_model(spec.model, 0, in_channels=1, n_classes=2)
    saved: dict[tuple[int, torch.dtype], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[(t.data_ptr(), t.dtype)] = t.numel() * t.element_size()  # a tensor saved twice is kept once
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logits, _ = model(torch.rand(spec.batch_size, 1, size, size))
        logits.sum().backward()
    train, evaluation = activation_bytes(spec, 1, size, size)
    assert sum(saved.values()) <= train <= K_TRAIN / 1.5 * sum(saved.values())
    assert evaluation > 0 and FLOAT == 4


def test_estimates_grow_with_the_data_and_the_captures():
    small, big = footprint(spec_at(32, 600)), footprint(spec_at(32, 2400))  # both past one chunk (512 images)
    assert big.dataset_build - small.dataset_build == 1800 * (32 * 32 * 4 + 8)  # the images and labels only
    assert big.run > small.run
    spec = spec_at(32, 200)
    spec.capture_epochs = [0]
    once = disk_bytes(spec)
    spec.epochs, spec.capture_epochs = 2, [0, 1]
    assert disk_bytes(spec) > once


def test_unknown_paths_count_only_the_model():
    spec = spec_at(32, 200)
    spec.dataset, spec.dataset_options = "/some/folder", {"size": 32}
    need = footprint(spec)
    assert need.dataset_build == 0 and need.run > 0
