"""Train all seeds of one condition at once, as a single vectorized model.

A *family* here is the set of runs of one condition (one per seed). Their
weights are stacked along a leading member axis (``torch.func.stack_module_state``)
and one copy of the model on the ``meta`` device supplies the forward pass
(``torch.func.functional_call`` under ``torch.func.vmap``). vmap's batching rule
for a convolution with batched weights lowers it to one grouped convolution, so
all members run in one kernel per layer: this is what makes families fast on a
GPU. On a small CPU the grouped convolutions are slower than running the seeds
one after the other, so :func:`use_family_path` decides per device.

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
from collections.abc import Callable

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from akp.data import Dataset
from akp.experiment import ExperimentSpec
from akp.models import build_model
from akp.schedule import SwapSchedule
from akp.swaps import get_loss, swap_activation
from akp.train import EVAL_BATCH, Progress, RunResult, epoch_order, make_optimizer, training_tensors

# Losses without a vmap batching rule (torch falls back to a slow loop with a warning): loop ourselves.
_NO_VMAP_LOSSES = frozenset({"hinge"})
# Images per evaluation chunk summed over members, so 32 members do not need 32x the memory of one.
_EVAL_IMAGES = EVAL_BATCH * 8


def use_family_path(device: str | torch.device, n_seeds: int, *, force: bool | None = None) -> bool:
    """Whether the seeds of one condition should be trained as one vectorized family.

    On this project's 2-core CPU ``bench/family.py`` measured the family 2-4x
    slower than sequential runs, so CPUs train sequentially. On a GPU the family
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
        True or False overrides the decision (a family of one seed is still allowed).

    Returns
    -------
    bool
    """
    if force is not None:
        return bool(force) and n_seeds >= 1
    return n_seeds >= 2 and torch.device(device).type == "cuda"


def stack_members(model_spec, seeds: list[int], *, in_channels: int, n_classes: int, activation: str = "relu",
                  device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict, dict]:
    """Stack the initial weights of one model per seed into one vectorized family.

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
    """The family's forward: ``f(params, buffers, x) -> logits (members, batch, classes)``.

    ``x`` is (members, batch, C, H, W), one batch per member, or with
    ``shared_input`` (batch, C, H, W) seen by every member.
    """
    def logits_of(p, b, x):
        return functional_call(base, (p, b), (x,))[0]

    return vmap(logits_of, in_dims=(0, 0, None if shared_input else 0))


