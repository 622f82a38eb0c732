"""Minibatch CKA (Nguyen et al. 2021): accumulate debiased HSIC over batches of the probe set."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from akp.cka.batched import _check_options, _normalise, _numerators, _prepare, _resolve_device
from akp.cka.reference import CKAError


class MinibatchCKA:
    """Minibatch CKA accumulator (Nguyen et al. 2021).

    Each call to :meth:`update` gives one minibatch of examples for every one
    of ``M`` representations; the unbiased HSIC of every pair is computed on
    the batch and summed. :meth:`compute` returns
    ``sum HSIC_u(i, j) / sqrt(sum HSIC_u(i, i) * sum HSIC_u(j, j))``. With a
    single batch holding all the data this is exactly the full debiased CKA.
    With the RBF kernel the bandwidth is set per batch.

    Parameters
    ----------
    kernel : {"linear", "rbf"}, default="linear"
    threshold : float, default=1.0
    device : None, "cpu", "cuda" or torch.device, default=None

    Examples
    --------
    >>> acc = MinibatchCKA()
    >>> for xb, yb in batches:          # doctest: +SKIP
    ...     acc.update([xb, yb])
    >>> acc.compute()[0, 1]              # doctest: +SKIP
    """

    def __init__(self, *, kernel: str = "linear", threshold: float = 1.0, device: Any = None) -> None:
        _check_options(kernel, threshold, "auto")
        self.kernel = kernel
        self.threshold = threshold
        self.device = _resolve_device(device)
        self._sum: torch.Tensor | None = None
        self._widths: list[int] | None = None
        self.n_batches = 0
        self.n_examples = 0

    def update(self, features: Sequence[Any]) -> None:
        """Add one minibatch.

        Parameters
        ----------
        features : sequence of array-like, each of shape (b, p_i)
            The same ``M`` representations (same widths) at every call;
            ``b >= 4``.

        Raises
        ------
        CKAError
            Batch smaller than 4, or a different number/width of representations
            than earlier batches.
        """
        feats = _prepare(features, "features", self.device)
        widths = [int(f.shape[1]) for f in feats]
        if self._widths is not None and widths != self._widths:
            raise CKAError(
                f"features: every batch must hold the same representations (widths {self._widths}), got {widths}"
            )
        n = int(feats[0].shape[0])
        a, _ = _numerators(feats, kernel=self.kernel, debiased=True, threshold=self.threshold, method="auto")
        hsic = a / (n * (n - 3))
        self._sum = hsic if self._sum is None else self._sum + hsic
        self._widths = widths
        self.n_batches += 1
        self.n_examples += n

    def compute(self) -> np.ndarray:
        """CKA matrix (M, M) from the batches seen so far.

        Raises
        ------
        CKAError
            If no batch was added.
        """
        if self._sum is None:
            raise CKAError("update: call update() with at least one batch before compute()")
        return _normalise(self._sum, np.zeros(self._sum.shape[0], dtype=bool))

    def reset(self) -> None:
        """Forget all batches."""
        self._sum = None
        self._widths = None
        self.n_batches = 0
        self.n_examples = 0
