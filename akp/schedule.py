"""Swap schedules: when a run's activation and loss functions are hot-swapped.

A :class:`SwapSchedule` holds the starting activation and loss and an ordered
list of :class:`SwapEvent`. An event at epoch ``e`` (0-based) applies at the
start of that epoch, so epoch ``e`` itself is trained with the new functions.

Presets are routes of two kinds, so that an experiment's unhappy family is not
one failure mechanism and no final activation marks a family by itself. The
last column is measured on the default synthetic cells at the teaching budget
(test accuracy of 2 seeds, ``bench/routes.py``; the steady route reaches 0.90):

================  ========================  ===============================================  ============
preset            ends on                   meant as                                          measured
================  ========================  ===============================================  ============
steady            relu, cross entropy       working: the baseline                             0.88, 0.92
single-swap       tanh                      working: a smooth swap early (epoch 2)            0.79, 0.86
gelu-swap         gelu                      working: another smooth activation (epoch 3)      0.85, 0.91
silu-swap         silu                      working: a smooth activation late (epoch 3)       0.88, 0.90
smooth-swap       relu, label smoothing     working: a gentler loss (epoch 2)                 0.91, 0.92
softplus-focal    softplus, focal loss      activation and loss swapped together (epoch 2);  0.50, 0.51
                                            meant to work, measured to collapse
alternating       sigmoid                   failing by saturation: sigmoid installed five    0.50, 0.50
                                            times
linear            identity                  failing by capacity: only the max-pooling is     0.83, 0.85
                                            left nonlinear from epoch 1 (it learns more
                                            than meant)
frozen-loss       relu, frozen loss         failing by a dead signal from epoch 1            0.50, 0.50
frozen-late       relu, frozen loss         the same from epoch 2, after some learning       0.50, 0.68
ramp-loss         relu, ramp loss           failing by vanishing gradient (from epoch 1):    0.50, 0.90
                                            only examples near the boundary are corrected
periodic          sine_hf                   failing by shape: sin(10 x) from epoch 2,        0.50, 0.50
                                            features that flip sign with small changes
late-flip         tanh, flipped loss        failing late: the last epoch trains towards the  0.41, 0.50
                                            wrong class, destroying what was learnt
================  ========================  ===============================================  ============

Which routes actually end happy is measured, not assumed: most failure routes
end at chance, i.e. collapsed (:mod:`akp.analysis.families`), not unhappy.
A zero-gradient loss still collapses the model under Adam: its momentum keeps
moving every weight the same way for a few dozen steps.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from akp.errors import AKPError
from akp.swaps import ACTIVATIONS, LOSSES


class ScheduleError(AKPError):
    """A swap schedule is invalid; the message names the field and what is allowed."""


def _allowed(registry: dict) -> str:
    return ", ".join(sorted(registry))


def _check_function(value: Any, registry: dict, field_name: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or value not in registry:
        raise ScheduleError.at(
            f"{field_name}: unknown function {value!r}; allowed", f"{_allowed(registry)}"
        )


@dataclass(frozen=True)
class SwapEvent:
    """At ``epoch`` the activation and/or the loss becomes another one.

    Parameters
    ----------
    epoch : int
        0-based epoch at whose start the swap applies.
    activation : str or None
        New activation, or None to keep the current one.
    loss : str or None
        New loss, or None to keep the current one.
    """

    epoch: int
    activation: str | None = None
    loss: str | None = None

    def validate(self, where: str = "event") -> None:
        """Raise :class:`ScheduleError` if the event is malformed."""
        if isinstance(self.epoch, bool) or not isinstance(self.epoch, int):
            raise ScheduleError.at(
                f"{where}.epoch", f"must be a non-negative integer, got {self.epoch!r}"
            )
        if self.epoch < 0:
            raise ScheduleError.at(f"{where}.epoch", f"must be >= 0, got {self.epoch}")
        if self.activation is None and self.loss is None:
            raise ScheduleError.at(
                where, "an event must change the activation or the loss (both are empty)"
            )
        _check_function(self.activation, ACTIVATIONS, f"{where}.activation", optional=True)
        _check_function(self.loss, LOSSES, f"{where}.loss", optional=True)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"epoch": self.epoch, "activation": self.activation, "loss": self.loss}


@dataclass(frozen=True)
class SwapSchedule:
    """An ordered list of swap events plus the starting activation and loss.

    Parameters
    ----------
    name : str
        Name of the condition this schedule defines (non-empty).
    activation : str
        Starting activation, a key of ``akp.swaps.ACTIVATIONS``.
    loss : str
        Starting loss, a key of ``akp.swaps.LOSSES``.
    events : tuple of SwapEvent
        Events in strictly increasing epoch order.

    Raises
    ------
    ScheduleError
        On construction, if any field is invalid.
    """

    name: str
    activation: str = "relu"
    loss: str = "cross_entropy"
    events: tuple[SwapEvent, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # Accept lists of events or dicts for convenience; store an immutable tuple.
        events = tuple(
            e if isinstance(e, SwapEvent) else _event_from_dict(e, f"events[{i}]")
            for i, e in enumerate(self.events)
        )
        object.__setattr__(self, "events", events)
        self.validate()

    def validate(self, epochs: int | None = None) -> None:
        """Check the schedule; with ``epochs``, also that events fit the training budget.

        Raises
        ------
        ScheduleError
            If a field is invalid.
        """
        if not isinstance(self.name, str) or not self.name.strip():
            raise ScheduleError.at("name", "must be a non-empty string")
        _check_function(self.activation, ACTIVATIONS, "activation", optional=False)
        _check_function(self.loss, LOSSES, "loss", optional=False)
        seen: set[int] = set()
        previous = -1
        for i, event in enumerate(self.events):
            event.validate(f"events[{i}]")
            if event.epoch in seen:
                raise ScheduleError.at(
                    f"events[{i}].epoch", f"duplicate epoch {event.epoch}; "
                    "merge both changes into one event"
                )
            if event.epoch < previous:
                raise ScheduleError.at(
                    f"events[{i}].epoch", f"events must be in increasing epoch order "
                    f"({event.epoch} after {previous})"
                )
            seen.add(event.epoch)
            previous = event.epoch
            if epochs is not None and event.epoch >= epochs:
                raise ScheduleError.at(
                    f"events[{i}].epoch", f"{event.epoch} is past the training budget; "
                    f"allowed: 0 to {epochs - 1} for {epochs} epochs"
                )

    def active_at(self, epoch: int) -> tuple[str, str]:
        """Return the (activation, loss) in force during ``epoch``."""
        activation, loss = self.activation, self.loss
        for event in self.events:
            if event.epoch > epoch:
                break
            activation = event.activation or activation
            loss = event.loss or loss
        return activation, loss

    def event_at(self, epoch: int) -> SwapEvent | None:
        """Return the event that applies at the start of ``epoch``, if any."""
        return next((e for e in self.events if e.epoch == epoch), None)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "activation": self.activation,
            "loss": self.loss,
            "events": [e.to_dict() for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: Any) -> "SwapSchedule":
        """Build a schedule from :meth:`to_dict` output.

        Raises
        ------
        ScheduleError
            If ``data`` is not a dict with valid fields.
        """
        if not isinstance(data, dict):
            raise ScheduleError.at("schedule", f"must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"name", "activation", "loss", "events"}
        if unknown:
            raise ScheduleError.at(
                "schedule", f"unknown field(s) {sorted(unknown)}; allowed: name, activation, loss, events"
            )
        events = data.get("events", [])
        if not isinstance(events, list):
            raise ScheduleError.at("events", "must be a list of {epoch, activation, loss} objects")
        return cls(
            name=data.get("name", ""),
            activation=data.get("activation", "relu"),
            loss=data.get("loss", "cross_entropy"),
            events=tuple(_event_from_dict(e, f"events[{i}]") for i, e in enumerate(events)),
        )

    def to_json(self) -> str:
        """Serialize to a JSON string."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "SwapSchedule":
        """Parse a schedule from JSON text.

        Raises
        ------
        ScheduleError
            If the text is not valid JSON or the schedule is invalid.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScheduleError.at("schedule", f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data)

    def renamed(self, name: str) -> "SwapSchedule":
        """Return a copy with another name."""
        return SwapSchedule(name, self.activation, self.loss, self.events)


def _event_from_dict(data: Any, where: str) -> SwapEvent:
    if not isinstance(data, dict):
        raise ScheduleError.at(where, "must be an object with epoch, activation, loss")
    unknown = set(data) - {"epoch", "activation", "loss"}
    if unknown:
        raise ScheduleError.at(where, f"unknown field(s) {sorted(unknown)}; allowed: epoch, activation, loss")
    if "epoch" not in data:
        raise ScheduleError.at(f"{where}.epoch", "missing; must be a non-negative integer")
    event = SwapEvent(int_or_raw(data["epoch"]), data.get("activation") or None, data.get("loss") or None)
    event.validate(where)
    return event


def int_or_raw(value: Any) -> Any:
    """Turn integral floats (e.g. 3.0 from a table editor) into ints; leave the rest for validation."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def random_stress(
    epochs: int = 8, *, n_events: int = 3, seed: int = 0, name: str = "random-stress"
) -> SwapSchedule:
    """A reproducible random schedule of activation and loss swaps.

    Parameters
    ----------
    epochs : int
        Training budget; events fall in epochs 1 .. epochs-1.
    n_events : int
        Number of swap events (capped at epochs - 1).
    seed : int
        Seed of the random choices: the same seed gives the same schedule.
    name : str
        Name of the schedule.

    Returns
    -------
    SwapSchedule
    """
    rng = random.Random(seed)
    n = max(0, min(n_events, epochs - 1))
    epochs_chosen = sorted(rng.sample(range(1, epochs), n)) if n else []
    acts = sorted(ACTIVATIONS)
    losses = sorted(LOSSES)
    events = []
    for epoch in epochs_chosen:
        activation = rng.choice(acts)
        loss = rng.choice(losses) if rng.random() < 0.5 else None
        events.append(SwapEvent(epoch, activation, loss))
    return SwapSchedule(name, "relu", "cross_entropy", tuple(events))


