"""Train one run: one model, one swap schedule, one seed.

Read top to bottom: build the model from the seed, then for each epoch apply
the swap event (if any), train over shuffled batches, evaluate on the test
split, and capture the probe set's representations.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from akp import checkpoints
from akp.datasets import Dataset, load_dataset
from akp.experiment import ExperimentSpec, experiment_probe
from akp.models import SmallCNN, build_model
from akp.runs import CANCELLED, DIVERGED, DONE
from akp.schedule import SwapSchedule
from akp.swaps import get_loss, swap_activation

EVAL_BATCH = 512
#: The epoch under which the untrained network's representations are stored.
UNTRAINED_EPOCH = -1
# Data-order seed = seed * stride + epoch: no two (seed, epoch) pairs share an order while epoch < stride.
ORDER_SEED_STRIDE = 100_003


@dataclass
class Progress:
    """A progress report from a running run (sent after every batch and epoch)."""

    epoch: int
    epochs: int
    batch: int
    n_batches: int
    metrics: dict | None = None  # set on the last report of an epoch


@dataclass
class RunResult:
    """Outcome of one run.

    Attributes
    ----------
    condition : str
        Name of the swap schedule.
    seed : int
    state : {"done", "diverged", "cancelled"}
    metrics : list of dict
        Per epoch: epoch, train_loss, train_acc, test_loss, test_acc, gap, activation, loss.
    events : list of dict
        Swap events as they took effect: epoch, activation, loss (None = unchanged).
    representations : dict
        layer -> epoch -> ndarray (n_probe, features), float32.
    majority_rate : float or None
        Share of the test split's most frequent class: what predicting one class scores.
    pred_classes : int or None
        Distinct classes the final model predicts on the test split (1: it predicts one class).
    """

    condition: str
    seed: int
    state: str
    metrics: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    representations: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    majority_rate: float | None = None
    pred_classes: int | None = None

    @property
    def test_acc(self) -> float | None:
        """Test accuracy at the last completed epoch (None if no epoch finished)."""
        return self.metrics[-1]["test_acc"] if self.metrics else None


def make_optimizer(name: str, params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """The spec's optimizer over ``params`` (SGD uses momentum 0.9)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    return torch.optim.Adam(params, lr=lr)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The run's data order for one epoch: a permutation fixed by (seed, epoch)."""
    gen = torch.Generator().manual_seed(int(seed) * ORDER_SEED_STRIDE + epoch)
    return torch.randperm(n, generator=gen)


@torch.no_grad()
def evaluate(model: SmallCNN, x: torch.Tensor, y: torch.Tensor, loss_fn) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on (x, y), in evaluation batches."""
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), EVAL_BATCH):
        logits, _ = model(x[i:i + EVAL_BATCH])
        total_loss += float(loss_fn(logits, y[i:i + EVAL_BATCH])) * len(logits)
        correct += int((logits.argmax(1) == y[i:i + EVAL_BATCH]).sum())
    return total_loss / len(x), correct / len(x)


def majority_rate(y: torch.Tensor) -> float:
    """Share of the most frequent label in ``y``."""
    return float(torch.bincount(y.cpu()).max()) / len(y)


@torch.no_grad()
def predicted_classes(model: SmallCNN, x: torch.Tensor) -> int:
    """Number of distinct classes ``model`` predicts on ``x``."""
    preds = torch.cat([model(x[i:i + EVAL_BATCH])[0].argmax(1) for i in range(0, len(x), EVAL_BATCH)])
    return int(torch.unique(preds).numel())


@torch.no_grad()
def capture(model: SmallCNN, x: torch.Tensor, layers: list[str], conv_reduce: str) -> dict[str, np.ndarray]:
    """Representations of ``x`` at ``layers``, each (n, features) float32."""
    parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    wanted = frozenset(layers)
    for i in range(0, len(x), EVAL_BATCH):
        _, feats = model(x[i:i + EVAL_BATCH], wanted, conv_reduce)
        for layer in layers:
            parts[layer].append(feats[layer])
    return {layer: torch.cat(p).float().cpu().numpy() for layer, p in parts.items()}


def training_tensors(spec: ExperimentSpec, dataset: Dataset | None, probe: np.ndarray | None,
                     home: str | os.PathLike[str] | None,
                     device: str | torch.device) -> tuple[Dataset, tuple[torch.Tensor, ...]]:
    """Load the data (unless given) and put train, test and probe arrays on ``device``.

    Returns
    -------
    data : Dataset
    tensors : tuple of Tensor
        x_train, y_train, x_test, y_test, x_probe.
    """
    data = dataset if dataset is not None else load_dataset(spec.dataset, spec.dataset_options, home=home)
    if probe is None:
        probe = data.x_test[experiment_probe(spec, data)]
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test, np.ascontiguousarray(probe))
    return data, tuple(torch.from_numpy(a).to(device) for a in arrays)


