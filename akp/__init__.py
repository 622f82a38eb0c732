"""AKP Lab: test the Anna Karenina Principle on image classifiers.

Hot-swap activation and loss functions during training (swap schedules), sort
the runs into happy and unhappy families, and compare how far apart their
internal representations are (CKA, PERMDISP). Usable from a notebook
(``import akp``), the shell (``python -m akp``) and the Streamlit app.
"""
from akp.access import LOCAL_USER
from akp.datasets import CLASS_NAMES, Dataset, DatasetError, load_dataset, make_synthetic_cells
from akp.errors import AccessError, AKPError
from akp.experiment import ExperimentError, ExperimentSpec, load_preset
from akp.models import ModelSpec
from akp.schedule import PRESETS, ScheduleError, SwapEvent, SwapSchedule
from akp.store import RunStore, StoreError
from akp.train import RunResult, train_run

__all__ = [
    "AKPError", "CLASS_NAMES", "LOCAL_USER", "AccessError", "Dataset", "DatasetError", "ExperimentError",
    "ExperimentSpec", "ModelSpec", "PRESETS", "RunResult", "RunStore", "ScheduleError", "StoreError", "SwapEvent",
    "SwapSchedule", "load_dataset", "load_preset", "make_synthetic_cells", "train_run",
]
__version__ = "0.1.0"
