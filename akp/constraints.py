"""One table of every spec field's type, bounds, allowed values and label.

``ExperimentSpec.validate``, ``ModelSpec.validate``, the dataset loaders'
option schemas and the Design page's widgets all read this table, so a widget's
bounds and the validator can never disagree. ``label`` is the text of the
field's widget in the app, used in messages shown there.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from akp.errors import AKPError

MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class Constraint:
    """What one field may hold.

    Parameters
    ----------
    field : str
        Dotted path in the spec (``"epochs"``, ``"model.width"``, ``"dataset_options.size"``).
    label : str
        The widget label in the app.
    kind : {int, float, str}
        The value's type; ints are accepted where floats are.
    low, high : float, optional
        Inclusive bounds (``low_open`` makes the lower one exclusive).
    choices : tuple, optional
        The allowed values (for ``str`` fields, or a discrete set of numbers).
    max_chars : int, optional
        Longest allowed string.
    help : str
        One line shown beside the widget.
    """

    field: str
    label: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple | None = None
    max_chars: int | None = None
    help: str = ""

    def allowed(self) -> str:
        """Describe the allowed values in words."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        what = {int: "an integer", float: "a number", str: "text"}[self.kind]
        if self.kind is str:
            return f"non-empty text of at most {self.max_chars} characters" if self.max_chars else "non-empty text"
        if self.low is not None and self.high is not None:
            if self.low_open:
                return f"{what} in ({_num(self.low)}, {_num(self.high)}]"
            return f"{what} from {_num(self.low)} to {_num(self.high)}"
        if self.low is not None:
            return f"{what} {'>' if self.low_open else '>='} {_num(self.low)}"
        return what

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (without the field name), or None if it is allowed.

        The one rule behind :meth:`check`; form validators that report every
        problem at once call it directly and put the widget's label in front.

        Parameters
        ----------
        value : object
            The value to check.

        Returns
        -------
        str or None
            E.g. ``"must be an integer from 1 to 200, got 0"``.
        """
        if not self._type_ok(value):
            return f"must be {self.allowed()}, got {_show(value)}"
        if self.kind is str:
            if not value.strip():
                return f"must be {self.allowed()}"
            if self.max_chars is not None and len(value) > self.max_chars:
                return f"at most {self.max_chars} characters, got {len(value)}"
        if self.choices is not None and value not in self.choices:
            return f"unknown {_show(value)}; allowed: {', '.join(str(c) for c in self.choices)}"
        if self.kind in (int, float):
            if not math.isfinite(value):
                return f"must be {self.allowed()}, got {_show(value)}"
            too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
            too_high = self.high is not None and value > self.high
            if too_low or too_high:
                return f"must be {self.allowed()}, got {_show(value)}"
        return None

    def check(self, value: Any, error: type[AKPError] = AKPError, *, field: str | None = None) -> Any:
        """Return ``value`` if allowed, else raise ``error`` naming the field.

        Parameters
        ----------
        value : object
            The value to check.
        error : type of AKPError
            The error class raised.
        field : str, optional
            Field path to report (default :attr:`field`).

        Raises
        ------
        AKPError
            Of class ``error``, with ``field`` set; the message is :meth:`problem`'s.
        """
        problem = self.problem(value)
        if problem is not None:
            raise error.at(field or self.field, problem)
        return value

    def _type_ok(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int:
            return isinstance(value, int)
        if self.kind is float:
            return isinstance(value, (int, float))
        return isinstance(value, self.kind)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value (huge ints and long strings are cut)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return "an integer too large"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_fields(values: Mapping[str, Any], table: Mapping[str, Constraint], error: type[AKPError],
                 *, prefix: str = "") -> None:
    """Reject keys of ``values`` that ``table`` does not know, and check the others.

    Raises
    ------
    AKPError
        Of class ``error``, naming the first bad field.
    """
    for key, value in values.items():
        if key not in table:
            raise error.at(f"{prefix}{key}", f"unknown option; allowed: {', '.join(table)}")
        table[key].check(value, error, field=f"{prefix}{key}")


OPTIMIZERS = ("sgd", "adam", "adamw")
CONV_REDUCTIONS = ("mean", "grid2")
MAX_EPOCHS = 200
MAX_SEEDS = 64
MAX_SEED = 2**31 - 1
FAMILY_RULES = ("accuracy", "gap")
SEED_MODES = ("independent", "paired")

SPEC: dict[str, Constraint] = {c.field: c for c in (
    Constraint("name", "Experiment name", str, max_chars=MAX_NAME_CHARS),
    Constraint("epochs", "Epochs", int, 1, MAX_EPOCHS),
    Constraint("batch_size", "Batch size", int, 1, 4096),
    Constraint("optimizer", "Optimizer", str, choices=OPTIMIZERS),
    Constraint("lr", "Learning rate", float, 0.0, 10.0, low_open=True),
    Constraint("probe_size", "Probe images", int, 4, 10_000,
               help="Held-out images whose representations every run captures."),
    Constraint("conv_reduce", "Conv reduction", str, choices=CONV_REDUCTIONS),
    Constraint("seed", "Seeds", int, 0, MAX_SEED),
    Constraint("family_rule.rule", "Family rule", str, choices=FAMILY_RULES,
               help="accuracy: happy if test accuracy >= threshold; gap: also a small train-test gap."),
    Constraint("family_rule.threshold", "Happy threshold", float, 0.0, 1.0, low_open=True,
               help="Fixed before training; empty: the largest gap in the data (exploratory)."),
    Constraint("family_rule.max_gap", "Largest generalization gap", float, 0.0, 1.0, low_open=True),
    Constraint("primary_layer", "Primary layer", str, max_chars=40,
               help="The layer whose verdict is the headline; the others are exploratory."),
    Constraint("seed_mode", "Seed mode", str, choices=SEED_MODES,
               help="independent: each condition's runs get their own initial weights and data order."),
    Constraint("model.width", "Width (channels of conv1)", int, 1, 256),
    Constraint("model.depth", "Depth (conv layers)", int, 1, 6),
    Constraint("model.embedding_dim", "Embedding size", int, 2, 1024),
)}

MODEL: dict[str, Constraint] = {k.split(".", 1)[1]: c for k, c in SPEC.items() if k.startswith("model.")}


def label_of(field: str | None) -> str:
    """The app's label for a field path (falls back to the path itself)."""
    if not field:
        return ""
    if field in SPEC:
        return SPEC[field].label
    return field
