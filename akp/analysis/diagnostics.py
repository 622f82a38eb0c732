"""Per-run diagnostics shown before the verdict: how many directions a representation uses, and collapse."""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["effective_rank", "run_diagnostics"]

# Below this participation ratio a representation is (nearly) one direction: CKA then compares little.
RANK_ONE = 1.5


def effective_rank(features: Any) -> tuple[float, float]:
    """(participation ratio, total variance) of a representation (n, p), in float64.

    The participation ratio ``(sum l)^2 / sum l^2`` of the covariance
    eigenvalues ``l`` is 1 for a rank-1 representation and p for an isotropic one.
    """
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    gram = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T
    lam = np.clip(np.linalg.eigvalsh(gram / max(1, len(x) - 1)), 0.0, None)
    total = float(lam.sum())
    return (float(total**2 / (lam**2).sum()) if total > 0 else 0.0), total


def run_diagnostics(sample: Any, comparison: Any) -> list[dict[str, Any]]:
    """Per run: effective rank (participation ratio) and total variance at the layer, and its distance to centre.

    The participation ratio ``(sum l)^2 / sum l^2`` of the covariance eigenvalues
    ``l`` counts the directions a representation really uses: near 1 means the
    run encodes the probe set along one direction, where CKA compares little.
    """
    out = []
    for i, (rec, feats) in enumerate(zip(sample.records, sample.features, strict=True)):  # aligned with the test
        rank, total = effective_rank(feats)
        out.append({
            "run_id": rec["run_id"], "condition": rec.get("condition"), "seed": rec.get("seed"),
            "family": rec["family"], "test_acc": rec.get("test_acc"),
            "effective_rank": rank, "total_variance": total, "rank_one": rank < RANK_ONE,
            "distance_to_centre": None if comparison is None else float(comparison.test.distances[i]),
            "collapsed": False, "collapsed_reason": None,
        })
    for e in sample.excluded:
        if str(e.get("reason", "")).startswith("collapsed"):
            out.append({"run_id": e["run_id"], "condition": e.get("condition"), "seed": e.get("seed"), "family": None,
                        "test_acc": e.get("test_acc"),
                        "effective_rank": None, "total_variance": None, "rank_one": None, "distance_to_centre": None,
                        "collapsed": True, "collapsed_reason": e["reason"]})
    return out


