"""The teaching preset to a verdict: the calibrated estimate against the actual wall time (issue 13).

1. The estimate the Design page shows (:func:`akp.design.estimate_seconds`, 1 worker, as the command line
   trains), from this machine's calibration (:mod:`akp.calibration`; measured first if there is none,
   or again with ``--recalibrate``).
2. The actual wall time of ``python -m akp experiment teaching`` (a fresh process on a temporary store),
   then of ``python -m akp verdict ID`` on it.

Printed: both times, the ratio estimate / actual training time (target 0.7 to 1.3), and the time to the
verdict (target at most 5 minutes).

    .venv/bin/python bench/teaching_eta.py [--recalibrate] [--preset teaching]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``cmd``; its wall time and stdout (raises on a non-zero exit)."""
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="teaching")
    parser.add_argument("--recalibrate", action="store_true", help="measure the calibration again first")
    args = parser.parse_args(argv)

    from akp.calibration import calibrate, ensure_calibration
    from akp.design import calibration_threads, estimate_note, estimate_seconds, format_duration
    from akp.experiment import load_preset

    spec = load_preset(args.preset)
    threads = calibration_threads(1)
    load_start = os.getloadavg()[0]
    calibration = calibrate(threads) if args.recalibrate else ensure_calibration(threads)
    if calibration is None:
        raise SystemExit("calibration is turned off (AKP_CALIBRATE=0): nothing to compare")
    estimate = estimate_seconds(spec, workers=1)
    print(f"{args.preset}: {len(spec.conditions)} conditions x {len(spec.seeds)} seeds x {spec.epochs} epochs; "
          f"1 worker x {threads} torch threads; load average {load_start:.2f} on {os.cpu_count()} CPUs")
    print(f"calibration: {calibration.signature}; measured {calibration.measured_at} at load "
          f"{calibration.load_average:g} in {calibration.seconds:.1f} s")
    print(f"estimate: {estimate:.1f} s ({format_duration(estimate)}); {estimate_note(1)}", flush=True)

    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory(prefix="akp-teaching-eta-") as home:
        train_s, out = timed([sys.executable, "-m", "akp", "experiment", args.preset, "--home", home, "--quiet"],
                             env)
        experiment_id = re.search(r"^experiment (\S+):", out, re.M).group(1)
        verdict_s, verdict_out = timed([sys.executable, "-m", "akp", "verdict", experiment_id, "--home", home], env)
    verdict = re.search(r"^verdict: (.+)$", verdict_out, re.M)
    total = train_s + verdict_s
    print(f"actual: akp experiment {train_s:.1f} s ({format_duration(train_s)}), akp verdict {verdict_s:.1f} s; "
          f"to the verdict {total:.1f} s ({format_duration(total)}; target <= 5 min)")
    print(f"verdict: {verdict.group(1) if verdict else '?'}")
    print(f"ratio estimate / actual training: {estimate / train_s:.2f} (target 0.70-1.30)")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
