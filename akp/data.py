"""Datasets: the built-in synthetic cell images and the common :class:`Dataset` container.

The synthetic cells are a procedural model of single-cell microscopy crops
(grayscale, stained nucleus on a light background). Cancer cells differ from
non-cancer cells the way pathologists describe it: a larger nucleus-to-cell
ratio, an irregular nuclear contour, darker and coarser chromatin, more
nucleoli, and more variation in size and shape. A latent "malignancy" per cell
drives all of these; ``difficulty`` widens its spread so the classes overlap and
no classifier reaches 100 %.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from akp.experiment import ExperimentSpec

CLASS_NAMES = ("non-cancer", "cancer")
SYNTHETIC = "synthetic-cells"
DEFAULT_DIFFICULTY = 0.5


class DatasetError(ValueError):
    """A dataset or one of its files is invalid; the message names it and the problem."""


@dataclass
class Dataset:
    """Images and labels with a train/test split (and an optional validation split).

    Images are float32 arrays (N, C, H, W) in [0, 1]; labels are int64 (N,).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    source: str = ""

    @property
    def channels(self) -> int:
        """Number of image channels."""
        return int(self.x_train.shape[1])

    @property
    def size(self) -> int:
        """Image height (= width) in pixels."""
        return int(self.x_train.shape[-1])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def _smooth_noise(rng: np.random.Generator, n: int, low: int, size: int) -> np.ndarray:
    """Gaussian noise on a low x low grid, bilinearly upsampled: texture of a given grain."""
    base = torch.from_numpy(rng.standard_normal((n, 1, low, low)).astype(np.float32))
    up = F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False)
    return up[:, 0].numpy()


def _radial_contour(rng: np.random.Generator, n: int, amp: np.ndarray, harmonics: int = 4):
    """Random smooth radial perturbation coefficients: r(theta) = 1 + sum a_k cos(k theta + phi_k)."""
    a = rng.standard_normal((n, harmonics)) * amp[:, None] / np.sqrt(harmonics)
    phi = rng.uniform(0, 2 * np.pi, (n, harmonics))
    return a, phi


def _contour(theta: np.ndarray, a: np.ndarray, phi: np.ndarray) -> np.ndarray:
    k = np.arange(1, a.shape[1] + 1) + 1  # harmonics 2.. (1 would just shift the shape)
    return 1.0 + np.einsum("nk,nkij->nij", a, np.cos(k[None, :, None, None] * theta[:, None] + phi[..., None, None]))


