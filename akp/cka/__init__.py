"""Centered Kernel Alignment (CKA): exact, batched, and minibatch.

Follows Kornblith et al. 2019, *Similarity of Neural Network Representations
Revisited* (Gram form; linear and RBF kernels; RBF bandwidth ``threshold x``
the median pairwise distance, as in their reference code), the debiased HSIC
estimator of Song et al. 2012 (U-centering), and minibatch CKA of Nguyen et
al. 2021 (*Do Wide and Deep Networks Learn the Same Things?*).

Conventions
-----------
* A *representation* is an ``(n, p)`` array: ``n`` examples (the same probe set
  for every representation) by ``p`` features. Representations compared with
  each other may have different ``p``.
* Features are centred (column means removed, computed in float64) before any
  Gram matrix is formed: the activations we compare are post-ReLU float32
  values with large offsets, and centring first keeps the products small.
* Biased CKA lies in ``[0, 1]``. Debiased CKA lies in ``[-1, 1]`` and is
  returned as computed, negative values included: clamping would hide the
  estimator's sampling noise.
* A representation with zero variance (every feature constant over the
  examples) has no defined CKA with anything: the result is ``NaN``.
* Debiased (U-centred) HSIC needs ``n >= 4``; fewer examples raise
  :class:`CKAError`.

Two exact algorithms compute the matrix of all pairwise HSIC values of ``M``
representations of total width ``P = sum(p_i)``:

* **feature space** (linear kernel only): ``tr(K_i K_j) = ||X_i^T X_j||_F^2``
  for centred ``X``; costs about ``n P^2`` multiply-adds, in float64.
* **Gram space**: the (U-)centred Gram matrices are built one block of rows at
  a time (upper triangle only) for all representations at once and their
  pairwise Frobenius inner products accumulated in float64; costs about
  ``n^2 (P + M^2) / 2`` and memory bounded by the block size, never ``M n^2``.
  On CPU, large linear problems use float32 products of the float64-centred
  features with float64 accumulation (measured error ~1e-8 against a float64
  reference); small problems, the RBF kernel and CUDA use float64.

``method="auto"`` picks the cheaper of the two. The debiased linear HSIC in
feature space uses the identity (``d`` = row squared norms of the centred
``X``, ``s = sum(d)``; derivation in :func:`_debias`)::

    n (n - 3) HSIC_u(X, Y) = ||X^T Y||_F^2 - n/(n-2) d_X . d_Y
                             + s_X s_Y / ((n-1)(n-2))
"""
from akp.cka.batched import KERNELS, METHODS, _choose_method, cka_cross, cka_matrix, linear_cka, rbf_cka
from akp.cka.minibatch import MinibatchCKA
from akp.cka.reference import CKAError, center_gram, cka_from_grams, gram_linear, gram_rbf

__all__ = [
    "KERNELS",
    "METHODS",
    "CKAError",
    "MinibatchCKA",
    "_choose_method",
    "center_gram",
    "cka_cross",
    "cka_from_grams",
    "cka_matrix",
    "gram_linear",
    "gram_rbf",
    "linear_cka",
    "rbf_cka",
]
