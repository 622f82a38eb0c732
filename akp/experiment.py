"""Experiment specs: dataset + model spec + training budget + conditions + seeds.

All runs of an experiment share one fixed probe set of held-out images, so
their representations are comparable.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from akp.data import SYNTHETIC, SYNTHETIC_OPTIONS
from akp.models import ModelError, ModelSpec
from akp.schedule import PRESETS as SCHEDULE_PRESETS
from akp.schedule import ScheduleError, SwapSchedule

PRESET_DIR = Path(__file__).resolve().parent.parent / "assets" / "presets"
OPTIMIZERS = ("sgd", "adam", "adamw")
CONV_REDUCTIONS = ("mean", "grid2")
MAX_EPOCHS = 200
MAX_SEEDS = 64


class ExperimentError(ValueError):
    """An experiment spec is invalid; the message names the field and what is allowed."""


@dataclass
class ExperimentSpec:
    """Everything needed to train and compare an experiment's runs.

    Parameters
    ----------
    name : str
        Human-readable name.
    dataset : str
        ``"synthetic-cells"``, an image folder, a MedMNIST ``.npz`` or a registered dataset id.
    dataset_options : dict
        Loader options (for synthetic cells: n_train, n_test, size, seed, difficulty).
    model : ModelSpec
        The CNN's architecture.
    epochs : int
        Training budget in epochs.
    batch_size : int
    optimizer : {"sgd", "adam", "adamw"}
    lr : float
        Learning rate.
    seeds : list of int
        One run per seed and condition.
    conditions : list of SwapSchedule
        The swap schedules compared; names must be unique.
    layers : list of str or None
        Layers whose probe-set representations are captured (None: all).
    probe_size : int
        Number of held-out probe images (class-balanced).
    capture_epochs : list of int or None
        Epochs at whose end representations are captured (None: every epoch).
    conv_reduce : {"mean", "grid2"}
        Reduction of conv maps before storage.
    """

    name: str = "experiment"
    dataset: str = SYNTHETIC
    dataset_options: dict[str, Any] = field(default_factory=dict)
    model: ModelSpec = field(default_factory=ModelSpec)
    epochs: int = 8
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    conditions: list[SwapSchedule] = field(default_factory=lambda: [SCHEDULE_PRESETS["steady"]])
    layers: list[str] | None = None
    probe_size: int = 512
    capture_epochs: list[int] | None = None
    conv_reduce: str = "mean"

    def validate(self) -> None:
        """Check every field; raise :class:`ExperimentError` naming the first bad one.

        Raises
        ------
        ExperimentError
        """
        if not isinstance(self.name, str) or not self.name.strip():
            raise ExperimentError("name: must be a non-empty string")
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ExperimentError("dataset: must be 'synthetic-cells', a folder, an .npz file or a dataset id")
        if not isinstance(self.dataset_options, dict):
            raise ExperimentError("dataset_options: must be an object")
        if self.dataset == SYNTHETIC:
            for key, value in self.dataset_options.items():
                if key not in SYNTHETIC_OPTIONS:
                    raise ExperimentError(
                        f"dataset_options.{key}: unknown option for synthetic-cells; "
                        f"allowed: {', '.join(SYNTHETIC_OPTIONS)}"
                    )
                kind = SYNTHETIC_OPTIONS[key]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                        kind is int and not float(value).is_integer()):
                    what = "an integer" if kind is int else "a number"
                    raise ExperimentError(f"dataset_options.{key}: must be {what}")
            _range("dataset_options.n_train", self.dataset_options.get("n_train", 2000), 20, 200_000)
            _range("dataset_options.n_test", self.dataset_options.get("n_test", 1000), 20, 100_000)
        else:
            from akp.real_data import RESOLVE_OPTIONS  # lazy: pulls in Pillow

            for key in self.dataset_options:
                if key not in RESOLVE_OPTIONS:
                    raise ExperimentError(f"dataset_options.{key}: unknown option for real data; "
                                          f"allowed: {', '.join(RESOLVE_OPTIONS)}")
        try:
            self.model.validate()
        except ModelError as exc:
            raise ExperimentError(str(exc)) from None
        _int_range("epochs", self.epochs, 1, MAX_EPOCHS)
        _int_range("batch_size", self.batch_size, 1, 4096)
        if self.optimizer not in OPTIMIZERS:
            raise ExperimentError(f"optimizer: unknown {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not 0 < self.lr <= 10:
            raise ExperimentError(f"lr: must be a number in (0, 10], got {self.lr!r}")
        if not isinstance(self.seeds, list) or not self.seeds:
            raise ExperimentError("seeds: must be a non-empty list of integers")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**31:
                raise ExperimentError(f"seeds: each seed must be an integer from 0 to 2**31-1, got {s!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ExperimentError("seeds: must be unique")
        if len(self.seeds) > MAX_SEEDS:
            raise ExperimentError(f"seeds: at most {MAX_SEEDS} seeds, got {len(self.seeds)}")
        if not self.conditions:
            raise ExperimentError("conditions: at least one swap schedule is needed")
        names = [c.name for c in self.conditions]
        if len(set(names)) != len(names):
            raise ExperimentError(f"conditions: names must be unique, got {names}")
        for i, cond in enumerate(self.conditions):
            try:
                cond.validate(self.epochs)
            except ScheduleError as exc:
                raise ExperimentError(f"conditions[{i}] ({cond.name}): {exc}") from None
        allowed = self.model.layer_names()
        for layer in self.layers or []:
            if layer not in allowed:
                raise ExperimentError(f"layers: unknown layer {layer!r}; allowed: {', '.join(allowed)}")
        if self.layers is not None and not self.layers:
            raise ExperimentError("layers: list at least one layer, or null for all")
        _int_range("probe_size", self.probe_size, 4, 10_000)
        for e in self.capture_epochs or []:
            if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e < self.epochs:
                raise ExperimentError(
                    f"capture_epochs: each must be an integer from 0 to {self.epochs - 1}, got {e!r}")
        if self.conv_reduce not in CONV_REDUCTIONS:
            raise ExperimentError(f"conv_reduce: allowed: {', '.join(CONV_REDUCTIONS)}")

    @property
    def capture_layers(self) -> list[str]:
        """Layers captured (all of the model's when ``layers`` is None)."""
        return list(self.layers) if self.layers else self.model.layer_names()

    @property
    def capture_at(self) -> list[int]:
        """Epochs at which representations are captured."""
        return sorted(set(self.capture_epochs)) if self.capture_epochs else list(range(self.epochs))

    def condition(self, name: str) -> SwapSchedule:
        """Return the condition called ``name``.

        Raises
        ------
        ExperimentError
            If there is none.
        """
        for cond in self.conditions:
            if cond.name == name:
                return cond
        raise ExperimentError(f"condition: unknown {name!r}; allowed: {', '.join(c.name for c in self.conditions)}")

    def with_overrides(self, *, seeds: int | None = None, epochs: int | None = None) -> "ExperimentSpec":
        """Copy with ``seeds`` = range(seeds) and/or another epoch budget, validated.

        Events past a shortened budget are an error, not silently dropped.
        """
        spec = replace(self)
        if seeds is not None:
            _int_range("seeds", seeds, 1, MAX_SEEDS)
            spec.seeds = list(range(seeds))
        if epochs is not None:
            spec.epochs = epochs
            if spec.capture_epochs:
                spec.capture_epochs = [e for e in spec.capture_epochs if isinstance(e, int) and e < epochs] or None
        spec.validate()
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "dataset_options": dict(self.dataset_options),
            "model": self.model.to_dict(),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "seeds": list(self.seeds),
            "conditions": [c.to_dict() for c in self.conditions],
            "layers": list(self.layers) if self.layers is not None else None,
            "probe_size": self.probe_size,
            "capture_epochs": list(self.capture_epochs) if self.capture_epochs is not None else None,
            "conv_reduce": self.conv_reduce,
        }

    @classmethod
    def from_dict(cls, data: Any) -> "ExperimentSpec":
        """Build and validate a spec from :meth:`to_dict` output.

        Raises
        ------
        ExperimentError
            If a field is missing, unknown or invalid.
        """
        if not isinstance(data, dict):
            raise ExperimentError("experiment: must be a JSON object")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise ExperimentError(
                f"experiment: unknown field(s) {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
        kwargs = dict(data)
        try:
            if "model" in kwargs:
                kwargs["model"] = ModelSpec.from_dict(kwargs["model"])
            if "conditions" in kwargs:
                conds = kwargs["conditions"]
                if not isinstance(conds, list):
                    raise ExperimentError("conditions: must be a list of swap schedules")
                kwargs["conditions"] = [_condition(c, i) for i, c in enumerate(conds)]
        except (ModelError, TypeError) as exc:
            raise ExperimentError(str(exc)) from None
        spec = cls(**kwargs)
        spec.validate()
        return spec

    def to_json(self) -> str:
        """Serialize to JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "ExperimentSpec":
        """Parse and validate a spec from JSON text.

        Raises
        ------
        ExperimentError
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExperimentError(f"experiment: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data)


def _condition(value: Any, i: int) -> SwapSchedule:
    """A condition is a schedule object or the name of a schedule preset."""
    try:
        if isinstance(value, str):
            if value not in SCHEDULE_PRESETS:
                raise ExperimentError(
                    f"conditions[{i}]: unknown preset {value!r}; allowed: {', '.join(SCHEDULE_PRESETS)}")
            return SCHEDULE_PRESETS[value]
        return SwapSchedule.from_dict(value)
    except ScheduleError as exc:
        raise ExperimentError(f"conditions[{i}]: {exc}") from None


def _int_range(field_name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ExperimentError(f"{field_name}: must be an integer from {lo} to {hi}, got {value!r}")


def _range(field_name: str, value: Any, lo: float, hi: float) -> None:
    if not lo <= value <= hi:
        raise ExperimentError(f"{field_name}: must be from {lo} to {hi}, got {value!r}")


def preset_names() -> list[str]:
    """Names of the experiment presets in ``assets/presets``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def load_preset(name: str) -> ExperimentSpec:
    """Load the experiment preset ``assets/presets/NAME.json``.

    Raises
    ------
    ExperimentError
        If there is no such preset or it is invalid.
    """
    if name not in preset_names():
        raise ExperimentError(f"preset: unknown {name!r}; allowed: {', '.join(preset_names())}")
    return ExperimentSpec.from_json((PRESET_DIR / f"{name}.json").read_text())


def load_spec(preset_or_file: str) -> ExperimentSpec:
    """Load a preset by name, or a spec from a JSON file path.

    Raises
    ------
    ExperimentError
    """
    path = Path(preset_or_file)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ExperimentError(f"experiment file: {preset_or_file} does not exist")
        return ExperimentSpec.from_json(path.read_text())
    return load_preset(preset_or_file)
