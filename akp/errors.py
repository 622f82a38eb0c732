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


class StoreError(AKPError):
    """A store operation got a bad id or asked for something that is not there (raised by :mod:`akp.store`)."""


class AccessError(PermissionError):
    """A user asked to change an experiment that is neither theirs nor theirs to administer.

    A ``PermissionError`` (not an :class:`AKPError`): the input is valid, the
    person is not allowed. Nothing was changed when it is raised.

    Parameters
    ----------
    experiment_id : str
        The experiment acted on.
    owner : str
        Who owns it.
    user : str
        Who asked.
    action : str, default="change"
        What was refused, as a verb: ``"cancel"``, ``"delete"``, ``"rename"``...

    Attributes
    ----------
    experiment_id, owner, user, action : str
    field : None
        Always None (no field is at fault); pages read ``field`` of any error.
    """

    field = None

    def __init__(self, experiment_id: str, owner: str, user: str, action: str = "change") -> None:
        self.experiment_id = experiment_id
        self.owner = owner
        self.user = user
        self.action = action
        super().__init__(f"experiment {experiment_id} belongs to {owner!r}: only its owner or an admin "
                         f"may {action} it ({user!r} is neither)")

    def __reduce__(self):  # picklable across processes despite the keyword-free signature of OSError
        return (type(self), (self.experiment_id, self.owner, self.user, self.action))

    def __str__(self) -> str:  # OSError's str() would show the args tuple
        return self.args[0]
