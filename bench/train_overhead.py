"""Overhead of ``akp.train.train_run`` over a plain PyTorch loop (issue: foundation).

Both train the teaching preset's model on the same synthetic data for the same
epochs with the same batch order and evaluate on the test split each epoch; the
plain loop has no swaps, no progress callbacks and no capture, train_run
captures two layers on the probe set every epoch. Best of ``--repeats`` runs,
alternating the two, in one process.

    .venv/bin/python bench/train_overhead.py [--epochs 3] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akp.datasets import load_dataset  # noqa: E402
from akp.experiment import (
    experiment_probe,  # noqa: E402
    load_preset,  # noqa: E402
)
from akp.models import build_model  # noqa: E402
from akp.schedule import PRESETS  # noqa: E402
from akp.train import epoch_order, train_run  # noqa: E402


def plain_loop(spec, data, seed: int) -> float:
    """A textbook loop: Adam, cross entropy, shuffled batches, test accuracy per epoch."""
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xt, yt = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    model = build_model(spec.model, seed, in_channels=data.channels, n_classes=data.n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr)
    acc = 0.0
    for epoch in range(spec.epochs):
        model.train()
        order = epoch_order(len(x), seed, epoch)
        for b in range(0, len(x), spec.batch_size):
            idx = order[b:b + spec.batch_size]
            logits, _ = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = 0
            for i in range(0, len(xt), 512):
                correct += int((model(xt[i:i + 512])[0].argmax(1) == yt[i:i + 512]).sum())
            acc = correct / len(xt)
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = replace(load_preset("teaching"), epochs=args.epochs, layers=["conv3", "embedding"])
    data = load_dataset(spec.dataset, spec.dataset_options)
    probe = data.x_test[experiment_probe(spec, data)]
    plain_loop(spec, data, 0)  # warm-up of both paths
    train_run(spec, PRESETS["steady"], 0, dataset=data, probe=probe)
    t_plain, t_akp = [], []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        plain_loop(spec, data, r)
        t_plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        train_run(spec, PRESETS["steady"], r, dataset=data, probe=probe, on_progress=lambda p: None)
        t_akp.append(time.perf_counter() - t0)
    best_plain, best_akp = min(t_plain), min(t_akp)
    print(f"teaching model, {len(data.x_train)} train / {len(data.x_test)} test images, {args.epochs} epochs, "
          f"{args.threads} threads, capture of conv3+embedding on {len(probe)} probe images")
    print(f"plain PyTorch loop: best {best_plain:.3f} s of {args.repeats}")
    print(f"akp train_run:      best {best_akp:.3f} s of {args.repeats}")
    print(f"ratio train_run / plain: {best_akp / best_plain:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