def make_synthetic_cells(
    n: int, *, size: int = 32, seed: int = 0, difficulty: float = DEFAULT_DIFFICULTY
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` synthetic single-cell microscopy crops, half of them cancer cells.

    Parameters
    ----------
    n : int
        Number of images (>= 2).
    size : int
        Height and width in pixels (16 to 128).
    seed : int
        Seed: the same seed gives the same images and labels.
    difficulty : float
        0 (classes barely overlap) to 1 (heavy overlap and noise). The default
        0.5 lets the ``steady`` schedule reach roughly 85-95 % test accuracy on
        the teaching budget.

    Returns
    -------
    images : ndarray of float32, shape (n, 1, size, size), values in [0, 1]
    labels : ndarray of int64, shape (n,); 1 = cancer (see :data:`CLASS_NAMES`)

    Raises
    ------
    DatasetError
        If a parameter is out of range.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise DatasetError(f"n: must be an integer >= 2, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= 128:
        raise DatasetError(f"size: must be an integer from 16 to 128, got {size!r}")
    if not isinstance(difficulty, (int, float)) or not 0.0 <= float(difficulty) <= 1.0:
        raise DatasetError(f"difficulty: must be a number from 0 to 1, got {difficulty!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    # Latent malignancy: 0 for typical non-cancer, 1 for typical cancer; its spread sets the overlap.
    spread = 0.12 + 0.45 * float(difficulty)
    m = labels + rng.normal(0.0, spread, n)
    s = size / 32.0  # geometry is designed at 32 px and scaled

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx = size / 2 + rng.normal(0, 1.5 * s, n)
    cy = size / 2 + rng.normal(0, 1.5 * s, n)
    dx = xx[None] - cx[:, None, None]
    dy = yy[None] - cy[:, None, None]
    r = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)

    # Cell body: an ellipse with a wavy outline; size and shape vary more in cancer.
    variability = 0.08 + 0.12 * np.clip(m, 0, 1.5)
    cell_r = (10.0 + rng.normal(0, 1, n) * variability * 10) * s
    elong = 1.0 + np.abs(rng.normal(0, 1, n)) * variability
    rot = rng.uniform(0, np.pi, n)
    stretch = np.sqrt(np.cos(theta - rot[:, None, None]) ** 2 * elong[:, None, None] ** -2
                      + np.sin(theta - rot[:, None, None]) ** 2)
    ca, cphi = _radial_contour(rng, n, 0.04 + 0.05 * np.clip(m, 0, 1.5))
    cell_edge = cell_r[:, None, None] * _contour(theta, ca, cphi) / stretch
    cell = 1 / (1 + np.exp(-(cell_edge - r) / (0.6 * s)))

    # Nucleus: larger relative to the cell and with an irregular contour in cancer.
    ratio = np.clip(0.42 + 0.18 * m + rng.normal(0, 0.03, n), 0.2, 0.85)
    na, nphi = _radial_contour(rng, n, 0.03 + 0.14 * np.clip(m, 0, 1.5))
    ncx = rng.normal(0, 1.0 * s, n)[:, None, None]
    ncy = rng.normal(0, 1.0 * s, n)[:, None, None]
    nr = np.hypot(dx - ncx, dy - ncy)
    ntheta = np.arctan2(dy - ncy, dx - ncx)
    nuc_edge = (ratio * cell_r)[:, None, None] * _contour(ntheta, na, nphi)
    nucleus = 1 / (1 + np.exp(-(nuc_edge - nr) / (0.5 * s))) * cell

    # Chromatin: darker and coarser-grained in cancer.
    fine = _smooth_noise(rng, n, max(4, size // 2), size)
    coarse = _smooth_noise(rng, n, max(2, size // 6), size)
    coarseness = np.clip(0.2 + 0.6 * m, 0, 1)[:, None, None]
    texture = (1 - coarseness) * fine + coarseness * coarse
    nuc_level = (0.40 - 0.12 * m + rng.normal(0, 0.03, n))[:, None, None]
    nuc_int = nuc_level + (0.03 + 0.05 * np.clip(m, 0, 1.5))[:, None, None] * texture

    # Nucleoli: small dark dots, more of them in cancer.
    k_max = 6
    n_nucleoli = np.minimum(rng.poisson(np.clip(0.6 + 2.2 * m, 0.1, None)), k_max)
    ang = rng.uniform(0, 2 * np.pi, (n, k_max))
    rad = rng.uniform(0, 0.6, (n, k_max)) * (ratio * cell_r)[:, None]
    px = (cx[:, None] + ncx[:, 0, 0, None] + rad * np.cos(ang))[..., None, None]
    py = (cy[:, None] + ncy[:, 0, 0, None] + rad * np.sin(ang))[..., None, None]
    present = (np.arange(k_max)[None] < n_nucleoli[:, None]).astype(np.float64)[..., None, None]
    dots = (present * np.exp(-((xx - px) ** 2 + (yy - py) ** 2) / (2 * (0.9 * s) ** 2))).sum(1)

    # Compose: light background with uneven illumination, cytoplasm, nucleus, noise.
    gx, gy = rng.normal(0, 0.03, (2, n))[..., None, None]
    background = 0.88 + gx * (xx - size / 2) / size + gy * (yy - size / 2) / size
    cyto_level = (0.68 + rng.normal(0, 0.04, n))[:, None, None]
    img = background * (1 - cell) + cyto_level * cell
    img = img * (1 - nucleus) + nuc_int * nucleus
    img = img - 0.18 * dots * nucleus
    img = img + rng.normal(0, 0.02 + 0.04 * float(difficulty), img.shape)
    images = np.clip(img, 0, 1).astype(np.float32)[:, None]
    return images, labels


def synthetic_dataset(
    n_train: int = 2000, n_test: int = 1000, *, size: int = 32, seed: int = 0,
    difficulty: float = DEFAULT_DIFFICULTY,
) -> Dataset:
    """Synthetic cells split into independent train and test sets (different seeds).

    Parameters
    ----------
    n_train, n_test : int
        Sizes of the splits.
    size, seed, difficulty
        As in :func:`make_synthetic_cells`.

    Returns
    -------
    Dataset
    """
    x_train, y_train = make_synthetic_cells(n_train, size=size, seed=seed, difficulty=difficulty)
    x_test, y_test = make_synthetic_cells(n_test, size=size, seed=seed + 10_007, difficulty=difficulty)
    return Dataset(SYNTHETIC, x_train, y_train, x_test, y_test, CLASS_NAMES, source=SYNTHETIC)


SYNTHETIC_OPTIONS = {"n_train": int, "n_test": int, "size": int, "seed": int, "difficulty": float}


def load_dataset(spec: "ExperimentSpec", home: str | os.PathLike | None = None) -> Dataset:
    """Load the dataset an experiment names.

    Parameters
    ----------
    spec : ExperimentSpec
        Its ``dataset`` is ``"synthetic-cells"``, an image folder, a MedMNIST
        ``.npz`` file, or a registered dataset id; ``dataset_options`` holds
        the loader's options.
    home : path, optional
        The run store's home (where registered datasets live).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        If the dataset cannot be found or read.
    """
    options: dict[str, Any] = dict(spec.dataset_options)
    if spec.dataset == SYNTHETIC:
        return synthetic_dataset(**options)
    from akp import real_data  # real-data loaders pull in Pillow; only when needed

    return real_data.resolve_dataset(spec.dataset, home=Path(home or default_home()), **options)


def default_home() -> Path:
    """The run store's default home: ``$AKP_HOME`` or ``./akp-data``."""
    return Path(os.environ.get("AKP_HOME") or "akp-data")


def probe_indices(labels: np.ndarray, size: int, *, seed: int = 0) -> np.ndarray:
    """Pick a fixed, class-balanced probe set from held-out labels.

    Parameters
    ----------
    labels : ndarray of int
        Labels of the held-out (test) split.
    size : int
        Probe size; each class gets ``size // n_classes`` images (fewer if a
        class has fewer), the remainder filled from the largest classes.
    seed : int
        Seed of the choice.

    Returns
    -------
    ndarray of int64
        Sorted indices into ``labels``.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = size // max(1, len(classes))
    chosen, rest = [], []
    for c in classes:
        idx = rng.permutation(np.flatnonzero(labels == c))
        chosen.append(idx[:per_class])
        rest.append(idx[per_class:])
    picked = np.concatenate(chosen)
    missing = min(size, len(labels)) - len(picked)
    if missing > 0:
        picked = np.concatenate([picked, rng.permutation(np.concatenate(rest))[:missing]])
    return np.sort(picked).astype(np.int64)
