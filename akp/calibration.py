"""Run-time calibration: how fast this machine trains, measured once and cached with the machine's signature.

The Design page's estimate (:func:`akp.design.estimate_seconds`) scales a
measured cost by the spec's size. :func:`calibrate` measures it with a short
timed run through the real path (a temporary store, :func:`akp.runner.execute_run`:
forward and backward passes, evaluation, probe capture, store writes and
checkpoints): the reference model (width 16, depth 3, 32 px) for three epochs
and a tiny model for two, plus the synthetic data generation. It takes a couple
of seconds on a laptop CPU. The result is cached in ``calibration.json`` in the
user's cache folder (:func:`cache_dir`), keyed by :func:`machine_signature`
(CPU model, cores, torch version, torch threads, device), so each machine and
thread count is measured once.

The app calls :func:`start_calibration` when it starts (a daemon thread, like
the UMAP warm-up), so no click waits for it; until it exists, :func:`load_calibration`
returns None and the estimate falls back to a constant, and says so.

Costs are per **image-epoch**: one training image through forward and backward,
with the test and probe images counted at a third (evaluation is a forward
pass only). The cost of other models is interpolated linearly in their conv
multiply-adds (:func:`model_cost`) between the two measured models,
so small models keep their per-batch floor.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from akp.paths import atomic_write_bytes

__all__ = ["CACHE_ENV", "CALIBRATE_ENV", "Calibration", "cache_dir", "calibrate", "calibration_enabled",
           "calibration_status", "ensure_calibration", "estimate_with", "load_calibration", "machine_signature",
           "model_cost", "spec_cost", "start_calibration"]

if TYPE_CHECKING:
    from akp.experiment import ExperimentSpec
    from akp.models import ModelSpec

log = logging.getLogger(__name__)

CACHE_ENV = "AKP_CACHE_DIR"  # where calibration.json lives (default: the user's cache folder)
CALIBRATE_ENV = "AKP_CALIBRATE"  # "0": never measure; estimates use the constant
CACHE_FILE = "calibration.json"
VERSION = 1  # bump when the protocol changes: older entries are then measured again

# The calibration runs: 384 training and 128 test images of 32 px, 64 probe images, batches of 64.
N_TRAIN, N_TEST, PROBE, SIZE, BATCH = 384, 128, 64, 32, 64
REFERENCE = (16, 3, 64)  # width, depth, embedding_dim: akp.design.REFERENCE_MODEL
SMALL = (4, 2, 8)
REFERENCE_EPOCHS, SMALL_EPOCHS = 3, 2

_LOCK = threading.Lock()
_START_LOCK = threading.Lock()
_THREAD: threading.Thread | None = None
_STATE: dict[str, Any] = {"state": "not started", "error": None, "signature": None}
_MEMO: dict[tuple[str, str], "Calibration"] = {}


@dataclass(frozen=True)
class Calibration:
    """What one machine measured.

    Attributes
    ----------
    signature : str
        :func:`machine_signature` of the measuring process.
    seconds_per_image_epoch : float
        Reference model: seconds per image-epoch (training image, test and probe images at 1/3).
    small_seconds_per_image_epoch : float
        The same for the tiny model (:data:`SMALL`): the per-image floor of small models.
    reference_cost, small_cost : float
        Conv multiply-adds of one forward pass of the two models (:func:`model_cost`).
    run_overhead_seconds : float
        Per run, beyond its epochs: model build, probe capture of the untrained net, final save.
    data_seconds_per_image : float
        Generating one 32 px synthetic image and storing the probe set (scaled by the area for other sizes).
    measured_at : str
        ISO time (UTC).
    load_average : float
        One-minute load average when it was measured (a busy machine measures slow).
    seconds : float
        How long the calibration took.
    """

    signature: str
    seconds_per_image_epoch: float
    small_seconds_per_image_epoch: float
    reference_cost: float
    small_cost: float
    run_overhead_seconds: float
    data_seconds_per_image: float
    measured_at: str
    load_average: float
    seconds: float

    def image_epoch_seconds(self, cost: float) -> float:
        """Seconds per image-epoch of a model of conv cost ``cost``, interpolated between the two measured models.

        Parameters
        ----------
        cost : float
            :func:`model_cost` of the model at its image size.

        Returns
        -------
        float
        """
        slope = (self.seconds_per_image_epoch - self.small_seconds_per_image_epoch) / (
            self.reference_cost - self.small_cost)
        slope = max(0.0, slope)  # noise can make the tiny model look slower; cost then does not grow with size
        return max(self.small_seconds_per_image_epoch + slope * (cost - self.small_cost),
                   min(self.small_seconds_per_image_epoch, self.seconds_per_image_epoch))


def model_cost(model: "ModelSpec", size: int = 32, channels: int = 1) -> float:
    """Multiply-adds of one forward pass of the conv stack (the bulk of the work).

    Mirrors :class:`akp.models.SmallCNN`: 3x3 convs of widths :meth:`ModelSpec.conv_widths`,
    2x2 max-pool after each conv while the map is wider than 4 px.

    Parameters
    ----------
    model : ModelSpec
    size : int
        Image side in pixels.
    channels : int
        Image channels.

    Returns
    -------
    float
    """
    widths = model.conv_widths()
    chans = [channels, *widths]
    side, cost = size, 0.0
    for i in range(model.depth):
        cost += 9.0 * chans[i] * chans[i + 1] * side * side
        if side > 4:
            side //= 2
    return cost + widths[-1] * model.embedding_dim


def spec_cost(spec: "ExperimentSpec") -> dict[str, float]:
    """What an experiment costs in the units of a calibration.

    Parameters
    ----------
    spec : ExperimentSpec

    Returns
    -------
    dict
        ``model_cost`` (conv multiply-adds at the spec's image size), ``units`` (image-epochs per
        epoch: training images, test and probe images at 1/3), ``epochs``, ``runs`` (conditions x
        seeds), ``images`` (training + test images generated), ``size``.
    """
    from akp.datasets.synthetic import DEFAULTS

    opts = DEFAULTS | spec.dataset_options
    n_train = float(opts.get("n_train") or DEFAULTS["n_train"])
    n_test = float(opts.get("n_test") or DEFAULTS["n_test"])
    size = int(opts.get("size") or DEFAULTS["size"])
    return {"model_cost": model_cost(spec.model, size), "units": n_train + (n_test + spec.probe_size) / 3.0,
            "epochs": float(spec.epochs), "runs": float(len(spec.conditions) * len(spec.seeds)),
            "images": n_train + n_test, "size": float(size)}


def estimate_with(calibration: Calibration, spec: "ExperimentSpec", *, workers: int = 1, data_loads: int = 2) -> float:
    """Wall-clock seconds of ``spec`` from a measured calibration.

    ``per run = overhead + image_epoch_seconds(model cost) x units x epochs``; runs are spread over
    ``workers`` (``ceil(runs / workers)`` rounds); the data are generated ``data_loads`` times
    (once for the probe set when the experiment is created, once per training process).
    Vectorized seed groups (only on a GPU, :func:`akp.vectorized.use_vectorized`) are estimated as
    sequential runs.

    Parameters
    ----------
    calibration : Calibration
    spec : ExperimentSpec
    workers : int
        Runs trained at the same time (the calibration should be the one for their thread count).
    data_loads : int
        How many times the dataset is generated.

    Returns
    -------
    float
        Seconds.
    """
    import math

    cost = spec_cost(spec)
    per_run = (calibration.run_overhead_seconds
               + calibration.image_epoch_seconds(cost["model_cost"]) * cost["units"] * cost["epochs"])
    data = calibration.data_seconds_per_image * cost["images"] * (cost["size"] / SIZE) ** 2 * data_loads
    return data + per_run * math.ceil(cost["runs"] / max(1, workers))


def cache_dir() -> Path:
    """Where calibrations are cached: ``$AKP_CACHE_DIR``, else ``$XDG_CACHE_HOME/akp-lab``, else ``~/.cache/akp-lab``.

    Returns
    -------
    Path
        The folder (not created here).
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "akp-lab"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def machine_signature(threads: int | None = None, device: str = "cpu") -> str:
    """What a calibration is valid for: CPU model, cores, torch version, torch threads, device.

    Parameters
    ----------
    threads : int, optional
        Torch intra-op threads the runs will use; default this process's current setting.
    device : str

    Returns
    -------
    str
    """
    import torch

    from akp.executors import available_cores

    threads = torch.get_num_threads() if threads is None else threads
    return (f"v{VERSION} | {_cpu_model()} | {available_cores()} cores | torch {torch.__version__} | "
            f"{threads} threads | {device}")


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_calibration(threads: int | None = None, device: str = "cpu") -> Calibration | None:
    """The cached calibration for this machine and thread count, or None if there is none yet.

    Parameters
    ----------
    threads : int, optional
        Torch threads per worker; default this process's current setting.
    device : str

    Returns
    -------
    Calibration or None
        None also when the cache file is unreadable or its entry malformed.
    """
    signature = machine_signature(threads, device)
    folder = str(cache_dir())
    if (folder, signature) in _MEMO:
        return _MEMO[(folder, signature)]
    entry = _read_cache(Path(folder) / CACHE_FILE).get(signature)
    try:
        calibration = Calibration(**entry) if isinstance(entry, dict) else None
    except TypeError:  # written by another version of the protocol
        calibration = None
    if calibration is not None:
        _MEMO[(folder, signature)] = calibration
    return calibration