FIT_MODES = ("scale", "drop")


def _merge(events: list[SwapEvent], epoch: int) -> SwapEvent:
    """Events that land on one epoch as one: each function takes the value of the last event that sets it."""
    activation = next((e.activation for e in reversed(events) if e.activation), None)
    loss = next((e.loss for e in reversed(events) if e.loss), None)
    return SwapEvent(epoch, activation, loss)


def fit_to_budget(schedule: SwapSchedule, epochs: int, *, old_epochs: int | None = None,
                  mode: str = "scale") -> SwapSchedule:
    """Move a schedule's swap events into a training budget of ``epochs``.

    ``"scale"`` maps epoch ``e`` of the old budget ``B`` to ``round(e * epochs / B)``
    (halves up), with ``B = max(old_epochs, last event + 1)``, so every condition
    keeps its timing relative to the run. Events keep their order; they stay at
    distinct epochs when the budget has room for them (neighbours are pushed
    apart), and an event after epoch 0 stays after it when ``epochs >= 2``.
    When there are more events than epochs, the closest neighbours are merged
    into one event (the later one wins for each function; a merged change back
    to the functions already in force is dropped), so the functions in force at
    the end of training are those of the original schedule. ``"drop"`` removes
    the events at epoch ``epochs`` or later and keeps the others as they are.

    Parameters
    ----------
    schedule : SwapSchedule
    epochs : int
        The new training budget (>= 1).
    old_epochs : int, optional
        The budget the schedule was made for (default: ``epochs``). A schedule that
        fits ``epochs`` is returned unchanged when ``old_epochs`` is ``epochs``.
    mode : {"scale", "drop"}

    Returns
    -------
    SwapSchedule
        Same name and starting functions; every event at an epoch below ``epochs``.

    Raises
    ------
    ScheduleError
        If ``epochs`` or ``old_epochs`` is not a positive integer, or ``mode`` is unknown.
    """
    for name, value in (("epochs", epochs), ("old_epochs", old_epochs)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ScheduleError.at(name, f"must be a positive integer, got {value!r}")
    if mode not in FIT_MODES:
        raise ScheduleError.at("mode", f"unknown {mode!r}; allowed: {', '.join(FIT_MODES)}")
    events = list(schedule.events)
    if mode == "drop":
        kept = tuple(e for e in events if e.epoch < epochs)
        return SwapSchedule(schedule.name, schedule.activation, schedule.loss, kept)
    if not events:
        return schedule
    budget = max(old_epochs if old_epochs is not None else epochs, events[-1].epoch + 1)
    # Targets never decrease (the epochs increase and the map is monotone); floor(x + 1/2) rounds halves up.
    low = [1 if e.epoch >= 1 and epochs >= 2 else 0 for e in events]
    targets = [min(epochs - 1, max(lo, math.floor(e.epoch * epochs / budget + 0.5)))
               for e, lo in zip(events, low, strict=True)]
    room = epochs - low[0]
    merged = [False] * len(events)
    while len(events) > room:
        # Too few epochs for distinct events: merge the two closest neighbours (the earliest such pair) at
        # the later one's epoch, the epoch from which their combined change holds.
        i = min(range(len(events) - 1), key=lambda j: (events[j + 1].epoch - events[j].epoch, j))
        events[i:i + 2] = [_merge(events[i:i + 2], events[i + 1].epoch)]
        targets[i:i + 2] = [targets[i + 1]]
        merged[i:i + 2] = [True]
    # Push neighbours apart forwards, then back below the budget (there is room for all now).
    for i in range(1, len(targets)):
        targets[i] = max(targets[i], targets[i - 1] + 1)
    for i in reversed(range(len(targets))):
        targets[i] = min(targets[i], epochs - 1 if i == len(targets) - 1 else targets[i + 1] - 1)
    moved: list[SwapEvent] = []
    activation, loss = schedule.activation, schedule.loss
    for event, target, was_merged in zip(events, targets, merged, strict=True):
        if was_merged:  # a merged change back to what is in force (sigmoid, then relu again) is no change
            event = SwapEvent(event.epoch, None if event.activation == activation else event.activation,
                              None if event.loss == loss else event.loss)
            if event.activation is None and event.loss is None:
                continue
        moved.append(SwapEvent(target, event.activation, event.loss))
        activation, loss = event.activation or activation, event.loss or loss
    return SwapSchedule(schedule.name, schedule.activation, schedule.loss, tuple(moved))


def past_budget(schedule: SwapSchedule, epochs: int) -> list[SwapEvent]:
    """The events of ``schedule`` at epoch ``epochs`` or later (those a run of ``epochs`` epochs never reaches)."""
    return [e for e in schedule.events if e.epoch >= epochs]


PRESETS: dict[str, SwapSchedule] = {
    "steady": SwapSchedule("steady", "relu", "cross_entropy"),
    "single-swap": SwapSchedule("single-swap", "relu", "cross_entropy", (SwapEvent(2, activation="tanh"),)),
    "alternating": SwapSchedule(
        "alternating",
        "relu",
        "cross_entropy",
        (SwapEvent(1, activation="sigmoid"), SwapEvent(2, activation="relu"),
         SwapEvent(3, activation="sigmoid"), SwapEvent(4, activation="relu"),
         SwapEvent(5, activation="sigmoid")),
    ),
    "loss-shock": SwapSchedule(
        "loss-shock", "relu", "cross_entropy", (SwapEvent(2, loss="mse"), SwapEvent(4, loss="cross_entropy"))
    ),
    "random-stress": random_stress(8, n_events=3, seed=0),
    "gelu-swap": SwapSchedule("gelu-swap", "relu", "cross_entropy", (SwapEvent(3, activation="gelu"),)),
    "silu-swap": SwapSchedule("silu-swap", "relu", "cross_entropy", (SwapEvent(3, activation="silu"),)),
    "smooth-swap": SwapSchedule("smooth-swap", "relu", "cross_entropy", (SwapEvent(2, loss="label_smoothing"),)),
    "softplus-focal": SwapSchedule("softplus-focal", "relu", "cross_entropy",
                                   (SwapEvent(2, activation="softplus", loss="focal"),)),
    "linear": SwapSchedule("linear", "relu", "cross_entropy", (SwapEvent(1, activation="identity"),)),
    "frozen-loss": SwapSchedule("frozen-loss", "relu", "cross_entropy", (SwapEvent(1, loss="frozen"),)),
    "frozen-late": SwapSchedule("frozen-late", "relu", "cross_entropy", (SwapEvent(2, loss="frozen"),)),
    "ramp-loss": SwapSchedule("ramp-loss", "relu", "cross_entropy", (SwapEvent(1, loss="ramp"),)),
    "periodic": SwapSchedule("periodic", "relu", "cross_entropy", (SwapEvent(2, activation="sine_hf"),)),
    "late-flip": SwapSchedule("late-flip", "relu", "cross_entropy",
                              (SwapEvent(2, activation="tanh"), SwapEvent(7, loss="flipped"))),
}
#: The working and failing routes of the table above (``random-stress`` and ``loss-shock`` are neither).
WORKING_ROUTES = ("steady", "single-swap", "gelu-swap", "silu-swap", "smooth-swap")
FAILURE_ROUTES = ("alternating", "linear", "frozen-loss", "frozen-late", "ramp-loss", "periodic", "late-flip",
                  "softplus-focal")
