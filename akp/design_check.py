"""Every problem of the Design form at once, each placed under its widget.

:meth:`akp.experiment.ExperimentSpec.validate` and :func:`akp.design.build_spec`
stop at the first bad field: right for the library and the CLI, wrong for a form,
where a user who fixes one message should not discover the next only then.
:func:`check_form` goes on past every problem and returns them all as
:class:`FormProblem` (the form field, the widget's label, the schedule-table row
as displayed, the message). The bounds are those of :mod:`akp.constraints`, which
the widgets take theirs from, so a widget and its message never disagree.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from akp.constraints import SPEC
from akp.datasets import SYNTHETIC
from akp.design import (
    DesignError,
    blank_cell,
    build_spec,
    constraint_of,
    form_key,
    number_or_none,
    parse_seeds,
    schedule_from_rows,
)
from akp.errors import AKPError
from akp.experiment import ExperimentSpec
from akp.models import ModelSpec
from akp.schedule import ScheduleError, SwapSchedule, int_or_raw
from akp.swaps import ACTIVATIONS, LOSSES

__all__ = ["CONDITION_NAME_LABEL", "FORM_LABELS", "FormCheck", "FormProblem", "bare_message", "check_form",
           "check_rows", "events_label", "form_label"]

_CONDITION_BOX = re.compile(r"conditions\[(\d+)\]")

#: Labels of the form's widgets that no constraint describes (the others come from :func:`akp.design.constraint_of`).
FORM_LABELS: dict[str, str] = {"dataset": "Dataset", "conditions": "Conditions", "form": "Design"}
CONDITION_NAME_LABEL = "Condition name"
START_LABELS = {"activation": "Start activation", "loss": "Start loss"}
EVENT_COLUMNS = {"activation": "new activation", "loss": "new loss"}  # the schedule table's column headers
_SYNTHETIC_KEYS = ("n_train", "n_test", "size", "data_seed", "difficulty")
_MODEL_AND_TRAINING_KEYS = ("width", "depth", "embedding_dim", "probe_size", "epochs", "batch_size", "optimizer", "lr")


@dataclass(frozen=True)
class FormProblem:
    """One problem of the Design form, placed where the user sees it.

    Parameters
    ----------
    field : str
        The form field whose widget shows it: a key of :data:`akp.design.SPEC_FIELDS`
        (``"probe_size"``, ``"seeds"``), ``"conditions[i]"`` (the i-th condition
        box, 0-based in the page's order), ``"conditions"`` or ``"form"``.
    label : str
        The widget's label as the page shows it (``"Probe images"``,
        ``"late-flip · swap events"``).
    row : int or None
        For a schedule table, the 1-based row as displayed (the editor's order,
        not sorted by epoch); None otherwise.
    message : str
        What is wrong and what is allowed, without the label.
    """

    field: str
    label: str
    row: int | None
    message: str

    @property
    def text(self) -> str:
        """``"Probe images: at most ..."``, ``"late-flip · swap events, row 2: epoch 7 is past ..."``."""
        where = self.label if self.row is None else f"{self.label}, row {self.row}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class FormCheck:
    """The outcome of :func:`check_form`.

    Parameters
    ----------
    problems : tuple of FormProblem
        Every problem, in the page's top-to-bottom order; empty when the form is valid.
    schedules : tuple of (SwapSchedule or None)
        Per condition, its schedule when its table reads as one (events may still
        lie past the budget: :func:`akp.schedule.fit_to_budget` can move them),
        else None.
    spec : ExperimentSpec or None
        The validated spec, only when there are no problems.
    """

    problems: tuple[FormProblem, ...]
    schedules: tuple[SwapSchedule | None, ...]
    spec: ExperimentSpec | None


def form_label(key: str) -> str:
    """The label of the widget of form field ``key`` (see :class:`FormProblem`)."""
    return FORM_LABELS.get(key) or constraint_of(key).label


def events_label(name: str) -> str:
    """The label of a condition's schedule table in messages: ``"late-flip · swap events"``."""
    return f"{name} · swap events"


