"""Time one vectorized group (akp.vectorized.train_vectorized) against sequential train_run calls.

Usage::

    .venv/bin/python bench/vectorized.py                   # CPU, 8 and 32 seeds, 1 epoch, 2000 images
    .venv/bin/python bench/vectorized.py --device cuda     # on a GPU
    .venv/bin/python bench/vectorized.py --seeds 8 --epochs 2 --n-train 1000

Both paths train the teaching preset's model (``load_preset("teaching")``) on the
same data with the same seeds, in this one process, after a warm-up of each
path; the ratio is vectorized time / sequential time (below 1: the group is faster).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from akp.datasets import load_dataset  # noqa: E402
from akp.experiment import load_preset  # noqa: E402
from akp.train import train_run  # noqa: E402
from akp.vectorized import train_vectorized, use_vectorized  # noqa: E402


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def device_name(device: str) -> str:
    """Human-readable name of the device the benchmark runs on."""
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))} (cuda, torch {torch.__version__})"
    return (f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads "
            f"(torch {torch.__version__})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="8,32", help="comma-separated group sizes (default 8,32)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--n-train", type=int, default=2000, help="training images (default 2000)")
    parser.add_argument("--condition", default=None, help="condition of the teaching preset (default: the first)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.seeds.split(",")]

    spec = load_preset("teaching")
    spec.epochs = args.epochs
    spec.dataset_options = {**spec.dataset_options, "n_train": args.n_train}
    spec.capture_epochs = None
    cond = spec.condition(args.condition) if args.condition else spec.conditions[0]
    spec.conditions = [cond]  # other conditions' events may lie past a shortened budget
    spec.validate()
    data = load_dataset(spec.dataset, spec.dataset_options)
    print(f"device: {device_name(args.device)}")
    print(f"model: teaching preset {spec.model.to_dict()}, condition {cond.name!r}, optimizer {spec.optimizer}, "
          f"{args.epochs} epoch(s), {len(data.x_train)} train / {len(data.x_test)} test images, "
          f"batch {spec.batch_size}, probe {spec.probe_size}")

    # Warm-up of both paths (kernel selection, allocator), not timed.
    train_vectorized(spec, cond, [10_000, 10_001], dataset=data, device=args.device)
    train_run(spec, cond, 10_000, dataset=data, device=args.device)

    print(f"{'seeds':>5}  {'sequential s':>12}  {'vectorized s':>12}  {'ratio':>6}  {'seq acc':>7}  {'vec acc':>7}  "
          f"job manager path")
    for n in sizes:
        seeds = list(range(n))
        _sync(args.device)
        t0 = time.perf_counter()
        seq = [train_run(spec, cond, s, dataset=data, device=args.device) for s in seeds]
        _sync(args.device)
        t_seq = time.perf_counter() - t0
        t0 = time.perf_counter()
        vec = train_vectorized(spec, cond, seeds, dataset=data, device=args.device)
        _sync(args.device)
        t_vec = time.perf_counter() - t0
        acc_seq = statistics.mean(r.test_acc or 0.0 for r in seq)
        acc_vec = statistics.mean(r.test_acc or 0.0 for r in vec)
        path = "vectorized" if use_vectorized(args.device, n) else "sequential"
        print(f"{n:>5}  {t_seq:>12.2f}  {t_vec:>12.2f}  {t_vec / t_seq:>6.3f}  {acc_seq:>7.3f}  {acc_vec:>7.3f}  "
              f"{path}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
