"""The built-in synthetic cell images and their option schema.

The synthetic cells are a procedural model of single-cell microscopy crops
(grayscale, stained nucleus on a light background). Cancer cells differ from
non-cancer cells the way pathologists describe it: a larger nucleus-to-cell
ratio, an irregular nuclear contour, darker and coarser chromatin, more
nucleoli, and more variation in size and shape. A latent "malignancy" per cell
drives all of these; ``difficulty`` widens its spread so the classes overlap and
no classifier reaches 100 %.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from akp.constraints import MAX_SEED, Constraint
from akp.datasets.base import CLASS_NAMES, Dataset, DatasetError, OptionSchema, check_options

__all__ = [
    "DEFAULT_DIFFICULTY",
    "DEFAULTS",
    "OPTIONS",
    "SYNTHETIC",
    "TEST_SEED_OFFSET",
    "make_synthetic_cells",
    "synthetic_dataset",
    "validate_synthetic_options",
]

#: The ``dataset`` name of the built-in synthetic cells.
SYNTHETIC = "synthetic-cells"
DEFAULT_DIFFICULTY = 0.5
#: The test split's seed is the data seed plus this prime, so train and test images never coincide.
TEST_SEED_OFFSET = 10_007

#: Options of :func:`synthetic_dataset` (``spec.dataset_options`` of synthetic cells); labels are the Design page's.
OPTIONS: OptionSchema = {c.field.split(".", 1)[1]: c for c in (
    Constraint("dataset_options.n_train", "Training images", int, 20, 200_000),
    Constraint("dataset_options.n_test", "Test images", int, 20, 100_000),
    Constraint("dataset_options.size", "Image size (px)", int, 16, 128),
    Constraint("dataset_options.seed", "Data seed", int, 0, MAX_SEED),
    Constraint("dataset_options.difficulty", "Difficulty", float, 0.0, 1.0,
               help="0: the classes barely overlap; 1: heavy overlap and noise."),
)}
#: Defaults of :func:`synthetic_dataset`, one per key of :data:`OPTIONS`.
DEFAULTS: dict[str, Any] = {"n_train": 2000, "n_test": 1000, "size": 32, "seed": 0,
                            "difficulty": DEFAULT_DIFFICULTY}


def validate_synthetic_options(options: dict[str, Any]) -> None:
    """Check synthetic-cell options against :data:`OPTIONS`.

    Raises
    ------
    DatasetError
        With ``field="dataset_options.<key>"`` for an unknown key or a bad value.
    """
    check_options(options, OPTIONS, dataset=SYNTHETIC)


@dataclass
class _Cells:
    """Per-image geometry shared by the layers of one batch of cells."""

    m: np.ndarray  # latent malignancy
    s: float  # scale: geometry is designed at 32 px
    xx: np.ndarray
    yy: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    cell_r: np.ndarray
    cell: np.ndarray


def _smooth_noise(rng: np.random.Generator, n: int, low: int, size: int) -> np.ndarray:
    """Gaussian noise on a low x low grid, bicubically upsampled: texture of a given grain."""
    base = torch.from_numpy(rng.standard_normal((n, 1, low, low)).astype(np.float32))
    up = F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False)
    return up[:, 0].numpy()


def _radial_contour(
    rng: np.random.Generator, n: int, amp: np.ndarray, harmonics: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Random smooth radial perturbation coefficients: r(theta) = 1 + sum a_k cos(k theta + phi_k)."""
    a = rng.standard_normal((n, harmonics)) * amp[:, None] / np.sqrt(harmonics)
    phi = rng.uniform(0, 2 * np.pi, (n, harmonics))
    return a, phi