def bare_message(exc: AKPError) -> str:
    """An error's message without its leading ``"field: "`` (the page puts the widget label there)."""
    text = str(exc)
    prefix = f"{exc.field}: " if exc.field else ""
    return text[len(prefix):] if prefix and text.startswith(prefix) else text


def _epoch_of(value: Any) -> Any:
    epoch = int_or_raw(value)
    if isinstance(epoch, str) and epoch.strip().isdigit():
        return int(epoch)
    return epoch


def check_rows(rows: Sequence[Mapping[str, Any]], epochs: int | None) -> tuple[list[tuple[int, str]], bool]:
    """Every problem of a schedule table's rows, each with its row number as displayed.

    Parameters
    ----------
    rows : sequence of mapping
        The editor's rows in their displayed order, each with ``epoch``,
        ``activation``, ``loss`` (blank = keep). Rows whose cells are all blank
        (the editor's empty new row) are skipped but keep their number.
    epochs : int or None
        The training budget; None when it is invalid itself (no budget check).

    Returns
    -------
    problems : list of (int, str)
        (1-based row, message), in row order.
    readable : bool
        Whether the rows make a schedule (all problems, if any, are events past the budget).
    """
    problems: list[tuple[int, str]] = []
    readable = True
    first_row: dict[int, int] = {}  # epoch -> the displayed row that has it first
    for n, row in enumerate(rows, start=1):
        epoch, activation, loss = row.get("epoch"), row.get("activation"), row.get("loss")
        if blank_cell(epoch) and blank_cell(activation) and blank_cell(loss):
            continue
        if blank_cell(epoch):
            problems.append((n, "epoch is missing; give the 0-based epoch at which the swap applies"))
            readable = False
        else:
            epoch = _epoch_of(epoch)
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                problems.append((n, f"epoch must be a whole number >= 0, got {epoch!r}"))
                readable = False
            else:
                if epoch in first_row:
                    problems.append((n, f"epoch {epoch} is also in row {first_row[epoch]}; merge both changes "
                                        "into one row"))
                    readable = False
                first_row.setdefault(epoch, n)
                if epochs is not None and epoch >= epochs:
                    problems.append((n, f"epoch {epoch} is past the training budget; allowed: 0 to {epochs - 1} "
                                        f"for {epochs} epochs"))
        if blank_cell(activation) and blank_cell(loss):
            problems.append((n, "changes nothing; choose a new activation or a new loss"))
            readable = False
        for kind, value, registry in (("activation", activation, ACTIVATIONS), ("loss", loss, LOSSES)):
            if not blank_cell(value) and str(value) not in registry:
                problems.append((n, f"{EVENT_COLUMNS[kind]}: unknown {value!r}; allowed: "
                                    f"{', '.join(sorted(registry))}"))
                readable = False
    return problems, readable