def _member_losses(loss_name: str, loss_fn, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each member's mean loss, shape (members,)."""
    if loss_name in _NO_VMAP_LOSSES:
        return torch.stack([loss_fn(logits[m], y[m]) for m in range(len(logits))])
    return vmap(loss_fn)(logits, y)


def train_family(
    spec: ExperimentSpec,
    schedule: SwapSchedule,
    seeds: list[int],
    *,
    dataset: Dataset | None = None,
    probe: np.ndarray | None = None,
    home=None,
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
    data, (x_train, y_train, x_test, y_test, x_probe) = training_tensors(spec, dataset, probe, home, device)
    n_members = len(seeds)

    base, params, buffers = stack_members(spec.model, seeds, in_channels=data.channels,
                                          n_classes=data.n_classes, activation=schedule.activation,
                                          device=device)
    optimizer = make_optimizer(spec.optimizer, list(params.values()), spec.lr)

    train_forward = member_logits(base)                    # each member its own batch
    eval_forward = member_logits(base, shared_input=True)  # all members the same images
    layers, capture_at = spec.capture_layers, set(spec.capture_at)
    wanted = frozenset(layers)

    def feats_of(p, b, x):
        return functional_call(base, (p, b), (x, wanted, spec.conv_reduce))[1]

    capture_forward = vmap(feats_of, in_dims=(0, 0, None))

    loss_name = schedule.loss
    loss_fn = get_loss(loss_name)
    results = [RunResult(schedule.name, s, "done") for s in seeds]
    active = torch.ones(n_members, dtype=torch.bool)  # members still training (on the CPU: cheap to read)
    frozen: list[torch.Tensor] | None = None  # weights of stopped members, restored after each step
    n_batches = math.ceil(len(x_train) / spec.batch_size)
    chunk = max(16, min(EVAL_BATCH, _EVAL_IMAGES // n_members))

    def stop(members_idx: list[int], state: str) -> None:
        nonlocal frozen
        if frozen is None:
            frozen = [p.detach().clone() for p in params.values()]
        else:
            with torch.no_grad():
                for f, p in zip(frozen, params.values(), strict=True):
                    f[members_idx] = p[members_idx]
        for m in members_idx:
            active[m] = False
            results[m].state = state

    def restore_stopped() -> None:
        if frozen is None:
            return
        mask = (~active).to(device)
        with torch.no_grad():
            for f, p in zip(frozen, params.values(), strict=True):
                p[mask] = f[mask]

    for epoch in range(spec.epochs):
        event = schedule.event_at(epoch)
        if event is not None:
            if event.activation:
                swap_activation(base, event.activation)
            if event.loss:
                loss_name, loss_fn = event.loss, get_loss(event.loss)
            for m in range(n_members):
                if active[m]:
                    results[m].events.append(event.to_dict())

        orders = torch.stack([epoch_order(len(x_train), s, epoch) for s in seeds]).to(device)
        total_loss = torch.zeros(n_members, device=device, dtype=torch.float64)
        correct = torch.zeros(n_members, device=device, dtype=torch.long)
        for b in range(n_batches):
            if should_stop is not None and should_stop():
                stop([m for m in range(n_members) if active[m]], "cancelled")
                return results
            if member_should_stop is not None:
                cancelled = [m for m in range(n_members) if active[m] and member_should_stop(m)]
                if cancelled:
                    stop(cancelled, "cancelled")
            if not active.any():
                return results
            idx = orders[:, b * spec.batch_size:(b + 1) * spec.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            logits = train_forward(params, buffers, xb)
            losses = _member_losses(loss_name, loss_fn, logits, yb)
            finite = torch.isfinite(losses.detach()).cpu()
            newly = [m for m in range(n_members) if active[m] and not finite[m]]
            if newly:
                # Like train_run: a non-finite loss ends the member before its step.
                stop(newly, "diverged")
                if not active.any():
                    return results
            mask = active.to(device)
            # Sum of each member's mean loss: every member gets the gradient of its own loss.
            objective = torch.where(mask, losses, torch.zeros_like(losses)).sum()
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            restore_stopped()
            total_loss += torch.where(mask, losses.detach(), 0).double() * yb.shape[1]
            correct += (logits.detach().argmax(-1) == yb).sum(1)
            if on_progress is not None and b < n_batches - 1:
                on_progress(Progress(epoch, spec.epochs, b + 1, n_batches))

        rows = _evaluate_epoch(eval_forward, params, buffers, x_test, y_test, loss_name, loss_fn, chunk)
        train_loss = (total_loss / len(x_train)).tolist()
        train_acc = (correct.double() / len(x_train)).tolist()
        finished: dict[int, dict] = {}
        for m in range(n_members):
            if not active[m]:
                continue
            test_loss, test_acc = rows[m]
            row = {
                "epoch": epoch, "train_loss": train_loss[m], "train_acc": train_acc[m],
                "test_loss": test_loss, "test_acc": test_acc, "gap": train_acc[m] - test_acc,
                "activation": base.activation, "loss": loss_name,
            }
            results[m].metrics.append(row)
            finished[m] = row
        diverged = [m for m in finished if not math.isfinite(finished[m]["test_loss"])]
        if diverged:
            # The weights blew up on the last step: the test loss shows it (as in train_run).
            stop(diverged, "diverged")
        if epoch in capture_at and active.any():
            feats = _capture(capture_forward, params, buffers, x_probe, layers, chunk)
            for m in range(n_members):
                if active[m]:
                    for layer in layers:
                        results[m].representations.setdefault(layer, {})[epoch] = feats[layer][m]
        if on_progress is not None:
            on_progress(Progress(epoch, spec.epochs, n_batches, n_batches, finished))
        if not active.any():
            break
    return results


@torch.no_grad()
def _evaluate_epoch(forward, params, buffers, x, y, loss_name, loss_fn, chunk) -> list[tuple[float, float]]:
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
def _capture(forward, params, buffers, x, layers, chunk) -> dict[str, np.ndarray]:
    """Representations of ``x`` at ``layers`` for every member: layer -> (M, n, features) float32."""
    parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    for i in range(0, len(x), chunk):
        feats = forward(params, buffers, x[i:i + chunk])
        for layer in layers:
            parts[layer].append(feats[layer])
    return {layer: torch.cat(p, dim=1).float().cpu().numpy() for layer, p in parts.items()}
