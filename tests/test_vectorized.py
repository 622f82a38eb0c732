"""Seeds of one condition as one vectorized model: same start, same per-member training, divergence, store writes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import akp.runner
import akp.vectorized
from akp.datasets import load_dataset
from akp.experiment import load_preset
from akp.jobs import JobManager
from akp.models import build_model
from akp.store import RunStore
from akp.swaps import get_loss
from akp.train import epoch_order, train_run
from akp.vectorized import member_logits, stack_members, train_vectorized, use_vectorized

SEEDS = [0, 1, 2]


@pytest.fixture(scope="module")
def spec():
    s = load_preset("smoke")
    s.dataset_options = {"n_train": 160, "n_test": 80, "size": 32, "seed": 0}
    s.batch_size = 32  # five batches an epoch: cancellation can land inside the first one
    s.probe_size = 16
    s.validate()
    return s


@pytest.fixture(scope="module")
def data(spec):
    return load_dataset(spec.dataset, spec.dataset_options)


@pytest.fixture(autouse=True)
def _keep_threads():
    # One intra-op thread: these tiny models gain nothing from more, and lose a lot on a busy machine.
    # (JobManager sets the process-wide count too; give the other tests theirs back.)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_members_start_from_build_model_weights(spec, data):
    base, params, buffers = stack_members(spec.model, SEEDS, in_channels=1, n_classes=2)
    assert base.convs[0].weight.device.type == "meta"
    for m, seed in enumerate(SEEDS):
        ref = build_model(spec.model, seed, in_channels=1, n_classes=2).state_dict()
        assert set(ref) == set(params)
        for name, value in ref.items():
            assert torch.equal(params[name][m].detach(), value), (seed, name)


def test_first_batch_loss_and_gradients_equal_sequential(spec, data):
    base, params, buffers = stack_members(spec.model, SEEDS, in_channels=1, n_classes=2)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    idx = torch.stack([epoch_order(len(x), s, 0)[:spec.batch_size] for s in SEEDS])
    loss_fn = get_loss("cross_entropy")
    logits = member_logits(base)(params, buffers, x[idx])
    losses = torch.stack([loss_fn(logits[m], y[idx[m]]) for m in range(len(SEEDS))])
    losses.sum().backward()
    for m, seed in enumerate(SEEDS):
        model = build_model(spec.model, seed, in_channels=1, n_classes=2)
        loss = loss_fn(model(x[idx[m]])[0], y[idx[m]])
        loss.backward()
        assert float(losses[m].detach()) == pytest.approx(float(loss.detach()), abs=1e-6)
        for name, p in model.named_parameters():
            torch.testing.assert_close(params[name].grad[m], p.grad, atol=1e-6, rtol=1e-5)


def test_vectorized_matches_sequential_runs(spec, data):
    cond = spec.conditions[1]  # sigmoid-shock: an activation and loss swap at epoch 1
    group = train_vectorized(spec, cond, SEEDS, dataset=data)
    for result, seed in zip(group, SEEDS, strict=True):
        alone = train_run(spec, cond, seed, dataset=data)
        assert (result.condition, result.seed, result.state) == (cond.name, seed, "done")
        assert result.events == alone.events == [{"epoch": 1, "activation": "sigmoid", "loss": "mse"}]
        assert len(result.metrics) == len(alone.metrics) == spec.epochs
        for a, b in zip(result.metrics, alone.metrics, strict=True):
            assert (a["epoch"], a["activation"], a["loss"]) == (b["epoch"], b["activation"], b["loss"])
            # Same computation; only float rounding of grouped vs plain convolutions differs.
            for key in ("train_loss", "test_loss"):
                assert a[key] == pytest.approx(b[key], abs=1e-4)
            for key in ("train_acc", "test_acc"):
                assert a[key] == pytest.approx(b[key], abs=0.02)
        assert result.representations.keys() == alone.representations.keys()
        for layer, by_epoch in alone.representations.items():
            assert by_epoch.keys() == result.representations[layer].keys()
            for epoch, feats in by_epoch.items():
                got = result.representations[layer][epoch]
                assert got.dtype == np.float32 and got.shape == feats.shape
                np.testing.assert_allclose(got, feats, atol=2e-3)


def test_one_diverging_member_does_not_stop_the_others(spec, data, monkeypatch):
    real = akp.vectorized.build_model

    poison = spec.run_seed(spec.conditions[0].name, 1)  # the weights seed of the member with seed 1

    def poisoned(model_spec, seed, **kwargs):
        model = real(model_spec, seed, **kwargs)
        if seed == poison:
            with torch.no_grad():
                model.convs[0].weight.fill_(float("inf"))
        return model

    monkeypatch.setattr(akp.vectorized, "build_model", poisoned)
    cond = spec.conditions[0]
    group = train_vectorized(spec, cond, SEEDS, dataset=data)
    assert [r.state for r in group] == ["done", "diverged", "done"]
    assert group[1].metrics == [] and set(group[1].representations["embedding"]) == {-1}  # only the untrained net
    for m in (0, 2):
        alone = train_run(spec, cond, SEEDS[m], dataset=data)
        assert group[m].metrics[-1]["test_loss"] == pytest.approx(alone.metrics[-1]["test_loss"], abs=1e-4)


def test_member_and_group_cancellation(spec, data):
    calls = []

    def progress(p):
        calls.append(p)

    group = train_vectorized(spec, spec.conditions[0], SEEDS, dataset=data, on_progress=progress,
                             member_should_stop=lambda m: m == 2 and len(calls) >= 3)
    assert [r.state for r in group] == ["done", "done", "cancelled"]
    assert group[2].metrics == []
    ends = [p for p in calls if p.metrics is not None]
    assert [sorted(p.metrics) for p in ends] == [[0, 1]] * spec.epochs  # members that finished each epoch

    group = train_vectorized(spec, spec.conditions[0], SEEDS, dataset=data, should_stop=lambda: True)
    assert [r.state for r in group] == ["cancelled"] * 3
    with pytest.raises(ValueError, match="seeds"):
        train_vectorized(spec, spec.conditions[0], [1, 1], dataset=data)


def test_use_vectorized_decision():
    assert use_vectorized("cpu", 8) is False
    assert use_vectorized("cuda", 8) is True
    assert use_vectorized(torch.device("cuda", 0), 2) is True
    assert use_vectorized("cuda", 1) is False
    assert use_vectorized("cpu", 8, force=True) is True
    assert use_vectorized("cuda", 8, force=False) is False


def test_job_manager_vectorized_path_writes_each_run_like_execute_run(spec, tmp_path):
    store = RunStore(tmp_path / "home")
    eid = store.create_experiment(spec)
    with JobManager(store, vectorized=True) as manager:
        manager.submit(eid)
        assert [s["vectorized"] for s in manager.status(eid)] == [True] * 4
        assert manager.wait(eid, timeout=60)
        snaps = manager.status(eid)
    assert [s["state"] for s in snaps] == ["done"] * 4
    for s in snaps:
        run = store.run(s["run_id"])
        metrics = store.metrics(s["run_id"])
        assert [m["epoch"] for m in metrics] == [0, 1] and run["epochs_done"] == 2
        assert s["metrics"] == metrics[-1] and run["test_acc"] == metrics[-1]["test_acc"]
        assert store.representation_epochs(s["run_id"], "conv1") == [-1, 0, 1]
        assert store.representations(s["run_id"], "embedding").shape == (16, spec.model.embedding_dim)
    shocked = [s for s in snaps if s["condition"] == "sigmoid-shock"]
    assert store.events(shocked[0]["run_id"]) == [{"epoch": 1, "activation": "sigmoid", "loss": "mse"}]


def test_a_failing_group_marks_every_member_failed(spec, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(akp.runner, "train_vectorized", broken)
    store = RunStore(tmp_path / "home")
    eid = store.create_experiment(spec)
    with JobManager(store, vectorized=True) as manager:
        manager.submit(eid)
        assert manager.wait(eid, timeout=60)
    runs = store.runs(eid)
    assert [r["state"] for r in runs] == ["failed"] * 4
    assert all(r["error"].startswith("RuntimeError: out of memory, say") for r in runs)