def train_run(
    spec: ExperimentSpec,
    schedule: SwapSchedule,
    seed: int,
    *,
    dataset: Dataset | None = None,
    probe: np.ndarray | None = None,
    home: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None,
) -> RunResult:
    """Train one run of ``spec`` under ``schedule`` with ``seed``.

    Parameters
    ----------
    spec : ExperimentSpec
    schedule : SwapSchedule
        The condition; its events apply at the start of their epoch.
    seed : int
        Fixes the initial weights and the data order.
    dataset : Dataset, optional
        Already loaded data (loaded from ``spec`` when omitted).
    probe : ndarray, optional
        Probe images (n, C, H, W); default: the experiment's probe set.
    home : path, optional
        Run store home, for registered datasets.
    device : str or torch.device
    on_progress : callable, optional
        Called with a :class:`Progress` after every batch.
    should_stop : callable, optional
        Polled before every batch; when it returns True the run stops and
        returns with state ``"cancelled"``.
    resume : dict, optional
        A checkpoint checked by :func:`akp.checkpoints.load_checkpoint`: training
        continues after its epoch, its history comes first in the result, and each
        of its metrics rows is reported once through ``on_progress`` (so callers
        record the restored epochs as they record new ones).
    on_checkpoint : callable, optional
        Called with the checkpoint state (:func:`akp.checkpoints.make_state`) after
        every finished epoch, before that epoch's ``on_progress``; save it before returning.

    Returns
    -------
    RunResult
        State ``"diverged"`` if a training loss became non-finite.

    Raises
    ------
    CheckpointError
        If ``resume`` does not fit the model or optimizer; raised before any training or report.
    """
    schedule.validate(spec.epochs)
    data, (x_train, y_train, x_test, y_test, x_probe) = training_tensors(spec, dataset, probe, home, device)

    init_seed = spec.run_seed(schedule.name, seed)  # independent across conditions unless seed_mode is paired
    model = build_model(spec.model, init_seed, in_channels=data.channels, n_classes=data.n_classes,
                        activation=schedule.activation).to(device)
    optimizer = make_optimizer(spec.optimizer, model.parameters(), spec.lr)
    loss_name = schedule.loss
    loss_fn = get_loss(loss_name)
    result = RunResult(schedule.name, seed, DONE, majority_rate=majority_rate(y_test))
    layers, capture_at = spec.capture_layers, set(spec.capture_at)
    n_batches = math.ceil(len(x_train) / spec.batch_size)
    identity = checkpoints.run_identity(schedule.name, seed, init_seed, spec.epochs)
    start = 0
    if resume is not None:
        # Continue after the checkpoint's epoch: its swaps happened, its history (epoch -1 too) is the run's.
        result.representations = checkpoints.restore_into(resume, model, optimizer)
        loss_name, loss_fn = resume["loss"], get_loss(resume["loss"])
        result.metrics = [dict(m) for m in resume["metrics"]]
        result.events = [dict(e) for e in resume["events"]]
        start = resume["epoch"] + 1
        if on_progress is not None:
            for row in result.metrics:
                on_progress(Progress(row["epoch"], spec.epochs, n_batches, n_batches, dict(row)))
    else:
        # The untrained network, stored as epoch -1: convergence and dispersion start from initialisation.
        model.eval()
        for layer, feats in capture(model, x_probe, layers, spec.conv_reduce).items():
            result.representations.setdefault(layer, {})[UNTRAINED_EPOCH] = feats

    for epoch in range(start, spec.epochs):
        event = schedule.event_at(epoch)
        if event is not None:
            if event.activation:
                swap_activation(model, event.activation)
            if event.loss:
                loss_name, loss_fn = event.loss, get_loss(event.loss)
            result.events.append(event.to_dict())

        model.train()
        order = epoch_order(len(x_train), init_seed, epoch).to(device)
        total_loss = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for b in range(n_batches):
            if should_stop is not None and should_stop():
                result.state = CANCELLED
                return result
            idx = order[b * spec.batch_size:(b + 1) * spec.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits, _ = model(xb)
            loss = loss_fn(logits, yb)
            if not torch.isfinite(loss):
                result.state = DIVERGED
                return result
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
            if on_progress is not None and b < n_batches - 1:
                on_progress(Progress(epoch, spec.epochs, b + 1, n_batches))

        model.eval()
        test_loss, test_acc = evaluate(model, x_test, y_test, loss_fn)
        train_loss = float(total_loss) / len(x_train)
        train_acc = int(correct) / len(x_train)
        row = {
            "epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
            "test_loss": test_loss, "test_acc": test_acc, "gap": train_acc - test_acc,
            "activation": model.activation, "loss": loss_name,
        }
        if not math.isfinite(test_loss):
            # The weights blew up on the last step: the test loss shows it before the next batch would.
            result.metrics.append(row)
            result.state = DIVERGED
            return result
        result.metrics.append(row)
        if epoch in capture_at:
            for layer, feats in capture(model, x_probe, layers, spec.conv_reduce).items():
                result.representations.setdefault(layer, {})[epoch] = feats
        if on_checkpoint is not None:
            on_checkpoint(checkpoints.make_state(
                identity=identity, epoch=epoch, model=model, optimizer=optimizer, activation=model.activation,
                loss=loss_name, metrics=result.metrics, events=result.events,
                representations=result.representations))
        if on_progress is not None:
            on_progress(Progress(epoch, spec.epochs, n_batches, n_batches, row))
    result.pred_classes = predicted_classes(model, x_test)  # a run that predicts one class has collapsed
    return result