def check_form(values: Mapping[str, Any], conditions: Sequence[Mapping[str, Any]]) -> FormCheck:
    """Check every field of the Design form and return all problems at once, each under its widget.

    Unlike :meth:`ExperimentSpec.validate` (the library's check, which stops at
    the first bad field), this goes on past each problem, so a user sees at once
    that the seeds cannot be read, the name is empty and a condition swaps past
    the budget. Bounds come from :mod:`akp.constraints`, the same table the
    widgets take theirs from; messages carry the widgets' labels.

    Parameters
    ----------
    values : mapping
        Form values, keys of :data:`akp.design.FORM_KEYS` (``seeds`` as typed, ``dataset``
        ``"synthetic-cells"``, a path or an id; empty for "my data" with nothing
        chosen).
    conditions : sequence of mapping
        The condition boxes in page order, each with ``name``, ``activation``,
        ``loss`` (starting functions) and ``rows`` (the schedule table's rows as
        displayed, see :func:`check_rows`).

    Returns
    -------
    FormCheck
        Every problem (none: the spec is built and validated by :func:`build_spec`).
    """
    problems: list[FormProblem] = []

    def add(key: str, message: str, *, label: str | None = None, row: int | None = None) -> None:
        problems.append(FormProblem(key, label or form_label(key), row, message))

    def checked(key: str, value: Any) -> Any:
        """``value`` if its constraint allows it, else None (and the problem noted)."""
        problem = constraint_of(key).problem(value)
        if problem is not None:
            add(key, problem)
            return None
        return value

    name = str(values.get("name") or "").strip()
    checked("name", name)
    dataset = str(values.get("dataset") or "").strip()
    synthetic = dataset == SYNTHETIC
    if not dataset:
        add("dataset", "enter an image folder, an .npz file or a dataset id (or choose synthetic cells)")
    ok = {key: checked(key, int_or_raw(values.get(key))) for key in (_SYNTHETIC_KEYS if synthetic else ())}
    for key in _MODEL_AND_TRAINING_KEYS:
        ok[key] = checked(key, int_or_raw(values.get(key)))
        if key == "probe_size" and synthetic and None not in (ok["probe_size"], ok["n_test"]) \
                and ok["probe_size"] > ok["n_test"]:
            add("probe_size", f"at most the number of {form_label('n_test')} ({ok['n_test']}), "
                              f"got {ok['probe_size']}")

    epochs = ok["epochs"]
    schedules: list[SwapSchedule | None] = []
    if not conditions:
        add("conditions", "add at least one condition (a swap schedule)")
    first_named: dict[str, int] = {}
    for i, cond in enumerate(conditions):
        key = f"conditions[{i}]"
        cname = str(cond.get("name") or "").strip()
        shown = cname or f"condition {i + 1}"
        if not cname:
            add(key, "must be non-empty text", label=CONDITION_NAME_LABEL)
        elif cname in first_named:
            add(key, f"{cname!r} is also the name of condition {first_named[cname] + 1}; names must be unique",
                label=CONDITION_NAME_LABEL)
        first_named.setdefault(cname, i)
        start = {"activation": cond.get("activation"), "loss": cond.get("loss")}
        for kind, registry in (("activation", ACTIVATIONS), ("loss", LOSSES)):
            if start[kind] not in registry:
                add(key, f"unknown {start[kind]!r}; allowed: {', '.join(sorted(registry))}", label=START_LABELS[kind])
        row_problems, readable = check_rows(cond.get("rows") or [], epochs)
        for row, message in row_problems:
            add(key, message, label=events_label(shown), row=row)
        schedule = None
        if readable and all(start[k] in r for k, r in (("activation", ACTIVATIONS), ("loss", LOSSES))):
            try:
                schedule = schedule_from_rows(shown, str(start["activation"]), str(start["loss"]),
                                              cond.get("rows") or [])
            except ScheduleError as exc:  # a rule check_rows does not know: still shown, under its table
                add(key, bare_message(exc), label=events_label(shown))
        schedules.append(schedule)

    checked("family_rule", values.get("family_rule"))
    for key in ("threshold", "max_gap"):
        number = number_or_none(values.get(key))
        if number is not None:
            checked(key, number)
    layer = checked("primary_layer", values.get("primary_layer"))
    if layer is not None and ok["depth"] is not None:
        layers = ModelSpec(depth=ok["depth"]).layer_names()
        if layer not in layers:
            add("primary_layer", f"{layer!r} is not captured; allowed: {', '.join(layers)}")
    checked("seed_mode", values.get("seed_mode"))
    typed = values.get("seeds")
    try:
        seeds = parse_seeds(typed if isinstance(typed, (str, int, list, tuple)) else "")
    except DesignError as exc:
        add("seeds", bare_message(exc))
    else:
        bad = [(s, p) for s in seeds if (p := SPEC["seed"].problem(s)) is not None]
        if bad:
            add("seeds", f"seed {bad[0][0]!r}: {bad[0][1]}")

    spec = None
    if not problems:
        try:  # the library's own check, for any rule the form does not know
            spec = build_spec({**values, "dataset": dataset}, [s for s in schedules if s is not None])
        except DesignError as exc:
            key = form_key(exc.field) or "form"
            box = _CONDITION_BOX.fullmatch(key)
            label = events_label(str(conditions[int(box.group(1))].get("name"))) if box else form_label(key)
            add(key, bare_message(exc), label=label)
    return FormCheck(tuple(problems), tuple(schedules), spec)
