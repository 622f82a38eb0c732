"""Which fields of several experiment specs differ: a side-by-side table with only those rows.

Specs are compared as the dicts of :meth:`akp.experiment.ExperimentSpec.to_dict`
(so defaults are filled in), flattened to dotted paths (``model.width``,
``dataset_options.n_train``). Conditions are matched by name, not by position
(``conditions[steady]``), and each is shown as one schedule line; lists of
plain values (seeds, layers) are one field each.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["MISSING", "flatten_spec", "format_value", "schedule_text", "spec_diff"]

MISSING = "—"  # a field one spec has and another lacks
_ABSENT = object()


def schedule_text(condition: Mapping[str, Any]) -> str:
    """One line for a swap schedule: ``"relu, cross_entropy; e1 → sigmoid, mse"``.

    Parameters
    ----------
    condition : mapping
        A schedule's dict (activation, loss, events).

    Returns
    -------
    str
    """
    parts = [f"{condition.get('activation')}, {condition.get('loss')}"]
    for ev in condition.get("events") or []:
        new = ", ".join(str(ev[k]) for k in ("activation", "loss") if ev.get(k)) or "no change"
        parts.append(f"e{ev.get('epoch')} → {new}")
    return "; ".join(parts)


def flatten_spec(spec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A spec dict flattened to dotted paths, conditions keyed by name.

    Parameters
    ----------
    spec : mapping
        As from ``ExperimentSpec.to_dict()`` (nested dicts are flattened).
    prefix : str
        Prepended to every path (used for recursion).

    Returns
    -------
    dict
        path -> value (scalars, lists of scalars, or a schedule line).
    """
    out: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if key == "conditions" and not prefix and isinstance(value, list):
            for cond in value:
                if isinstance(cond, Mapping):
                    out[f"conditions[{cond.get('name')}]"] = schedule_text(cond)
        elif isinstance(value, Mapping):
            out.update(flatten_spec(value, prefix=f"{path}."))
        else:
            out[path] = value
    return out


def format_value(value: Any) -> str:
    """A spec value as display text (lists and dicts as compact JSON, None as ``null``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def spec_diff(specs: Mapping[str, Mapping[str, Any]], *, include: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The fields whose values differ between specs, one row per field, one column per spec.

    Parameters
    ----------
    specs : mapping
        Column label (e.g. an experiment's name or id) -> spec dict, in column order.
    include : tuple of str
        Paths always shown even when equal (e.g. ``("epochs",)`` for context).

    Returns
    -------
    list of dict
        ``{"field": path, <label>: text, ...}`` in the specs' field order; a
        field absent from a spec reads :data:`MISSING`. Empty when all specs
        agree (or fewer than two are given and ``include`` is empty).
    """
    flat = {label: flatten_spec(spec) for label, spec in specs.items()}
    paths = list(dict.fromkeys(p for f in flat.values() for p in f))
    rows = []
    for path in paths:
        values = [f.get(path, _ABSENT) for f in flat.values()]
        # Python equality: 1 == 1.0 and equal lists count as the same value.
        differs = any(v != values[0] for v in values[1:])
        if differs or path in include:
            texts = {label: (format_value(f[path]) if path in f else MISSING) for label, f in flat.items()}
            rows.append({"field": path, **texts})
    return rows
