"""Resource estimates of an experiment, made before anything is built: peak memory and disk.

:meth:`akp.jobs.JobManager.launch` refuses an experiment whose estimates exceed
the limits of :mod:`akp.quotas`. The formulas (bytes; ``f = 4``, float32):

**Building the dataset** (:func:`dataset_build_bytes`). Synthetic cells keep
the finished images of both splits, ``(n_train + n_test) * C * size^2 * f``
plus 8-byte labels, and render one chunk of ``chunk = min(n, 2^19 // size^2)``
images at a time, whose working set is ``K_RENDER * chunk * size^2 * f`` with
``K_RENDER = 16`` (tracemalloc measures 14.1 to 14.6 float32 arrays of a
chunk's pixels alive at once at sizes 16 to 128; one more for the texture torch
upsamples, which tracemalloc does not see). A registered dataset is read from
its ``.npz`` into float32 arrays: its images once (the card gives the counts
and shape), plus one copy of the largest split while it is decoded. For a path
that is not registered yet nothing is known before reading it: the estimate is 0.

**Training one run** (:func:`run_bytes`). The dataset stays resident (shared by
the runs of a process) plus the probe set, plus parameters, gradients and two
Adam moments (``4 * params * f``), plus the larger of

- a training batch: autograd keeps ``K_SAVED = 1.8`` floats per activation of
  ``S = sum_i C_i * H_i^2`` (conv layer ``i`` with ``C_i`` channels at
  resolution ``H_i``; measured 1.75 to 1.86 with ``saved_tensors_hooks``) and
  the backward pass adds about one more: ``K_TRAIN = 3`` times ``batch * S * f``;
- an evaluation batch of ``EVAL_BATCH`` images without autograd: a layer's
  input, output and activation alive at once,
  ``3 * EVAL_BATCH * max_i(C_i * H_i^2) * f``.

``bench/memory.py`` checks both against the peak resident memory of a
subprocess. The disk estimate (:func:`disk_bytes`) is the probe set plus every
run's captured representations (epoch -1 and each capture epoch).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from akp.datasets import SYNTHETIC, dataset_card, is_dataset_id
from akp.datasets.synthetic import DEFAULTS as SYNTHETIC_DEFAULTS
from akp.experiment import ExperimentSpec
from akp.models import MAX_WIDTH_DOUBLINGS

__all__ = ["EVAL_BATCH", "K_RENDER", "K_TRAIN", "Footprint", "dataset_build_bytes", "disk_bytes",
           "footprint", "run_bytes"]

FLOAT = 4
LABEL = 8
#: Chunk of the synthetic renderer, in pixels (akp.datasets.synthetic renders this many per chunk).
RENDER_CHUNK_PIXELS = 2 ** 19
#: float32 arrays of a chunk's pixels alive at once while rendering synthetic cells.
K_RENDER = 16
#: floats per activation while a training batch runs forward and backward.
K_TRAIN = 3
#: Images per evaluation batch (akp.train.EVAL_BATCH; not imported, so this module stays torch-free).
EVAL_BATCH = 512
#: Fixed costs of a training process beyond the arrays above are not counted (interpreter, torch: ~0.4 GB).


@dataclass(frozen=True)
class Footprint:
    """Estimated peak memory and disk of one experiment, in bytes.

    Attributes
    ----------
    dataset_build : int
        Peak while the dataset is built or loaded (0: unknown before it is read).
    run : int
        Peak while one run trains: the resident dataset, the model and the larger batch.
    disk : int
        Files the experiment will write: probe set and representations.
    """

    dataset_build: int
    run: int
    disk: int


def _shape(spec: ExperimentSpec, home: str | os.PathLike[str] | None) -> tuple[int, int, int, int, int] | None:
    """(n_train, n_test, channels, height, width) of the spec's dataset, or None when unknown before reading."""
    opts: dict[str, Any] = {**SYNTHETIC_DEFAULTS, **spec.dataset_options} if spec.dataset == SYNTHETIC \
        else dict(spec.dataset_options)
    if spec.dataset == SYNTHETIC:
        size = int(opts["size"])
        return int(opts["n_train"]), int(opts["n_test"]), 1, size, size
    if home is not None and is_dataset_id(spec.dataset):
        try:
            card = dataset_card(spec.dataset, home=home)
            n = card["n_images"]
            h, w = card["image_size"]
            return int(n.get("train", 0)) + int(n.get("val", 0)), int(n.get("test", 0)), int(card["channels"]), \
                int(h), int(w)
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


