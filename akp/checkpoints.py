"""Checkpoints of one run after each finished epoch, so an interrupted run resumes where it stopped.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts,
written with ``torch.save`` through :func:`akp.paths.atomic_write_bytes` (a kill
mid-write leaves the previous checkpoint whole) and read with
``torch.load(weights_only=True)``, which refuses any pickled object that is not
one of those: a checkpoint file can never run code.

It holds what the next epoch needs to continue exactly as an uninterrupted run
would: the model's and the optimizer's state, the activation and loss in force
(swaps happened before), torch's global RNG state, the last finished epoch, and
the run's history so far (metrics rows, swap events, captured representations,
epoch -1 included). The data order needs no state: it is a function of
(seed, epoch) (:func:`akp.train.epoch_order`).

Where: ``<experiment dir>/checkpoints/<run_id>.pt``, so deleting an experiment
deletes its checkpoints. The runner deletes a run's checkpoint once the run has
finished (done or diverged) unless :data:`KEEP_ENV` is set; cancelled,
interrupted and failed runs keep theirs for resume.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from akp.errors import AKPError
from akp.paths import atomic_write_bytes
from akp.swaps import get_loss, swap_activation

#: Format version written in every checkpoint; another version is not read.
CHECKPOINT_VERSION = 1
#: Set to 1 / true / yes to keep the checkpoints of finished runs (default: deleted, so disk use stays bounded).
KEEP_ENV = "AKP_KEEP_CHECKPOINTS"
_KEYS = ("version", "identity", "epoch", "model", "optimizer", "rng", "activation", "loss",
         "metrics", "events", "representations")


class CheckpointError(AKPError):
    """A checkpoint file cannot be used: unreadable, corrupt, of another version or of another run."""


def keep_checkpoints(environ: dict[str, str] | None = None) -> bool:
    """Whether finished runs keep their checkpoints (:data:`KEEP_ENV`)."""
    value = (os.environ if environ is None else environ).get(KEEP_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def checkpoint_path(experiment_dir: str | os.PathLike, run_id: str) -> Path:
    """Where the checkpoint of ``run_id`` lives inside its experiment's directory."""
    return Path(experiment_dir) / "checkpoints" / f"{run_id}.pt"


def run_identity(condition: str, seed: int, init_seed: int, epochs: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed by a run (a file of another run is never used)."""
    return {"condition": str(condition), "seed": int(seed), "init_seed": int(init_seed), "epochs": int(epochs)}


def make_state(*, identity: dict[str, Any], epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               activation: str, loss: str, metrics: list[dict], events: list[dict],
               representations: dict[str, dict[int, np.ndarray]]) -> dict[str, Any]:
    """The checkpoint of a run whose epoch ``epoch`` has just finished (tensors and plain values only).

    Parameters
    ----------
    identity : dict
        From :func:`run_identity`.
    epoch : int
        The last finished epoch (0-based).
    model, optimizer
        Their ``state_dict`` is stored (tensors are not copied: save the state before the next step).
    activation, loss : str
        In force at the end of ``epoch``.
    metrics, events : list of dict
        The run's rows and swap events so far.
    representations : dict
        layer -> epoch -> ndarray, as in :class:`akp.train.RunResult`.

    Returns
    -------
    dict
    """
    return {
        "version": CHECKPOINT_VERSION, "identity": dict(identity), "epoch": int(epoch),
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
        "activation": activation, "loss": loss,
        "metrics": [dict(m) for m in metrics], "events": [dict(e) for e in events],
        "representations": {layer: {int(e): torch.from_numpy(np.ascontiguousarray(a)) for e, a in by.items()}
                            for layer, by in representations.items()},
    }


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (serialised in memory first, then one rename)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, identity: dict[str, Any]) -> dict[str, Any] | None:
    """Read and check a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : path
    identity : dict
        The resuming run's :func:`run_identity`; the checkpoint must match it.

    Returns
    -------
    dict or None
        The state, or None when there is no checkpoint file.

    Raises
    ------
    CheckpointError
        If the file is unreadable or corrupt, holds anything but tensors and
        plain values, is of another format version or run, or its history does
        not cover epochs ``0..epoch`` exactly once.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file; all mean "unusable"
        raise CheckpointError(f"checkpoint: {path.name} is unreadable ({type(exc).__name__}: "
                              f"{(str(exc).splitlines() or [''])[0][:200]})") from None
    if not isinstance(state, dict) or any(k not in state for k in _KEYS):
        raise CheckpointError(f"checkpoint: {path.name} is not an akp checkpoint (keys missing)")
    if state["version"] != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint: {path.name} has format version {state['version']!r}; "
                              f"this akp reads version {CHECKPOINT_VERSION}")
    if state["identity"] != identity:
        raise CheckpointError(f"checkpoint: {path.name} belongs to another run ({state['identity']}, "
                              f"expected {identity})")
    epoch = state["epoch"]
    if not isinstance(epoch, int) or not 0 <= epoch < identity["epochs"]:
        raise CheckpointError(f"checkpoint: {path.name} has epoch {epoch!r}, outside 0..{identity['epochs'] - 1}")
    rows = state["metrics"]
    if not isinstance(rows, list) or [r.get("epoch") if isinstance(r, dict) else None for r in rows] \
            != list(range(epoch + 1)):
        raise CheckpointError(f"checkpoint: {path.name} does not hold one metrics row per epoch 0..{epoch}")
    if not isinstance(state["rng"], dict) or not isinstance(state["rng"].get("torch"), torch.Tensor):
        raise CheckpointError(f"checkpoint: {path.name} has no RNG state")
    return state


def restore_into(state: dict[str, Any], model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer) -> dict[str, dict[int, np.ndarray]]:
    """Load a checked state into a freshly built run: weights, optimizer, RNG, the activation in force.

    Parameters
    ----------
    state : dict
        From :func:`load_checkpoint`.
    model, optimizer
        Built as for epoch 0; changed in place.

    Returns
    -------
    dict
        The captured representations as float32 arrays: layer -> epoch -> (n, features).

    Raises
    ------
    CheckpointError
        If the tensors do not fit the model or optimizer (another architecture, say),
        or the activation, loss or representations are not valid; nothing is trained.
    """
    try:
        get_loss(state["loss"])
        reps = {str(layer): {int(e): t.numpy().astype(np.float32, copy=True) for e, t in by.items()}
                for layer, by in state["representations"].items()}
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        swap_activation(model, state["activation"])
        torch.set_rng_state(state["rng"]["torch"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint: it does not fit this run's model, optimizer or functions "
                              f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]})") from None
    return reps


def delete_checkpoint(path: str | os.PathLike) -> None:
    """Remove a checkpoint file if it is there."""
    Path(path).unlink(missing_ok=True)