def _save(calibration: Calibration) -> None:
    folder = cache_dir()
    path = folder / CACHE_FILE
    data = _read_cache(path)
    data[calibration.signature] = asdict(calibration)
    atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())
    _MEMO[(str(folder), calibration.signature)] = calibration


def _calibration_spec(model: tuple[int, int, int], epochs: int):
    from akp.experiment import ExperimentSpec
    from akp.models import ModelSpec
    from akp.schedule import SwapSchedule

    return ExperimentSpec(
        name="calibration", dataset="synthetic-cells",
        dataset_options={"n_train": N_TRAIN, "n_test": N_TEST, "size": SIZE, "seed": 0},
        model=ModelSpec(*model), epochs=epochs, batch_size=BATCH, optimizer="adam", lr=1e-3, seeds=[0],
        conditions=[SwapSchedule("steady", "relu", "cross_entropy")], probe_size=PROBE)


def _timed_run(store, spec) -> tuple[list[float], float]:
    """Train one run of ``spec`` through the real path; its epochs' durations (from the second) and total seconds."""
    from akp.runner import cached_dataset, execute_run

    experiment_id = store.create_experiment(spec)
    cached_dataset(spec, store.home)  # the data are generated once per experiment, not per run: not timed here
    run_id = store.runs(experiment_id)[0]["run_id"]
    ends: list[float] = []

    def on_progress(p) -> None:
        if p.metrics is not None:
            ends.append(time.perf_counter())

    started = time.perf_counter()
    result = execute_run(store, run_id, on_progress=on_progress)
    total = time.perf_counter() - started
    if result is None or len(ends) != spec.epochs:
        raise RuntimeError(f"the calibration run did not finish: {store.run(run_id)['error']}")
    return [b - a for a, b in zip(ends, ends[1:], strict=False)], total


