"""Train all seeds of one condition at once, as a single vectorized model.

A *vectorized group* is the set of runs of one condition (one *member* per
seed) trained together. Their weights are stacked along a leading member axis
(``torch.func.stack_module_state``) and one copy of the model on the ``meta``
device supplies the forward pass (``torch.func.functional_call`` under
``torch.func.vmap``). vmap's batching rule for a convolution with batched
weights lowers it to one grouped convolution, so all members run in one kernel
per layer: this is what makes a group fast on a GPU. On a small CPU the grouped
convolutions are slower than running the seeds one after the other, so
:func:`use_vectorized` decides per device.

Each member is the same computation as :func:`akp.train.train_run` with its seed:

* initial weights from ``build_model(spec.model, seed, ...)``;
* its own data order, ``epoch_order(n, seed, epoch)``;
* its own optimizer state. Adam, AdamW and SGD with momentum act elementwise, so
  one optimizer over the stacked tensors is exactly one optimizer per member,
  provided each member's gradient is the gradient of *its own* mean loss: the
  objective is the sum over members of each member's mean batch loss;
* swap events act on the shared ``meta`` model's :class:`~akp.swaps.SwappableActivation`
  modules, i.e. on all members at once.

A member whose loss becomes non-finite is marked diverged and frozen (its
weights are restored after every step) while the others go on.
"""
from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from akp.datasets import Dataset
from akp.experiment import ExperimentSpec
from akp.models import ModelSpec, build_model
from akp.runs import CANCELLED, DIVERGED, DONE
from akp.schedule import SwapEvent, SwapSchedule
from akp.swaps import get_loss, swap_activation
from akp.train import (
    EVAL_BATCH,
    UNTRAINED_EPOCH,
    Progress,
    RunResult,
    epoch_order,
    majority_rate,
    make_optimizer,
    training_tensors,
)

# Losses without a vmap batching rule (torch falls back to a slow loop with a warning): loop ourselves.
_NO_VMAP_LOSSES = frozenset({"hinge"})
# Images per evaluation chunk summed over members, so 32 members do not need 32x the memory of one.
_EVAL_IMAGES = EVAL_BATCH * 8


def use_vectorized(device: str | torch.device, n_seeds: int, *, force: bool | None = None) -> bool:
    """Whether the seeds of one condition should be trained as one vectorized group.

    On this project's 2-core CPU ``bench/vectorized.py`` measured the group 2-4x
    slower than sequential runs, so CPUs train sequentially. On a GPU the group
    turns many small kernels into one; a naive vmap measured before this module
    took 0.30 of the sequential time for 8 seeds on an H200, but this module has
    not yet been measured on a GPU (see ``bench/README.md``).

    Parameters
    ----------
    device : str or torch.device
        Where the runs train.
    n_seeds : int
        Runs of the condition to train.
    force : bool, optional
        True or False overrides the decision (a group of one seed is still allowed).

    Returns
    -------
    bool
    """
    if force is not None:
        return bool(force) and n_seeds >= 1
    return n_seeds >= 2 and torch.device(device).type == "cuda"


def stack_members(model_spec: ModelSpec, seeds: list[int], *, in_channels: int, n_classes: int,
                  activation: str = "relu",
                  device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict, dict]:
    """Stack the initial weights of one model per seed into one vectorized group.

    Parameters
    ----------
    model_spec : ModelSpec
    seeds : list of int
    in_channels, n_classes : int
    activation : str
    device : str or torch.device

    Returns
    -------
    base : SmallCNN
        A weightless template on the ``meta`` device whose forward (and swappable
        activations) serve every member.
    params : dict
        Name -> stacked leaf tensor (members, ...) requiring grad; member ``m`` holds
        exactly ``build_model(model_spec, seeds[m], ...)``'s weights.
    buffers : dict
        Name -> stacked buffers (the model has none today).
    """
    members = [build_model(model_spec, s, in_channels=in_channels, n_classes=n_classes, activation=activation)
               for s in seeds]
    params, buffers = stack_module_state(members)
    params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    base = copy.deepcopy(members[0]).to("meta")
    return base, params, buffers


