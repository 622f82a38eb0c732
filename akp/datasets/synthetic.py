"""The built-in synthetic cell images and their option schema.

The synthetic cells are a procedural model of single-cell microscopy crops
(grayscale, stained nucleus on a light background). Cancer cells differ from
non-cancer cells only by morphology a pathologist would name:

- **multinucleation**: two or three nuclei instead of one (the total nuclear
  area is drawn alike for both classes and split between them);
- **contour irregularity**: jagged outlines (harmonics 4-7) on top of the oval
  every nucleus has;
- **chromatin texture**: coarse dark clumps instead of fine even granules;
- **nucleoli**: more and larger.

A latent "malignancy" per cell (0 or 1 plus noise) drives all four;
``difficulty`` widens its spread so the classes overlap and no classifier
reaches 100 %. What is *not* a class feature: the cell's position, rotation,
scale and elongation (random), the nuclear area, and the stain. Each image's
intensities are replaced, rank for rank, by draws from a stain model shared by
both classes (:func:`akp.datasets.cells.stain_normalise`), so the histogram and
every global statistic of it (mean, standard deviation, fraction of dark
pixels) has the same distribution in both classes. ``bench/data_baselines.py``
measures what this leaves to global statistics and to linear models.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from akp.constraints import MAX_SEED, Constraint
from akp.datasets.base import CLASS_NAMES, Dataset, DatasetError, OptionSchema, check_options
from akp.datasets.cells import (
    F32,
    chromatin_texture,
    contour_coefficients,
    contour_radius,
    nucleoli,
    soft_inside,
    stain_normalise,
)

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


# Geometry is designed at 32 px and scaled with the image; rendering goes in chunks of this many pixels.
_DESIGN_PX = 32.0
_CHUNK_PIXELS = 2 ** 19
_MAX_NUCLEI = 3
_MAX_NUCLEOLI = 5
_SMOOTH = np.array([2, 3])  # harmonics of the oval outline every nucleus has
_JAGGED = np.array([4, 5, 6, 7])  # harmonics of an irregular (notched, budding) outline


def _spread(difficulty: float) -> float:
    """Spread of the latent malignancy around each class's value (0 or 1): sets the overlap."""
    return 0.08 + 0.4 * difficulty


def _cell_body(rng: np.random.Generator, n: int, size: int, s: float) -> dict[str, np.ndarray]:
    """The cell: a wavy oval at a random place, rotation and scale; the same for both classes."""
    yy, xx = np.mgrid[0:size, 0:size].astype(F32) + F32(0.5)
    r_cell = (9.0 * s * rng.uniform(0.85, 1.15, n)).astype(F32)
    elong = rng.uniform(1.0, 1.3, n).astype(F32)
    room = np.maximum(size / 2 - r_cell * elong * 1.08 - s, 0)  # keep the whole cell in the frame
    cx = (size / 2 + rng.uniform(-1, 1, n) * room).astype(F32)
    cy = (size / 2 + rng.uniform(-1, 1, n) * room).astype(F32)
    rot = rng.uniform(0, 2 * np.pi, n).astype(F32)
    dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]
    theta = np.arctan2(dy, dx)
    stretch = np.sqrt(np.cos(theta - rot[:, None, None]) ** 2 / elong[:, None, None] ** 2
                      + np.sin(theta - rot[:, None, None]) ** 2)
    amps, phases = contour_coefficients(rng, rng.uniform(0.02, 0.05, n), _SMOOTH)
    edge = r_cell[:, None, None] * contour_radius(theta, amps, phases, _SMOOTH) / stretch
    cell = soft_inside(edge, np.hypot(dx, dy), 0.6 * s)
    return {"xx": xx, "yy": yy, "cx": cx, "cy": cy, "r_cell": r_cell, "cell": cell}


