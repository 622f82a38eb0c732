"""Rendering helpers of the synthetic cells: contours, chromatin, nucleoli and stain normalisation.

Everything here works on one chunk of images at a time, in float32, so that the
peak memory of :func:`akp.datasets.synthetic.make_synthetic_cells` stays a few
chunks' worth whatever ``n`` is. Geometry is in pixels; callers scale it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "contour_coefficients",
    "contour_radius",
    "chromatin_texture",
    "nucleoli",
    "soft_inside",
    "stain_normalise",
]

F32 = np.float32


def smooth_noise(rng: np.random.Generator, n: int, grid: int, size: int) -> np.ndarray:
    """Gaussian noise on a ``grid`` x ``grid`` lattice, bicubically upsampled: a texture of one grain.

    Returns
    -------
    ndarray of float32, shape (n, size, size)
    """
    base = torch.from_numpy(rng.standard_normal((n, 1, grid, grid), dtype=F32))
    return F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False)[:, 0].numpy()


def contour_coefficients(
    rng: np.random.Generator, rms: np.ndarray, harmonics: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Amplitudes and phases of a radial contour whose relative radius deviation has RMS ``rms``.

    Parameters
    ----------
    rng : Generator
    rms : ndarray, shape (n,)
        Root-mean-square of ``r(theta) / r0 - 1`` for each image.
    harmonics : ndarray of int, shape (k,)
        The angular frequencies used (2-3: a smooth oval; 5 and up: a jagged outline).

    Returns
    -------
    amps, phases : ndarray of float32, shape (n, k)
    """
    n, k = len(rms), len(harmonics)
    # Random share of each harmonic, normalised so that sum(a^2) / 2 = rms^2.
    w = rng.uniform(0.3, 1.0, (n, k)).astype(F32)
    w *= np.sqrt(2.0 / (w ** 2).sum(1, keepdims=True))
    phases = rng.uniform(0, 2 * np.pi, (n, k)).astype(F32)
    return (w * np.asarray(rms, F32)[:, None]).astype(F32), phases


def contour_radius(theta: np.ndarray, amps: np.ndarray, phases: np.ndarray, harmonics: np.ndarray) -> np.ndarray:
    """Radius factor ``(1 + sum_k a_k cos(k theta + phi_k)) / sqrt(1 + sum a^2 / 2)`` at angles ``theta``.

    The normalisation keeps the enclosed area that of the unit circle, so a
    jagged nucleus has the same area (and dark-pixel count) as a smooth one.
    Harmonics are added one at a time: no (n, size, size, k) array.
    """
    out = np.ones_like(theta)
    for j, k in enumerate(harmonics):
        out += amps[:, j, None, None] * np.cos(F32(k) * theta + phases[:, j, None, None])
    return out / np.sqrt(1.0 + 0.5 * (amps ** 2).sum(1))[:, None, None].astype(F32)


def soft_inside(edge: np.ndarray, r: np.ndarray, width: float) -> np.ndarray:
    """Soft indicator of ``r < edge``: a logistic ramp ``width`` pixels wide (anti-aliased outline)."""
    return (0.5 + 0.5 * np.tanh((edge - r) / F32(2 * width))).astype(F32)


def chromatin_texture(rng: np.random.Generator, coarseness: np.ndarray, size: int, s: float) -> np.ndarray:
    """Chromatin darkness: fine even granules (0) to coarse dark clumps (1), per image.

    Both textures are standardised before mixing, and the final intensities are
    set by :func:`stain_normalise`, so coarse and fine chromatin differ only
    in their spatial grain, not in their mean or variance.

    Returns
    -------
    ndarray of float32, shape (n, size, size); larger means darker.
    """
    n = len(coarseness)
    fine = rng.standard_normal((n, size, size), dtype=F32)  # granules at the pixel scale: even, fine
    coarse = smooth_noise(rng, n, max(3, int(round(size / (1.8 * s)))), size)
    clumps = np.exp(1.8 * coarse)  # skewed: a few dark clumps on a paler ground
    c = np.asarray(coarseness, F32)[:, None, None]
    return (1 - c) * _standardise(fine) + c * _standardise(clumps)


def _standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per image."""
    mu = x.mean(axis=(1, 2), keepdims=True)
    sd = x.std(axis=(1, 2), keepdims=True) + F32(1e-6)
    return ((x - mu) / sd).astype(F32)


def nucleoli(
    xx: np.ndarray, yy: np.ndarray, px: np.ndarray, py: np.ndarray, radius: np.ndarray, present: np.ndarray,
    width: float,
) -> np.ndarray:
    """Nucleoli: small sharp-edged dark discs, as one map in [0, 1].

    Parameters
    ----------
    xx, yy : ndarray, shape (size, size)
        Pixel coordinates.
    px, py, radius : ndarray, shape (n, k)
        Centre and radius of each possible nucleolus.
    present : ndarray of bool, shape (n, k)
        Which of them the cell has.
    width : float
        Width of their anti-aliased edge, in pixels.
    """
    out = np.zeros((px.shape[0], *xx.shape), F32)
    for j in range(px.shape[1]):
        r = np.hypot(xx - px[:, j, None, None], yy - py[:, j, None, None])
        # Discs, not Gaussians: a Gaussian's tail would shade the whole nucleus and hide the chromatin.
        dot = soft_inside(radius[:, j, None, None], r, width)
        out = np.maximum(out, np.where(present[:, j, None, None], dot, F32(0)))
    return out


def stain_normalise(
    rendered: np.ndarray, counts: np.ndarray, levels: np.ndarray, spreads: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Replace each image's intensities by a draw from a stain model shared by both classes.

    A rank-preserving histogram match: the image keeps the order of its pixels
    (so every shape and texture survives), but its values become the sorted
    draws of ``counts[:, c]`` pixels from a normal with mean ``levels[:, c]``
    and sd ``spreads[:, c]`` for each compartment ``c``, darkest compartment
    first. When the counts and the stain parameters have the same distribution
    in both classes, so has every statistic of the histogram (mean, std,
    dark-pixel fraction, quantiles).

    Parameters
    ----------
    rendered : ndarray of float32, shape (n, h, w)
    counts : ndarray of int, shape (n, c)
        Pixels of each compartment; each row sums to h * w.
    levels, spreads : ndarray, shape (n, c)
        Mean and standard deviation of each compartment's stain.
    rng : Generator

    Returns
    -------
    ndarray of float32, shape (n, h, w), clipped to [0, 1]
    """
    n, h, w = rendered.shape
    flat = rendered.reshape(n, h * w)
    slot = np.arange(h * w)[None]
    ends = np.cumsum(counts, axis=1)[:, :-1]
    compartment = (slot[:, :, None] >= ends[:, None, :]).sum(2)
    rows = np.arange(n)[:, None]
    noise = rng.standard_normal((n, h * w), dtype=F32)
    target = levels.astype(F32)[rows, compartment] + spreads.astype(F32)[rows, compartment] * noise
    target.sort(axis=1)
    out = np.empty_like(flat)
    np.put_along_axis(out, np.argsort(flat, axis=1, kind="stable"), target, axis=1)
    return np.clip(out, 0, 1).reshape(n, h, w)