def _contour(theta: np.ndarray, a: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """The radius factor of :func:`_radial_contour`'s coefficients at the angles ``theta``."""
    k = np.arange(1, a.shape[1] + 1) + 1  # harmonics 2.. (1 would just shift the shape)
    return 1.0 + np.einsum("nk,nkij->nij", a, np.cos(k[None, :, None, None] * theta[:, None] + phi[..., None, None]))


def _cell_body(rng: np.random.Generator, m: np.ndarray, size: int) -> _Cells:
    """Cell body: an ellipse with a wavy outline; size and shape vary more in cancer."""
    n = len(m)
    s = size / 32.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cx = size / 2 + rng.normal(0, 1.5 * s, n)
    cy = size / 2 + rng.normal(0, 1.5 * s, n)
    dx = xx[None] - cx[:, None, None]
    dy = yy[None] - cy[:, None, None]
    r = np.hypot(dx, dy)
    theta = np.arctan2(dy, dx)
    variability = 0.08 + 0.12 * np.clip(m, 0, 1.5)
    cell_r = (10.0 + rng.normal(0, 1, n) * variability * 10) * s
    elong = 1.0 + np.abs(rng.normal(0, 1, n)) * variability
    rot = rng.uniform(0, np.pi, n)
    stretch = np.sqrt(np.cos(theta - rot[:, None, None]) ** 2 * elong[:, None, None] ** -2
                      + np.sin(theta - rot[:, None, None]) ** 2)
    ca, cphi = _radial_contour(rng, n, 0.04 + 0.05 * np.clip(m, 0, 1.5))
    cell_edge = cell_r[:, None, None] * _contour(theta, ca, cphi) / stretch
    cell = 1 / (1 + np.exp(-(cell_edge - r) / (0.6 * s)))
    return _Cells(m, s, xx, yy, cx, cy, dx, dy, cell_r, cell)


def _nucleus(rng: np.random.Generator, c: _Cells) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nucleus mask, larger relative to the cell and with an irregular contour in cancer.

    Returns
    -------
    nucleus, ratio, ncx, ncy : the mask, the nucleus-to-cell radius ratio and the nucleus offset.
    """
    n = len(c.m)
    ratio = np.clip(0.42 + 0.18 * c.m + rng.normal(0, 0.03, n), 0.2, 0.85)
    na, nphi = _radial_contour(rng, n, 0.03 + 0.14 * np.clip(c.m, 0, 1.5))
    ncx = rng.normal(0, 1.0 * c.s, n)[:, None, None]
    ncy = rng.normal(0, 1.0 * c.s, n)[:, None, None]
    nr = np.hypot(c.dx - ncx, c.dy - ncy)
    ntheta = np.arctan2(c.dy - ncy, c.dx - ncx)
    nuc_edge = (ratio * c.cell_r)[:, None, None] * _contour(ntheta, na, nphi)
    nucleus = 1 / (1 + np.exp(-(nuc_edge - nr) / (0.5 * c.s))) * c.cell
    return nucleus, ratio, ncx, ncy


def _chromatin(rng: np.random.Generator, m: np.ndarray, size: int) -> np.ndarray:
    """Nuclear intensity: darker and coarser-grained chromatin in cancer."""
    n = len(m)
    fine = _smooth_noise(rng, n, max(4, size // 2), size)
    coarse = _smooth_noise(rng, n, max(2, size // 6), size)
    coarseness = np.clip(0.2 + 0.6 * m, 0, 1)[:, None, None]
    texture = (1 - coarseness) * fine + coarseness * coarse
    nuc_level = (0.40 - 0.12 * m + rng.normal(0, 0.03, n))[:, None, None]
    return nuc_level + (0.03 + 0.05 * np.clip(m, 0, 1.5))[:, None, None] * texture


def _nucleoli(rng: np.random.Generator, c: _Cells, ratio: np.ndarray, ncx: np.ndarray,
              ncy: np.ndarray) -> np.ndarray:
    """Nucleoli: small dark dots, more of them in cancer."""
    n = len(c.m)
    k_max = 6
    n_nucleoli = np.minimum(rng.poisson(np.clip(0.6 + 2.2 * c.m, 0.1, None)), k_max)
    ang = rng.uniform(0, 2 * np.pi, (n, k_max))
    rad = rng.uniform(0, 0.6, (n, k_max)) * (ratio * c.cell_r)[:, None]
    px = (c.cx[:, None] + ncx[:, 0, 0, None] + rad * np.cos(ang))[..., None, None]
    py = (c.cy[:, None] + ncy[:, 0, 0, None] + rad * np.sin(ang))[..., None, None]
    present = (np.arange(k_max)[None] < n_nucleoli[:, None]).astype(np.float64)[..., None, None]
    return (present * np.exp(-((c.xx - px) ** 2 + (c.yy - py) ** 2) / (2 * (0.9 * c.s) ** 2))).sum(1)


def _check_generator_args(n: Any, size: Any, difficulty: Any) -> None:
    """Reject bad arguments of :func:`make_synthetic_cells`, naming the parameter."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise DatasetError.at("n", f"must be an integer >= 2, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise DatasetError.at("size", f"must be {OPTIONS['size'].allowed()}, got {size!r}")
    OPTIONS["size"].check(int(size), DatasetError, field="size")
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float, np.integer)):
        raise DatasetError.at("difficulty", f"must be {OPTIONS['difficulty'].allowed()}, got {difficulty!r}")
    OPTIONS["difficulty"].check(float(difficulty), DatasetError, field="difficulty")


def make_synthetic_cells(
    n: int, *, size: int = 32, seed: int = 0, difficulty: float = DEFAULT_DIFFICULTY
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``n`` synthetic single-cell microscopy crops, half of them cancer cells.

    Parameters
    ----------
    n : int
        Number of images (>= 2).
    size : int, default=32
        Height and width in pixels (16 to 128).
    seed : int, default=0
        Seed: the same seed gives the same images and labels.
    difficulty : float, default=0.5
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
        If a parameter is out of range; ``field`` names the parameter.
    """
    _check_generator_args(n, size, difficulty)
    size = int(size)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    # Latent malignancy: 0 for typical non-cancer, 1 for typical cancer; its spread sets the overlap.
    spread = 0.12 + 0.45 * float(difficulty)
    m = labels + rng.normal(0.0, spread, n)
    # The layers draw from ``rng`` in this order; changing it changes every image.
    cells = _cell_body(rng, m, size)
    nucleus, ratio, ncx, ncy = _nucleus(rng, cells)
    nuc_int = _chromatin(rng, m, size)
    dots = _nucleoli(rng, cells, ratio, ncx, ncy)

    # Compose: light background with uneven illumination, cytoplasm, nucleus, noise.
    xx, yy, cell = cells.xx, cells.yy, cells.cell
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
    n_train, n_test : int, default=2000, 1000
        Sizes of the splits.
    size, seed, difficulty
        As in :func:`make_synthetic_cells`; the test split uses
        ``seed + TEST_SEED_OFFSET``.

    Returns
    -------
    Dataset
    """
    x_train, y_train = make_synthetic_cells(n_train, size=size, seed=seed, difficulty=difficulty)
    x_test, y_test = make_synthetic_cells(n_test, size=size, seed=seed + TEST_SEED_OFFSET, difficulty=difficulty)
    return Dataset(SYNTHETIC, x_train, y_train, x_test, y_test, CLASS_NAMES, source=SYNTHETIC)