def calibrate(threads: int | None = None, device: str = "cpu", *, save: bool = True) -> Calibration:
    """Measure this machine with a short timed run (a couple of seconds) and cache the result.

    Parameters
    ----------
    threads : int, optional
        Torch intra-op threads to measure with; default the current setting. When it differs,
        ``torch.set_num_threads`` is changed for the measurement and restored (it is process-wide).
    device : str
    save : bool, default=True
        Write it to :func:`cache_dir` (``calibration.json``, atomically).

    Returns
    -------
    Calibration

    Raises
    ------
    RuntimeError
        If a calibration run did not finish.
    """
    import torch

    from akp.models import ModelSpec
    from akp.store import RunStore

    previous = torch.get_num_threads()
    threads = previous if threads is None else threads
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    units = N_TRAIN + (N_TEST + PROBE) / 3.0
    t0 = time.perf_counter()
    if threads != previous:
        torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="akp-calibration-") as tmp:
            store = RunStore(Path(tmp) / "store")
            spec = _calibration_spec(REFERENCE, REFERENCE_EPOCHS)
            started = time.perf_counter()
            store.create_experiment(_calibration_spec(REFERENCE, 1))  # generates the data and saves the probe set
            data_seconds = (time.perf_counter() - started) / (N_TRAIN + N_TEST)
            epochs, total = _timed_run(store, spec)
            per_epoch = statistics.median(epochs)
            overhead = max(0.0, total - per_epoch * spec.epochs)
            small_epochs, _ = _timed_run(store, _calibration_spec(SMALL, SMALL_EPOCHS))
            small_per_epoch = statistics.median(small_epochs)
    finally:
        if threads != previous:
            torch.set_num_threads(previous)
    calibration = Calibration(
        signature=machine_signature(threads, device),
        seconds_per_image_epoch=per_epoch / units, small_seconds_per_image_epoch=small_per_epoch / units,
        reference_cost=model_cost(ModelSpec(*REFERENCE), SIZE), small_cost=model_cost(ModelSpec(*SMALL), SIZE),
        run_overhead_seconds=overhead, data_seconds_per_image=data_seconds,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"), load_average=round(load, 2),
        seconds=time.perf_counter() - t0)
    if save:
        _save(calibration)
    return calibration


