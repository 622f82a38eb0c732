"""Widget options from :mod:`akp.constraints`: a widget's label and bounds are the validator's.

``st.number_input(**number_kwargs(SPEC["epochs"], step=1, key=...))`` draws a
field that cannot hold a value the validator would reject for being out of
range, under the label the validator's messages use.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from akp.constraints import Constraint


def number_kwargs(constraint: Constraint, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of ``st.number_input`` (or ``st.slider``) for a numeric field.

    Parameters
    ----------
    constraint : Constraint
        The field's entry in a constraints table (``kind`` int or float).
    **extra
        Other widget options (``step``, ``format``, ``key``, ``help``...); a
        ``help`` here is used only when the constraint has none.

    Returns
    -------
    dict
        ``label``, ``min_value`` and ``max_value`` (where the constraint has them,
        of the field's type, so Streamlit never mixes ints and floats), ``help``,
        and ``extra``. An open lower bound (``low_open``) is passed as the closed
        one: the widget stops there, and the validator rejects the bound itself
        with its message under the field.

    Raises
    ------
    TypeError
        If the constraint is not numeric.
    """
    if constraint.kind not in (int, float):
        raise TypeError(f"{constraint.field}: not a numeric field ({constraint.kind.__name__})")
    cast = int if constraint.kind is int else float
    kwargs: dict[str, Any] = {"label": constraint.label, **extra}
    if constraint.low is not None:
        kwargs["min_value"] = cast(constraint.low)
    if constraint.high is not None:
        kwargs["max_value"] = cast(constraint.high)
    if constraint.help:
        kwargs["help"] = constraint.help
    return kwargs


def choice_kwargs(constraint: Constraint, candidates: Iterable[Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of ``st.selectbox`` for a field with allowed values (or bounds).

    Parameters
    ----------
    constraint : Constraint
        The field's entry in a constraints table.
    candidates : iterable, optional
        Values to offer when the constraint has bounds but no ``choices`` (e.g.
        the usual image sizes); only those within the bounds are offered.
    **extra
        Other widget options (``key``, ``help``, ``format_func``...).

    Returns
    -------
    dict
        ``label``, ``options``, ``help`` and ``extra``.

    Raises
    ------
    ValueError
        If the constraint has no choices and no candidates are given.
    """
    if constraint.choices is not None:
        options = list(constraint.choices)
    elif candidates is not None:
        options = [v for v in candidates if within(constraint, v)]
    else:
        raise ValueError(f"{constraint.field}: no choices to offer")
    kwargs: dict[str, Any] = {"label": constraint.label, "options": options, **extra}
    if constraint.help:
        kwargs["help"] = constraint.help
    return kwargs


def text_kwargs(constraint: Constraint, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of ``st.text_input`` for a text field: ``label``, ``max_chars``, ``help``, ``extra``."""
    kwargs: dict[str, Any] = {"label": constraint.label, **extra}
    if constraint.max_chars is not None:
        kwargs["max_chars"] = constraint.max_chars
    if constraint.help:
        kwargs["help"] = constraint.help
    return kwargs


def within(constraint: Constraint, value: Any) -> bool:
    """Whether ``value`` passes the constraint's checks (type, bounds, choices)."""
    return constraint.problem(value) is None
