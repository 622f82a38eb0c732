import numpy as np
import pytest

from akp.datasets import synthetic_dataset
from akp.experiment import ExperimentSpec, load_preset
from akp.models import ModelSpec
from akp.schedule import PRESETS, SwapEvent, SwapSchedule
from akp.swaps import LOSSES
from akp.train import train_run


@pytest.fixture(scope="module")
def tiny():
    spec = ExperimentSpec(name="tiny", model=ModelSpec(width=4, depth=2, embedding_dim=8), epochs=3,
                          batch_size=32, lr=3e-3, probe_size=32,
                          dataset_options={"n_train": 160, "n_test": 80})
    return spec, synthetic_dataset(160, 80)


def test_metrics_events_and_representations(tiny):
    spec, data = tiny
    schedule = SwapSchedule("swap", "relu", "cross_entropy", (SwapEvent(1, activation="tanh", loss="mse"),))
    result = train_run(spec, schedule, 0, dataset=data)
    assert result.state == "done" and len(result.metrics) == 3
    row = result.metrics[1]
    assert set(row) == {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "gap", "activation", "loss"}
    assert row["gap"] == pytest.approx(row["train_acc"] - row["test_acc"])
    assert [(m["activation"], m["loss"]) for m in result.metrics] == [
        ("relu", "cross_entropy"), ("tanh", "mse"), ("tanh", "mse")]
    assert result.events == [{"epoch": 1, "activation": "tanh", "loss": "mse"}]
    assert set(result.representations) == {"conv1", "conv2", "embedding", "logits"}
    assert sorted(result.representations["embedding"]) == [-1, 0, 1, 2]  # -1: the untrained network
    emb = result.representations["embedding"][2]
    assert emb.shape == (32, 8) and emb.dtype == np.float32
    assert result.test_acc == result.metrics[-1]["test_acc"]


def test_same_seed_same_metrics_and_other_seed_differs(tiny):
    spec, data = tiny
    a = train_run(spec, PRESETS["steady"], 4, dataset=data)
    b = train_run(spec, PRESETS["steady"], 4, dataset=data)
    c = train_run(spec, PRESETS["steady"], 5, dataset=data)
    assert a.metrics == b.metrics
    assert np.array_equal(a.representations["logits"][2], b.representations["logits"][2])
    assert a.metrics != c.metrics


def test_non_finite_loss_marks_the_run_diverged(tiny, monkeypatch):
    spec, data = tiny
    monkeypatch.setitem(LOSSES, "explode", lambda logits, target: (logits * float("inf")).sum())
    schedule = SwapSchedule("boom", events=(SwapEvent(1, loss="explode"),))
    result = train_run(spec, schedule, 0, dataset=data)
    assert result.state == "diverged"
    assert len(result.metrics) == 1  # epoch 0 finished, epoch 1 diverged on its first batch
    assert result.events == [{"epoch": 1, "activation": None, "loss": "explode"}]


def test_should_stop_cancels_within_one_batch(tiny):
    spec, data = tiny
    seen = []
    stop_after = 7

    def should_stop():
        return len(seen) >= stop_after

    result = train_run(spec, PRESETS["steady"], 0, dataset=data, on_progress=seen.append, should_stop=should_stop)
    assert result.state == "cancelled"
    # 5 batches per epoch: the 7th progress report was in epoch 1; nothing ran after it.
    assert len(seen) == stop_after and len(result.metrics) == 1


def test_events_past_budget_are_rejected(tiny):
    spec, data = tiny
    with pytest.raises(ValueError, match="past the training budget"):
        train_run(spec, SwapSchedule("late", events=(SwapEvent(3, activation="elu"),)), 0, dataset=data)


@pytest.mark.slow
def test_steady_reaches_the_calibrated_accuracy_on_the_teaching_budget():
    spec = load_preset("teaching")
    result = train_run(spec, PRESETS["steady"], 0)
    assert 0.80 <= result.test_acc <= 0.96
    # Representations of one teaching run stay small (budget: about 20 MB).
    size = sum(a.nbytes for by_epoch in result.representations.values() for a in by_epoch.values())
    assert size < 20e6


@pytest.mark.parametrize("seed_mode", ["independent", "paired"])
def test_untrained_capture_is_independent_across_conditions_unless_paired(tiny, seed_mode):
    import dataclasses

    from akp.train import UNTRAINED_EPOCH

    spec, data = tiny
    spec = dataclasses.replace(spec, seed_mode=seed_mode, epochs=2)
    # Same seed, same starting activation (relu), different conditions.
    a = train_run(spec, PRESETS["steady"], 3, dataset=data)
    b = train_run(spec, PRESETS["linear"], 3, dataset=data)
    for layer in ("conv1", "embedding"):
        ua, ub = a.representations[layer][UNTRAINED_EPOCH], b.representations[layer][UNTRAINED_EPOCH]
        if seed_mode == "paired":
            np.testing.assert_array_equal(ua, ub)  # one initialisation shared by both conditions
        else:
            assert not np.allclose(ua, ub)