def _nuclei(rng: np.random.Generator, t: np.ndarray, body: dict[str, np.ndarray], s: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One to three nuclei of the same total area; more of them, and jagged, in cancer.

    Returns
    -------
    mask : (n, size, size) soft union of the nuclei
    count : (n,) number of nuclei
    centres : (n, 3, 2) their centres (unused slots too)
    r_each : (n,) radius of each (equal-area) nucleus
    """
    n = len(t)
    # Multinucleation: the total nuclear area is drawn for both classes alike and split between the nuclei.
    count = 1 + (rng.uniform(size=n) < 0.75 * t ** 1.5) + (rng.uniform(size=n) < 0.3 * t ** 2)
    r_each = (body["r_cell"] * rng.uniform(0.46, 0.54, n) / np.sqrt(count)).astype(F32)
    spacing = r_each * np.select([count == 2, count == 3], [1.2, 1.35], 0.0).astype(F32)
    off, off_ang, base_ang = rng.uniform(0, 0.2, n) * body["r_cell"], *rng.uniform(0, 2 * np.pi, (2, n))
    jagged = 0.02 + 0.10 * t  # RMS radial deviation of the irregular contour
    mask = np.zeros_like(body["cell"])
    centres = np.zeros((n, _MAX_NUCLEI, 2), F32)
    harmonics = np.concatenate([_SMOOTH, _JAGGED])
    for j in range(_MAX_NUCLEI):
        ang = base_ang + 2 * np.pi * j / count
        centres[:, j, 0] = body["cx"] + off * np.cos(off_ang) + spacing * np.cos(ang)
        centres[:, j, 1] = body["cy"] + off * np.sin(off_ang) + spacing * np.sin(ang)
        dx = body["xx"] - centres[:, j, 0, None, None]
        dy = body["yy"] - centres[:, j, 1, None, None]
        a_lo, p_lo = contour_coefficients(rng, rng.uniform(0.03, 0.08, n), _SMOOTH)
        a_hi, p_hi = contour_coefficients(rng, jagged, _JAGGED)
        factor = contour_radius(np.arctan2(dy, dx), np.hstack([a_lo, a_hi]), np.hstack([p_lo, p_hi]), harmonics)
        nucleus = soft_inside(r_each[:, None, None] * factor, np.hypot(dx, dy), 0.5 * s)
        mask = np.maximum(mask, np.where((j < count)[:, None, None], nucleus, F32(0)))
    return mask, count, centres, r_each


def _nucleoli(rng: np.random.Generator, t: np.ndarray, body: dict[str, np.ndarray], count: np.ndarray,
              centres: np.ndarray, r_each: np.ndarray, s: float) -> np.ndarray:
    """Nucleoli: prominent round dots, more and larger in cancer, each inside one of the nuclei."""
    n, k = len(t), _MAX_NUCLEOLI
    present = np.arange(k)[None] < np.minimum(rng.poisson(0.4 + 2.6 * t), k)[:, None]
    radius = ((0.7 + 0.6 * t)[:, None] * s * rng.uniform(0.85, 1.15, (n, k))).astype(F32)
    which = np.minimum((rng.uniform(size=(n, k)) * count[:, None]).astype(np.intp), count[:, None] - 1)
    host = np.take_along_axis(centres, which[..., None], axis=1)
    ang = rng.uniform(0, 2 * np.pi, (n, k))
    rad = rng.uniform(0, 0.5, (n, k)) * r_each[:, None]
    px = (host[..., 0] + rad * np.cos(ang)).astype(F32)
    py = (host[..., 1] + rad * np.sin(ang)).astype(F32)
    return nucleoli(body["xx"], body["yy"], px, py, radius, present, 0.3 * s)


def _render_chunk(rng: np.random.Generator, labels: np.ndarray, size: int, difficulty: float) -> np.ndarray:
    """Images of one chunk of cells, (n, size, size) float32 in [0, 1]."""
    n, s = len(labels), size / _DESIGN_PX
    # Latent malignancy: 0 for typical non-cancer, 1 for typical cancer; its spread sets the overlap.
    t = np.clip(labels + rng.normal(0.0, _spread(difficulty), n), 0, 1).astype(F32)
    # The layers draw from ``rng`` in this order; changing it changes every image.
    body = _cell_body(rng, n, size, s)
    nucleus, count, centres, r_each = _nuclei(rng, t, body, s)
    chromatin = chromatin_texture(rng, t, size, s)
    dots = _nucleoli(rng, t, body, count, centres, r_each, s)
    # A provisional rendering that fixes the order of the pixels (only ranks survive normalisation).
    gx, gy = rng.normal(0, 0.03, (2, n, 1, 1)).astype(F32)
    background = 1.0 + (gx * (body["xx"] - size / 2) + gy * (body["yy"] - size / 2)) / size
    cell = np.maximum(body["cell"], nucleus)
    img = background * (1 - cell) + F32(0.65) * cell
    img = img * (1 - nucleus) + (F32(0.3) - F32(0.09) * chromatin - F32(0.3) * dots) * nucleus
    img += rng.normal(0, 0.01 + 0.03 * difficulty, img.shape).astype(F32)
    # Stain normalisation: compartment sizes and stain draws have the same distribution in both classes.
    n_nuc = np.rint(nucleus.sum((1, 2))).astype(np.int64)
    n_clump = np.rint(rng.uniform(0.2, 0.3, n) * n_nuc).astype(np.int64)  # the darkest chromatin
    n_cyto = np.rint(cell.sum((1, 2))).astype(np.int64) - n_nuc
    counts = np.stack([n_clump, n_nuc - n_clump, n_cyto, size * size - n_nuc - n_cyto], 1)
    nuc = rng.uniform(0.26, 0.40, n)
    levels = np.stack([nuc - 0.12, nuc + 0.03, rng.uniform(0.56, 0.70, n), rng.uniform(0.80, 0.92, n)], 1)
    spreads = np.stack([rng.uniform(0.03, 0.05, n), rng.uniform(0.03, 0.05, n), rng.uniform(0.03, 0.05, n),
                        rng.uniform(0.015, 0.035, n)], 1)
    return stain_normalise(img, counts, levels, spreads, rng)


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
    size, difficulty = int(size), float(difficulty)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    images = np.empty((n, 1, size, size), F32)
    step = max(1, _CHUNK_PIXELS // (size * size))  # chunks bound the peak memory at large sizes
    for i in range(0, n, step):
        images[i:i + step, 0] = _render_chunk(rng, labels[i:i + step], size, difficulty)
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
