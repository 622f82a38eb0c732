"""Peak memory of building the synthetic cells and of training one run, measured in fresh subprocesses.

Three generators make the same number of 128 px images, each in its own
subprocess (so one's peak never hides another's):

- ``v2``: the generator of commit 388ea32 (float64, all images in one pass), read
  with ``git show``: the version the hosting audit measured (2.2 GB for 500 images);
- ``one-chunk``: today's generator with its chunk set to the whole dataset (float32, one pass);
- ``now``: today's generator (float32, chunks of 2^19 pixels).

For each it prints the peak resident memory added by the generation (``ru_maxrss``
after the call minus before it, imports done) and tracemalloc's peak (numpy's
allocations), next to the output's own size, and the ratio of ``v2`` to ``now``.
Then it checks :mod:`akp.memory`'s estimates against the same measurement: building
a dataset, and training one run (one epoch) of a spec at 64 px.

Usage::

    python bench/memory.py            # n = 500 and 2000 (v2 needs about 7.5 GB at 2000)
    python bench/memory.py --n 200    # a quick look
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "388ea32"

_PRELUDE = """
import json, resource, sys, tracemalloc
import numpy as np, torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

_GENERATE = _PRELUDE + """
variant, n = {variant!r}, {n}
if variant == "v2":
    import importlib.util
    spec = importlib.util.spec_from_file_location("synthetic_v2", {baseline!r})
    mod = importlib.util.module_from_spec(spec); sys.modules["synthetic_v2"] = mod; spec.loader.exec_module(mod)
    make = mod.make_synthetic_cells
else:
    import akp.datasets.synthetic as mod
    if variant == "one-chunk":
        mod._CHUNK_PIXELS = n * 128 * 128
    make = mod.make_synthetic_cells
make(4, size=128, seed=1)  # warm: lazy imports and torch's first interpolate
before = rss_mb()
tracemalloc.start()
x, y = make(n, size=128, seed=0)
traced = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
print(json.dumps({{"rss_mb": rss_mb() - before, "traced_mb": traced, "out_mb": (x.nbytes + y.nbytes) / 2**20}}))
"""

_ESTIMATE = _PRELUDE + """
from akp.experiment import load_preset
from akp.memory import dataset_build_bytes, run_bytes
from akp.runner import cached_dataset
from akp.train import train_run
spec = load_preset("smoke")
spec.dataset_options = {{"n_train": 2000, "n_test": 512, "size": 64, "seed": 0}}
spec.model = type(spec.model)(width=16, depth=3, embedding_dim=32)
spec.epochs, spec.probe_size, spec.conditions = 1, 64, spec.conditions[:1]
spec.validate()
torch.zeros(1).requires_grad_().sum().backward()  # warm autograd
before = rss_mb()
data = cached_dataset(spec, None)
built = rss_mb() - before
train_run(spec, spec.conditions[0], 0, dataset=data)
trained = rss_mb() - before
print(json.dumps({{"build_mb": built, "build_est_mb": dataset_build_bytes(spec) / 2**20,
                   "run_mb": trained, "run_est_mb": run_bytes(spec) / 2**20}}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"subprocess failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[500, 2000], help="images per generation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = Path(tmp) / "synthetic_v2.py"
        baseline.write_text(subprocess.run(["git", "show", f"{BASELINE_COMMIT}:akp/datasets/synthetic.py"],
                                           capture_output=True, text=True, cwd=ROOT, check=True).stdout)
        print(f"{'n':>6} {'variant':>10} {'peak RSS added MB':>18} {'tracemalloc MB':>15} {'output MB':>10}")
        for n in args.n:
            rows = {}
            for variant in ("v2", "one-chunk", "now"):
                r = rows[variant] = _run(_GENERATE.format(root=str(ROOT), variant=variant, n=n,
                                                          baseline=str(baseline)))
                print(f"{n:>6} {variant:>10} {r['rss_mb']:>18.0f} {r['traced_mb']:>15.0f} {r['out_mb']:>10.1f}")
            print(f"{n:>6}  peak RSS v2 / now = {rows['v2']['rss_mb'] / rows['now']['rss_mb']:.1f}x, "
                  f"one-chunk / now = {rows['one-chunk']['rss_mb'] / rows['now']['rss_mb']:.1f}x; "
                  f"now - output = {rows['now']['rss_mb'] - rows['now']['out_mb']:.0f} MB")
    e = _run(_ESTIMATE.format(root=str(ROOT)))
    print(f"akp.memory at 64 px, 2000 + 512 images: build measured {e['build_mb']:.0f} MB, estimated "
          f"{e['build_est_mb']:.0f} MB (estimate / measured {e['build_est_mb'] / e['build_mb']:.2f}); one run "
          f"measured {e['run_mb']:.0f} MB, estimated {e['run_est_mb']:.0f} MB "
          f"({e['run_est_mb'] / e['run_mb']:.2f})")


if __name__ == "__main__":
    main()