def dataset_build_bytes(spec: ExperimentSpec, home: str | os.PathLike[str] | None = None) -> int:
    """Peak bytes of building (synthetic) or loading (registered) the spec's dataset; 0 when unknown.

    Parameters
    ----------
    spec : ExperimentSpec
        Validated.
    home : path, optional
        The store's home, where registered datasets live.

    Returns
    -------
    int
    """
    shape = _shape(spec, home)
    if shape is None:
        return 0
    n_train, n_test, c, h, w = shape
    images = (n_train + n_test) * c * h * w * FLOAT + (n_train + n_test) * LABEL
    if spec.dataset == SYNTHETIC:
        chunk = min(max(n_train, n_test), max(1, RENDER_CHUNK_PIXELS // (h * w)))
        return images + K_RENDER * chunk * h * w * FLOAT
    return images + max(n_train, n_test) * c * h * w * FLOAT  # one split decoded while the other is held


def _conv_sizes(spec: ExperimentSpec, h: int, w: int) -> list[int]:
    """Activations per image of each conv layer, C_i * H_i * W_i (pooling halves maps larger than 4)."""
    sizes = []
    widths = [spec.model.width * 2 ** min(i, MAX_WIDTH_DOUBLINGS) for i in range(spec.model.depth)]
    for c in widths:
        sizes.append(c * h * w)
        if w > 4:
            h, w = h // 2, w // 2
    return sizes


def _param_count(spec: ExperimentSpec, in_channels: int, n_classes: int = 2) -> int:
    widths = [spec.model.width * 2 ** min(i, MAX_WIDTH_DOUBLINGS) for i in range(spec.model.depth)]
    chans = [in_channels, *widths]
    conv = sum(chans[i] * chans[i + 1] * 9 + chans[i + 1] for i in range(len(widths)))
    emb = spec.model.embedding_dim
    return conv + widths[-1] * emb + emb + emb * n_classes + n_classes


def activation_bytes(spec: ExperimentSpec, channels: int, h: int, w: int) -> tuple[int, int]:
    """Bytes of one training batch's activations (forward and backward) and of one evaluation batch.

    Returns
    -------
    train, evaluation : int
    """
    sizes = _conv_sizes(spec, h, w)
    train = K_TRAIN * spec.batch_size * sum(sizes) * FLOAT
    evaluation = 3 * EVAL_BATCH * max(max(sizes), channels * h * w) * FLOAT
    return train, evaluation


def run_bytes(spec: ExperimentSpec, home: str | os.PathLike[str] | None = None) -> int:
    """Peak bytes of training one run of ``spec`` (the dataset resident in the same process included).

    For a dataset whose shape is unknown before reading (an unregistered path),
    only the model's part is counted, at the spec's ``size`` option (default 32).
    """
    shape = _shape(spec, home)
    if shape is None:
        size = int(spec.dataset_options.get("size") or 32)
        channels = int(spec.dataset_options.get("channels") or 3)
        shape, resident = (0, 0, channels, size, size), 0
    else:
        resident = dataset_build_bytes(spec, home) if spec.dataset != SYNTHETIC else \
            (shape[0] + shape[1]) * (shape[2] * shape[3] * shape[4] * FLOAT + LABEL)
    _, _, c, h, w = shape
    probe = spec.probe_size * c * h * w * FLOAT
    params = 4 * _param_count(spec, c) * FLOAT
    train, evaluation = activation_bytes(spec, c, h, w)
    return resident + probe + params + max(train, evaluation)


def _features(spec: ExperimentSpec) -> int:
    """Features stored per probe image and capture: the captured layers' widths."""
    widths = [spec.model.width * 2 ** min(i, MAX_WIDTH_DOUBLINGS) for i in range(spec.model.depth)]
    per = {f"conv{i + 1}": c * (4 if spec.conv_reduce == "grid2" else 1) for i, c in enumerate(widths)}
    per["embedding"], per["logits"] = spec.model.embedding_dim, 2
    return sum(per.get(layer, 0) for layer in spec.capture_layers)


def disk_bytes(spec: ExperimentSpec, home: str | os.PathLike[str] | None = None) -> int:
    """Bytes the experiment writes: its probe set and every run's representations (not checkpoints)."""
    shape = _shape(spec, home)
    c, h, w = (shape[2], shape[3], shape[4]) if shape is not None else (3, 32, 32)
    probe = spec.probe_size * (c * h * w * FLOAT + LABEL)
    captures = 1 + len(spec.capture_at)  # epoch -1 (untrained) and each capture epoch
    runs = len(spec.conditions) * len(spec.seeds)
    return probe + runs * captures * spec.probe_size * _features(spec) * FLOAT


def footprint(spec: ExperimentSpec, home: str | os.PathLike[str] | None = None) -> Footprint:
    """All three estimates of ``spec`` (see the module's formulas).

    Parameters
    ----------
    spec : ExperimentSpec
        Validated.
    home : path, optional
        The store's home (for registered datasets' cards).

    Returns
    -------
    Footprint
    """
    return Footprint(dataset_build_bytes(spec, home), run_bytes(spec, home), disk_bytes(spec, home))