def calibration_enabled() -> bool:
    """False when ``$AKP_CALIBRATE`` is ``0``/``false``/``no``/``off``: nothing is measured."""
    return (os.environ.get(CALIBRATE_ENV) or "1").strip().lower() not in ("0", "false", "no", "off")


def ensure_calibration(threads: int | None = None, device: str = "cpu") -> Calibration | None:
    """The cached calibration, measured first if there is none (thread-safe; concurrent callers wait).

    Parameters
    ----------
    threads : int, optional
    device : str

    Returns
    -------
    Calibration or None
        None when calibration is turned off (``$AKP_CALIBRATE=0``).
    """
    found = load_calibration(threads, device)
    if found is not None or not calibration_enabled():
        return found
    with _LOCK:
        found = load_calibration(threads, device)
        if found is not None:
            return found
        _STATE.update(state="running", error=None, signature=machine_signature(threads, device))
        try:
            found = calibrate(threads, device)
        except Exception as exc:
            _STATE.update(state="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        _STATE.update(state="done")
        return found


def _in_background(threads: int | None, device: str) -> None:
    try:
        ensure_calibration(threads, device)
    except Exception:  # noqa: BLE001 - recorded in calibration_status; estimates fall back to the constant
        log.exception("run-time calibration failed")


def start_calibration(threads: int | None = None, device: str = "cpu") -> threading.Thread | None:
    """Start :func:`ensure_calibration` in a daemon thread, once per process.

    Parameters
    ----------
    threads : int, optional
        Torch threads the job manager's workers use.
    device : str

    Returns
    -------
    threading.Thread or None
        The calibration thread (the same one on every call); None when calibration is turned off.
    """
    global _THREAD
    if not calibration_enabled():
        return None
    with _START_LOCK:
        if _THREAD is None:
            _THREAD = threading.Thread(target=_in_background, args=(threads, device), name="akp-calibration",
                                       daemon=True)
            _THREAD.start()
        return _THREAD


def calibration_status() -> dict[str, Any]:
    """State of this process's calibration: ``{"state", "error", "signature"}``, state in
    {"not started", "running", "done", "failed"}.

    Returns
    -------
    dict
        A copy.
    """
    return dict(_STATE)
