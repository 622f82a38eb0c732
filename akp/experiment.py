"""Experiment specs: dataset + model spec + training budget + conditions + seeds.

All runs of an experiment share one fixed probe set of held-out images, so
their representations are comparable.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from akp.constraints import CONV_REDUCTIONS, MAX_EPOCHS, MAX_SEED, MAX_SEEDS, OPTIMIZERS, SPEC
from akp.datasets import SYNTHETIC, Dataset, DatasetError, probe_indices, validate_options
from akp.datasets.synthetic import DEFAULTS as SYNTHETIC_DEFAULTS
from akp.errors import AKPError
from akp.models import ModelError, ModelSpec
from akp.schedule import PRESETS as SCHEDULE_PRESETS
from akp.schedule import ScheduleError, SwapSchedule

DEFAULT_FAMILY_RULE: dict[str, Any] = {"rule": "accuracy", "threshold": None, "max_gap": None}
# Presets ship inside the package (``akp/presets/*.json``), so an installed akp finds them.
PRESETS_PACKAGE = "akp.presets"
__all__ = ["CONV_REDUCTIONS", "MAX_EPOCHS", "MAX_SEEDS", "OPTIMIZERS", "ExperimentError", "ExperimentSpec",
           "experiment_probe", "load_preset", "load_spec", "preset_names", "preset_needs_dataset"]


class ExperimentError(AKPError):
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
    family_rule : dict
        ``{"rule": "accuracy" | "gap", "threshold": float | None, "max_gap": float | None}``, fixed before any
        run trains. A None threshold means the largest-gap rule, chosen from the data: exploratory.
    primary_layer : str
        The captured layer whose verdict is the headline; the others are exploratory.
    seed_mode : {"independent", "paired"}
        ``"independent"``: a run's initial weights and data order come from a seed derived from its
        condition and seed (:meth:`run_seed`), so conditions are independent samples. ``"paired"``: runs
        with the same seed share them across conditions.
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
    family_rule: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_FAMILY_RULE))
    primary_layer: str = "embedding"
    seed_mode: str = "independent"

    def validate(self) -> None:
        """Check every field; raise :class:`ExperimentError` naming the first bad one.

        Raises
        ------
        ExperimentError
            Its ``field`` attribute is the dotted path of the bad field.
        """
        SPEC["name"].check(self.name, ExperimentError)
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ExperimentError.at("dataset", "must be 'synthetic-cells', a folder, an .npz file or a dataset id")
        if not isinstance(self.dataset_options, dict):
            raise ExperimentError.at("dataset_options", "must be an object")
        try:
            validate_options(self.dataset, self.dataset_options)
        except DatasetError as exc:
            raise exc.rebrand(ExperimentError) from None
        if not isinstance(self.model, ModelSpec):
            raise ExperimentError.at("model", "must be a ModelSpec (width, depth, embedding_dim)")
        try:
            self.model.validate()
        except ModelError as exc:
            raise exc.rebrand(ExperimentError) from None
        for name in ("epochs", "batch_size", "optimizer", "lr", "probe_size", "conv_reduce"):
            SPEC[name].check(getattr(self, name), ExperimentError)
        self._validate_seeds()
        self._validate_conditions()
        self._validate_captures()
        self._validate_design()

    def _validate_seeds(self) -> None:
        if not isinstance(self.seeds, list) or not self.seeds:
            raise ExperimentError.at("seeds", "must be a non-empty list of integers")
        for s in self.seeds:
            SPEC["seed"].check(s, ExperimentError, field="seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise ExperimentError.at("seeds", "must be unique")
        if len(self.seeds) > MAX_SEEDS:
            raise ExperimentError.at("seeds", f"at most {MAX_SEEDS} seeds, got {len(self.seeds)}")

    def _validate_conditions(self) -> None:
        if not isinstance(self.conditions, list) or not self.conditions:
            raise ExperimentError.at("conditions", "at least one swap schedule is needed")
        if not all(isinstance(c, SwapSchedule) for c in self.conditions):
            raise ExperimentError.at("conditions", "each condition must be a swap schedule")
        names = [c.name for c in self.conditions]
        if len(set(names)) != len(names):
            raise ExperimentError.at("conditions", f"names must be unique, got {names}")
        for i, cond in enumerate(self.conditions):
            try:
                cond.validate(self.epochs)
            except ScheduleError as exc:
                raise exc.rebrand(ExperimentError, f"conditions[{i}]", f"conditions[{i}] ({cond.name})") from None

    def _validate_captures(self) -> None:
        allowed = self.model.layer_names()
        if self.layers is not None:
            if not isinstance(self.layers, list) or not self.layers:
                raise ExperimentError.at("layers", "list at least one layer, or null for all")
            for layer in self.layers:
                if layer not in allowed:
                    raise ExperimentError.at("layers", f"unknown layer {layer!r}; allowed: {', '.join(allowed)}")
        if self.capture_epochs is not None:
            if not isinstance(self.capture_epochs, list):
                raise ExperimentError.at("capture_epochs", "must be a list of epochs, or null for every epoch")
            for e in self.capture_epochs:
                if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e < self.epochs:
                    raise ExperimentError.at(
                        "capture_epochs", f"each must be an integer from 0 to {self.epochs - 1}, got {e!r}")

    def _validate_design(self) -> None:
        rule = self.family_rule
        if not isinstance(rule, dict):
            raise ExperimentError.at("family_rule", "must be an object with rule, threshold, max_gap")
        unknown = sorted(set(rule) - set(DEFAULT_FAMILY_RULE))
        if unknown:
            raise ExperimentError.at("family_rule", f"unknown key(s) {unknown}; allowed: rule, threshold, max_gap")
        SPEC["family_rule.rule"].check(rule.get("rule", "accuracy"), ExperimentError)
        for key in ("threshold", "max_gap"):
            if rule.get(key) is not None:
                SPEC[f"family_rule.{key}"].check(rule[key], ExperimentError)
        SPEC["seed_mode"].check(self.seed_mode, ExperimentError)
        SPEC["primary_layer"].check(self.primary_layer, ExperimentError)
        if self.primary_layer not in self.capture_layers:
            raise ExperimentError.at("primary_layer", f"{self.primary_layer!r} is not captured; allowed: "
                                                      f"{', '.join(self.capture_layers)}")
        if self.dataset == SYNTHETIC:
            n_test = self.dataset_options.get("n_test", SYNTHETIC_DEFAULTS["n_test"])
            if self.probe_size > n_test:
                raise ExperimentError.at("probe_size", f"at most n_test ({n_test}) probe images, got {self.probe_size}")

    @property
    def threshold_source(self) -> str:
        """``"spec"`` when the happy threshold is fixed here, ``"largest_gap"`` when it will come from the data."""
        return "spec" if self.family_rule.get("threshold") is not None else "largest_gap"

    def run_seed(self, condition: str, seed: int) -> int:
        """The seed of a run's initial weights and data order.

        ``"paired"``: ``seed`` itself. ``"independent"``: a stable hash of the
        condition's name and ``seed`` (sha256, not Python's salted ``hash``), so
        the same seed under two conditions starts from different weights.
        """
        if self.seed_mode == "paired":
            return int(seed)
        digest = hashlib.sha256(f"{condition}\0{int(seed)}".encode()).hexdigest()
        return int(digest[:8], 16) % (MAX_SEED + 1)

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
        allowed = ", ".join(c.name for c in self.conditions)
        raise ExperimentError.at("condition", f"unknown {name!r}; allowed: {allowed}")

    def with_overrides(self, *, seeds: int | None = None, epochs: int | None = None) -> "ExperimentSpec":
        """Copy with ``seeds`` = range(seeds) and/or another epoch budget, validated.

        Events past a shortened budget are an error, not silently dropped.
        """
        spec = replace(self)
        if seeds is not None:
            if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
                raise ExperimentError.at("seeds", f"must be an integer from 1 to {MAX_SEEDS}, got {seeds!r}")
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
            "family_rule": dict(self.family_rule),
            "primary_layer": self.primary_layer,
            "seed_mode": self.seed_mode,
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
            raise ExperimentError.at("experiment", "must be a JSON object")
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise ExperimentError.at(
                "experiment", f"unknown field(s) {sorted(unknown)}; allowed: {', '.join(sorted(allowed))}")
        kwargs = dict(data)
        if isinstance(kwargs.get("family_rule"), dict):  # a partial rule keeps the other keys' defaults
            kwargs["family_rule"] = {**DEFAULT_FAMILY_RULE, **kwargs["family_rule"]}
        try:
            if "model" in kwargs:
                kwargs["model"] = ModelSpec.from_dict(kwargs["model"])
            if "conditions" in kwargs:
                conds = kwargs["conditions"]
                if not isinstance(conds, list):
                    raise ExperimentError.at("conditions", "must be a list of swap schedules")
                kwargs["conditions"] = [_condition(c, i) for i, c in enumerate(conds)]
        except ModelError as exc:
            raise exc.rebrand(ExperimentError) from None
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
            raise ExperimentError.at("experiment", f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except ValueError:  # e.g. an integer of thousands of digits (Python's int-string limit)
            raise ExperimentError.at("experiment", "holds a number too long to be a spec value") from None
        except RecursionError:
            raise ExperimentError.at("experiment", "nested too deeply to be a spec") from None
        return cls.from_dict(data)


def _condition(value: Any, i: int) -> SwapSchedule:
    """A condition is a schedule object or the name of a schedule preset."""
    try:
        if isinstance(value, str):
            if value not in SCHEDULE_PRESETS:
                raise ExperimentError.at(
                    f"conditions[{i}]", f"unknown preset {value!r}; allowed: {', '.join(SCHEDULE_PRESETS)}")
            return SCHEDULE_PRESETS[value]
        return SwapSchedule.from_dict(value)
    except ScheduleError as exc:
        raise exc.rebrand(ExperimentError, f"conditions[{i}]") from None


def experiment_probe(spec: ExperimentSpec, dataset: Dataset) -> np.ndarray:
    """Indices of the experiment's fixed probe set in ``dataset``'s test split.

    Every run of an experiment captures its representations of these images,
    so the runs can be compared.
    """
    return probe_indices(dataset.y_test, spec.probe_size, seed=0)


def preset_names() -> list[str]:
    """Names of the experiment presets shipped in ``akp/presets``."""
    folder = resources.files(PRESETS_PACKAGE)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _preset_object(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise ExperimentError.at("preset", f"unknown {name!r}; allowed: {', '.join(preset_names())}")
    text = resources.files(PRESETS_PACKAGE).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def preset_needs_dataset(name: str) -> str | None:
    """What data the preset ``name`` needs from the user, or None when it brings its own.

    A preset on real data (``pcam``) names no path: a path in a preset would be
    read against whatever folder the user starts from.

    Raises
    ------
    ExperimentError
        If there is no such preset.
    """
    obj = _preset_object(name)
    return obj.get("needs_dataset") if obj.get("dataset") is None else None


def load_preset(name: str, *, dataset: str | None = None) -> ExperimentSpec:
    """Load the experiment preset ``akp/presets/NAME.json``.

    Parameters
    ----------
    name : str
        One of :func:`preset_names`.
    dataset : str, optional
        The dataset to use instead of the preset's (a folder, an ``.npz`` file
        or a dataset id). Required by presets on real data, see
        :func:`preset_needs_dataset`.

    Raises
    ------
    ExperimentError
        If there is no such preset, it is invalid, or it needs a dataset and
        none was given (``field="dataset"``).
    """
    obj = _preset_object(name)
    needs = obj.pop("needs_dataset", None)
    if dataset is not None:
        if obj.get("dataset") == SYNTHETIC and dataset != SYNTHETIC:
            # The generator's options (n_train, difficulty...) do not apply to real data; the image size does.
            obj["dataset_options"] = {k: v for k, v in (obj.get("dataset_options") or {}).items()
                                      if k not in SYNTHETIC_DEFAULTS or k == "size"}
        obj["dataset"] = dataset
    elif obj.get("dataset") is None:
        raise ExperimentError.at("dataset", f"the {name} preset brings no data: give {needs or 'a dataset'} "
                                            f"(on the command line: --dataset PATH)")
    return ExperimentSpec.from_dict(obj)


def load_spec(preset_or_file: str, *, dataset: str | None = None) -> ExperimentSpec:
    """Load a preset by name, or a spec from a JSON file path.

    Parameters
    ----------
    preset_or_file : str
        A preset name or the path of a spec JSON file.
    dataset : str, optional
        Passed to :func:`load_preset` (a spec file keeps its own dataset).

    Raises
    ------
    ExperimentError
    """
    path = Path(preset_or_file)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ExperimentError.at("experiment file", f"{preset_or_file} does not exist")
        return ExperimentSpec.from_json(path.read_text())
    return load_preset(preset_or_file, dataset=dataset)
