"""The base of every input error akp raises: the message names the field, ``field`` holds it.

Pages and the CLI read ``exc.field`` to show a message under the right widget;
nothing parses message text.
"""
from __future__ import annotations


class AKPError(ValueError):
    """Bad input or a missing object; ``field`` names the field at fault (or None).

    Parameters
    ----------
    message : str
        The whole message, for people.
    field : str, optional
        Dotted path of the bad field, e.g. ``"dataset_options.size"`` or
        ``"conditions[1].events[0].epoch"``.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    @classmethod
    def at(cls, field: str, problem: str) -> AKPError:
        """Build ``"FIELD: PROBLEM"`` with ``field`` set."""
        return cls(f"{field}: {problem}", field=field)

    def within(self, prefix: str, label: str | None = None) -> AKPError:
        """Return a copy of type ``type(self)`` whose field is nested under ``prefix``.

        ``label`` (default ``prefix``) replaces the prefix in the message, e.g.
        ``"conditions[1] (alternating)"``.
        """
        inner = self.field
        field = f"{prefix}.{inner}" if inner else prefix
        return type(self)(f"{label or prefix}: {self}", field=field)

    def rebrand(self, cls: type[AKPError], prefix: str | None = None, label: str | None = None) -> AKPError:
        """Re-raise as another akp error class, keeping (and optionally nesting) the field."""
        if prefix is None:
            return cls(str(self), field=self.field)
        inner = self.field
        return cls(f"{label or prefix}: {self}", field=f"{prefix}.{inner}" if inner else prefix)