def member_logits(base: torch.nn.Module, *, shared_input: bool = False) -> Callable:
    """The group's forward: ``f(params, buffers, x) -> logits (members, batch, classes)``.

    ``x`` is (members, batch, C, H, W), one batch per member, or with
    ``shared_input`` (batch, C, H, W) seen by every member.
    """
    def logits_of(p, b, x):
        return functional_call(base, (p, b), (x,))[0]

    return vmap(logits_of, in_dims=(0, 0, None if shared_input else 0))


def member_features(base: torch.nn.Module, layers: list[str], conv_reduce: str) -> Callable:
    """The group's capture: ``f(params, buffers, x) -> {layer: (members, batch, features)}``.

    ``x`` is (batch, C, H, W), seen by every member.
    """
    wanted = frozenset(layers)

    def features_of(p, b, x):
        return functional_call(base, (p, b), (x, wanted, conv_reduce))[1]

    return vmap(features_of, in_dims=(0, 0, None))


def _member_losses(loss_name: str, loss_fn: Callable, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean loss, shape (members,)."""
    if loss_name in _NO_VMAP_LOSSES:
        return torch.stack([loss_fn(logits[m], y[m]) for m in range(len(logits))])
    return vmap(loss_fn)(logits, y)


class _VectorizedGroup:
    """The members of one condition in training, with all the state that changes as they train.

    Parameters
    ----------
    spec : ExperimentSpec
    schedule : SwapSchedule
    seeds : list of int
    data : Dataset
        For its channels and classes.
    tensors : tuple of Tensor
        x_train, y_train, x_test, y_test, x_probe on ``device``.
    device : str or torch.device

    Attributes
    ----------
    results : list of RunResult
        One per member, filled in as epochs finish.
    active : Tensor
        Bool (members,): members still training. Kept on the CPU, where it is cheap to read.
    frozen : list of Tensor or None
        Weights of the stopped members (rows of the others are stale), restored after every step.
    loss_name, loss_fn
        The loss in force; swap events change it.
    """

    def __init__(self, spec: ExperimentSpec, schedule: SwapSchedule, seeds: list[int], data: Dataset,
                 tensors: tuple[torch.Tensor, ...], device: str | torch.device) -> None:
        self.spec, self.seeds, self.device = spec, seeds, device
        # The seeds of weights and data order, as train_run derives them (spec.seed_mode).
        self.run_seeds = [spec.run_seed(schedule.name, s) for s in seeds]
        self.x_train, self.y_train, self.x_test, self.y_test, self.x_probe = tensors
        self.base, self.params, self.buffers = stack_members(
            spec.model, self.run_seeds, in_channels=data.channels, n_classes=data.n_classes,
            activation=schedule.activation, device=device)
        self.optimizer = make_optimizer(spec.optimizer, list(self.params.values()), spec.lr)
        self.train_forward = member_logits(self.base)                    # each member its own batch
        self.eval_forward = member_logits(self.base, shared_input=True)  # all members the same images
        self.capture_forward = member_features(self.base, spec.capture_layers, spec.conv_reduce)
        self.loss_name = schedule.loss
        self.loss_fn = get_loss(self.loss_name)
        # pred_classes stays None here: the vectorized path does not re-evaluate its members at the end.
        self.results = [RunResult(schedule.name, s, DONE, majority_rate=majority_rate(self.y_test)) for s in seeds]
        self.active = torch.ones(len(seeds), dtype=torch.bool)
        self.frozen: list[torch.Tensor] | None = None
        self.n_batches = math.ceil(len(self.x_train) / spec.batch_size)
        self.chunk = max(16, min(EVAL_BATCH, _EVAL_IMAGES // len(seeds)))

    def active_members(self) -> list[int]:
        """Indices of the members still training."""
        return [m for m in range(len(self.seeds)) if self.active[m]]

    def any_active(self) -> bool:
        """Whether any member still trains."""
        return bool(self.active.any())

    def stop(self, members: list[int], state: str) -> None:
        """End ``members``' training with ``state`` and freeze their current weights."""
        if self.frozen is None:
            self.frozen = [p.detach().clone() for p in self.params.values()]
        else:
            with torch.no_grad():
                for f, p in zip(self.frozen, self.params.values(), strict=True):
                    f[members] = p[members]
        for m in members:
            self.active[m] = False
            self.results[m].state = state

    def restore_stopped(self) -> None:
        """Undo the last step for stopped members (the optimizer moves every row of the stacked tensors)."""
        if self.frozen is None:
            return
        mask = (~self.active).to(self.device)
        with torch.no_grad():
            for f, p in zip(self.frozen, self.params.values(), strict=True):
                p[mask] = f[mask]

    def apply_event(self, event: SwapEvent) -> None:
        """Swap the activation and/or loss for every member, and log the event on those still training."""
        if event.activation:
            swap_activation(self.base, event.activation)
        if event.loss:
            self.loss_name, self.loss_fn = event.loss, get_loss(event.loss)
        for m in self.active_members():
            self.results[m].events.append(event.to_dict())

    def train_epoch(self, epoch: int, on_progress: Callable[[Progress], None] | None,
                    should_stop: Callable[[], bool] | None,
                    member_should_stop: Callable[[int], bool] | None) -> tuple[list[float], list[float]] | None:
        """One pass over the training data, each member in its own order.

        Returns
        -------
        (train_loss, train_acc) : tuple of list of float, or None
            Per member; None if every member stopped during the epoch.
        """
        spec, n_members = self.spec, len(self.seeds)
        orders = torch.stack([epoch_order(len(self.x_train), s, epoch) for s in self.run_seeds]).to(self.device)
        total_loss = torch.zeros(n_members, device=self.device, dtype=torch.float64)
        correct = torch.zeros(n_members, device=self.device, dtype=torch.long)
        for b in range(self.n_batches):
            if should_stop is not None and should_stop():
                self.stop(self.active_members(), CANCELLED)
                return None
            if member_should_stop is not None:
                cancelled = [m for m in self.active_members() if member_should_stop(m)]
                if cancelled:
                    self.stop(cancelled, CANCELLED)
            if not self.any_active():
                return None
            idx = orders[:, b * spec.batch_size:(b + 1) * spec.batch_size]
            xb, yb = self.x_train[idx], self.y_train[idx]
            logits = self.train_forward(self.params, self.buffers, xb)
            losses = _member_losses(self.loss_name, self.loss_fn, logits, yb)
            finite = torch.isfinite(losses.detach()).cpu()
            newly = [m for m in self.active_members() if not finite[m]]
            if newly:
                # Like train_run: a non-finite loss ends the member before its step.
                self.stop(newly, DIVERGED)
                if not self.any_active():
                    return None
            mask = self.active.to(self.device)
            # Sum of each member's mean loss: every member gets the gradient of its own loss.
            objective = torch.where(mask, losses, torch.zeros_like(losses)).sum()
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            self.optimizer.step()
            self.restore_stopped()
            total_loss += torch.where(mask, losses.detach(), 0).double() * yb.shape[1]
            correct += (logits.detach().argmax(-1) == yb).sum(1)
            if on_progress is not None and b < self.n_batches - 1:
                on_progress(Progress(epoch, spec.epochs, b + 1, self.n_batches))
        n = len(self.x_train)
        return (total_loss / n).tolist(), (correct.double() / n).tolist()

    def finish_epoch(self, epoch: int, train_loss: list[float], train_acc: list[float]) -> dict[int, dict]:
        """Evaluate every active member on the test split and record its epoch row.

        Returns
        -------
        dict
            Member index -> epoch row (as in :attr:`RunResult.metrics`), for the members that finished the epoch.
        """
        rows = _evaluate(self.eval_forward, self.params, self.buffers, self.x_test, self.y_test,
                         self.loss_name, self.loss_fn, self.chunk)
        finished: dict[int, dict] = {}
        for m in self.active_members():
            test_loss, test_acc = rows[m]
            row = {
                "epoch": epoch, "train_loss": train_loss[m], "train_acc": train_acc[m],
                "test_loss": test_loss, "test_acc": test_acc, "gap": train_acc[m] - test_acc,
                "activation": self.base.activation, "loss": self.loss_name,
            }
            self.results[m].metrics.append(row)
            finished[m] = row
        diverged = [m for m in finished if not math.isfinite(finished[m]["test_loss"])]
        if diverged:
            # The weights blew up on the last step: the test loss shows it (as in train_run).
            self.stop(diverged, DIVERGED)
        return finished

    def capture_epoch(self, epoch: int) -> None:
        """Store the probe set's representations of every active member at ``epoch``."""
        layers = self.spec.capture_layers
        feats = _capture(self.capture_forward, self.params, self.buffers, self.x_probe, layers, self.chunk)
        for m in self.active_members():
            for layer in layers:
                self.results[m].representations.setdefault(layer, {})[epoch] = feats[layer][m]


def train_vectorized(
    spec: ExperimentSpec,
    schedule: SwapSchedule,
    seeds: list[int],
    *,
    dataset: Dataset | None = None,
    probe: np.ndarray | None = None,
    home: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    member_should_stop: Callable[[int], bool] | None = None,
) -> list[RunResult]:
    """Train one run per seed of ``spec`` under ``schedule``, all seeds as one vectorized model.

    Parameters
    ----------
    spec : ExperimentSpec
    schedule : SwapSchedule
        The condition; its events apply to all members at the start of their epoch.
    seeds : list of int
        One member per seed (unique).
    dataset : Dataset, optional
        Already loaded data (loaded from ``spec`` when omitted).
    probe : ndarray, optional
        Probe images (n, C, H, W); default: the experiment's probe set.
    home : path, optional
        Run store home, for registered datasets.
    device : str or torch.device
    on_progress : callable, optional
        Called with a :class:`~akp.train.Progress` after every batch. At the end of an
        epoch its ``metrics`` is a dict ``{member index: epoch row}`` for the members
        that finished the epoch (rows as in :attr:`RunResult.metrics`).
    should_stop : callable, optional
        Polled before every batch; True stops every member still training (state ``"cancelled"``).
    member_should_stop : callable, optional
        Called with a member index before every batch; True cancels that member only.

    Returns
    -------
    list of RunResult
        One per seed, in the order of ``seeds``; each with the structure of
        :func:`akp.train.train_run`'s result.

    Raises
    ------
    ValueError
        If ``seeds`` is empty or has duplicates.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds: must be a non-empty list of unique integers, got {seeds}")
    schedule.validate(spec.epochs)
    data, tensors = training_tensors(spec, dataset, probe, home, device)
    group = _VectorizedGroup(spec, schedule, seeds, data, tensors, device)
    capture_at = set(spec.capture_at)
    group.capture_epoch(UNTRAINED_EPOCH)  # the untrained members, as train_run stores them

    for epoch in range(spec.epochs):
        event = schedule.event_at(epoch)
        if event is not None:
            group.apply_event(event)
        train = group.train_epoch(epoch, on_progress, should_stop, member_should_stop)
        if train is None:
            break
        finished = group.finish_epoch(epoch, *train)
        if epoch in capture_at and group.any_active():
            group.capture_epoch(epoch)
        if on_progress is not None:
            on_progress(Progress(epoch, spec.epochs, group.n_batches, group.n_batches, finished))
        if not group.any_active():
            break
    return group.results


@torch.no_grad()
def _evaluate(forward: Callable, params: dict, buffers: dict, x: torch.Tensor, y: torch.Tensor, loss_name: str,
              loss_fn: Callable, chunk: int) -> list[tuple[float, float]]:
    """(mean loss, accuracy) of every member on (x, y)."""
    total = None
    correct = None
    for i in range(0, len(x), chunk):
        logits = forward(params, buffers, x[i:i + chunk])                   # (M, n, K)
        yb = y[i:i + chunk].expand(len(logits), -1)
        part = _member_losses(loss_name, loss_fn, logits, yb).double() * yb.shape[1]
        hits = (logits.argmax(-1) == yb).sum(1)
        total = part if total is None else total + part
        correct = hits if correct is None else correct + hits
    losses = (total / len(x)).tolist()
    accs = (correct.double() / len(x)).tolist()
    return list(zip(losses, accs, strict=True))


@torch.no_grad()
def _capture(forward: Callable, params: dict, buffers: dict, x: torch.Tensor, layers: list[str],
             chunk: int) -> dict[str, np.ndarray]:
    """Representations of ``x`` at ``layers`` for every member: layer -> (M, n, features) float32."""
    parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    for i in range(0, len(x), chunk):
        feats = forward(params, buffers, x[i:i + chunk])
        for layer in layers:
            parts[layer].append(feats[layer])
    return {layer: torch.cat(p, dim=1).float().cpu().numpy() for layer, p in parts.items()}
