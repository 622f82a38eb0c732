"""How much of a dataset's label global image statistics and linear models already give.

For each dataset, prints the test accuracy of three baselines and of the CNN:

- ``stats``: logistic regression on three global statistics per image (mean,
  standard deviation, fraction of dark pixels, i.e. below 0.5 in grey);
- ``linear``: logistic regression on the raw pixels (standardised; C chosen by
  5-fold cross-validation on the training split);
- ``cnn``: the teaching model under the ``steady`` schedule at the teaching
  budget (mean over ``--seeds`` seeds, min and max);

and the majority-class rate of the test split, the plain baseline all of them
are read against. Also times the generation of the teaching data (the target is
under 3 s). Targets on the default synthetic cells: stats <= 0.62, linear <=
0.72, cnn >= 0.85.

    .venv/bin/python bench/data_baselines.py                      # synthetic cells only
    .venv/bin/python bench/data_baselines.py --real ../shared/data  # and PCam (crop 32), BreastMNIST
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from akp.datasets import SYNTHETIC, Dataset, load_dataset  # noqa: E402
from akp.datasets.synthetic import DEFAULTS as SYNTHETIC_DEFAULTS  # noqa: E402
from akp.experiment import ExperimentSpec, experiment_probe, load_preset  # noqa: E402
from akp.schedule import PRESETS  # noqa: E402
from akp.train import train_run  # noqa: E402


def grey(x: np.ndarray) -> np.ndarray:
    """(n, c, h, w) images to (n, h*w) grey levels in [0, 1]."""
    return x.mean(axis=1).reshape(len(x), -1)


def global_stats(x: np.ndarray) -> np.ndarray:
    """Mean, standard deviation and dark-pixel fraction of each image: shape (n, 3)."""
    g = grey(x)
    return np.stack([g.mean(1), g.std(1), (g < 0.5).mean(1)], axis=1)


def stats_accuracy(data: Dataset) -> float:
    """Test accuracy of logistic regression on :func:`global_stats`."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(global_stats(data.x_train), data.y_train)
    return float(model.score(global_stats(data.x_test), data.y_test))


def linear_accuracy(data: Dataset) -> float:
    """Test accuracy of logistic regression on raw pixels, C by 5-fold CV on the training split."""
    xtr = data.x_train.reshape(len(data.x_train), -1)
    xte = data.x_test.reshape(len(data.x_test), -1)
    model = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], cv=5,
                                                                 max_iter=3000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the largest C: that C is then not chosen
        model.fit(xtr, data.y_train)
    return float(model.score(xte, data.y_test))


def cnn_accuracies(spec: ExperimentSpec, data: Dataset, seeds: int) -> list[float]:
    """Test accuracies of ``seeds`` runs of the steady schedule under ``spec``'s budget."""
    probe = data.x_test[experiment_probe(spec, data)]
    accs = []
    for seed in range(seeds):
        res = train_run(spec, PRESETS["steady"], seed, dataset=data, probe=probe)
        accs.append(float(res.test_acc) if res.test_acc is not None else float("nan"))
    return accs


def report(name: str, spec: ExperimentSpec, data: Dataset, seeds: int) -> None:
    """Print one dataset's row."""
    majority = max(np.mean(data.y_test == 0), np.mean(data.y_test == 1))
    t0 = time.perf_counter()
    accs = cnn_accuracies(spec, data, seeds)
    cnn_s = (time.perf_counter() - t0) / seeds
    print(f"{name:<22} {len(data.y_train):>6} {len(data.y_test):>6} {majority:>8.3f} "
          f"{stats_accuracy(data):>6.3f} {linear_accuracy(data):>7.3f} "
          f"{np.mean(accs):>6.3f} [{min(accs):.3f}, {max(accs):.3f}] {cnn_s:>6.1f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2, help="CNN runs per dataset")
    ap.add_argument("--real", type=Path, default=None, help="folder with pcam-test/ and breastmnist.npz")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    teaching = load_preset("teaching")
    t0 = time.perf_counter()
    load_dataset(teaching.dataset, teaching.dataset_options)
    print(f"teaching data ({teaching.dataset_options}) generated in {time.perf_counter() - t0:.2f} s")
    # The targets are on the generator's default options; the CNN is the teaching model and budget.
    synthetic = load_dataset(SYNTHETIC, dict(SYNTHETIC_DEFAULTS))
    print(f"default synthetic cells {SYNTHETIC_DEFAULTS}; CNN: {teaching.epochs} epochs, {args.seeds} seeds")
    print(f"{'dataset':<22} {'train':>6} {'test':>6} {'majority':>8} {'stats':>6} {'linear':>7} "
          f"{'cnn mean [min, max]':<21} {'s/run':>6}")
    report("synthetic-cells", dataclasses.replace(teaching, dataset_options=dict(SYNTHETIC_DEFAULTS)), synthetic,
           args.seeds)
    if args.real is not None:
        for name, path, options in [
            ("pcam (crop 32)", args.real / "pcam-test", {"size": 32, "channels": 3, "crop": 32}),
            ("breastmnist", args.real / "breastmnist.npz", {"size": 28, "channels": 1}),
        ]:
            if not path.exists():
                print(f"{name:<22} skipped: {path} not found")
                continue
            spec = dataclasses.replace(teaching, dataset=str(path), dataset_options=options)
            report(name, spec, load_dataset(str(path), options), args.seeds)


if __name__ == "__main__":
    main()
