"""Who may change an experiment: its owner or an admin; anyone may look.

Every experiment records its owner (the signed-in user who launched it; on a
single-user install, :data:`LOCAL_USER`). Viewing is open to everyone: the app
is for collaboration. Changing (cancel, resume, delete, rename, notes, tags)
is for the owner and the admins listed in ``$AKP_ADMINS``.

``user=None`` means a trusted local caller: a notebook, a script or the
command line of the person who owns the store's files, who could edit them
anyway. Such a caller is never refused. Pages on a shared server always pass
the signed-in user.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from akp.errors import AccessError, AKPError

__all__ = ["ADMINS_ENV", "LOCAL_USER", "MAX_USER_CHARS", "admins_from_env", "can_manage", "check_can_manage",
           "check_user", "owner_of"]

#: The owner of everything on a single-user install, and of experiments older versions stored without one.
LOCAL_USER = "local"
#: Environment variable: comma-separated users (e-mail or subject) who may change any experiment.
ADMINS_ENV = "AKP_ADMINS"
#: Longest user name accepted (an e-mail address is at most 254 characters).
MAX_USER_CHARS = 254


def admins_from_env(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The admins named in ``$AKP_ADMINS`` (comma-separated; blanks ignored).

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    frozenset of str
    """
    value = (os.environ if environ is None else environ).get(ADMINS_ENV, "")
    return frozenset(name.strip() for name in value.split(",") if name.strip())


def check_user(user: Any, field: str = "owner") -> str:
    """Validate a user name (an owner to record): non-empty text, no control characters, at most 254 characters.

    Returns
    -------
    str
        ``user`` with surrounding spaces removed.

    Raises
    ------
    AKPError
        Naming ``field``.
    """
    if not isinstance(user, str) or not user.strip():
        shown = repr(user) if len(repr(user)) <= 60 else repr(user)[:57] + "..."
        raise AKPError.at(field, f"must be a non-empty user name of at most {MAX_USER_CHARS} characters, "
                                 f"got {shown}")
    user = user.strip()
    if len(user) > MAX_USER_CHARS:
        raise AKPError.at(field, f"at most {MAX_USER_CHARS} characters, got {len(user)}")
    if any(not ch.isprintable() for ch in user):
        raise AKPError.at(field, "must not contain control characters")
    return user


def owner_of(record: Mapping[str, Any]) -> str:
    """The owner of an experiment record; one stored without an owner (older versions) is :data:`LOCAL_USER`'s."""
    return record.get("owner") or LOCAL_USER


def can_manage(record: Mapping[str, Any], user: str | None, admins: Iterable[str] | None = None) -> bool:
    """Whether ``user`` may change the experiment ``record``: None (trusted local caller), its owner or an admin.

    Parameters
    ----------
    record : mapping
        An experiment record (``id``, ``owner``) from the store.
    user : str or None
        Who asks; None is a trusted local caller.
    admins : iterable of str, optional
        Default :func:`admins_from_env`.
    """
    if user is None:
        return True
    admins = admins_from_env() if admins is None else admins
    return user == owner_of(record) or user in admins


def check_can_manage(record: Mapping[str, Any], user: str | None, admins: Iterable[str] | None = None,
                     *, action: str = "change") -> None:
    """Refuse unless :func:`can_manage`.

    Parameters
    ----------
    record : mapping
        An experiment record (``id``, ``owner``).
    user : str or None
        Who asks; None (a trusted local caller) is always allowed.
    admins : iterable of str, optional
        Default :func:`admins_from_env`.
    action : str
        The verb in the message (``"cancel"``, ``"delete"``...).

    Raises
    ------
    AccessError
        Naming the owner and the user.
    """
    if not can_manage(record, user, admins):
        raise AccessError(str(record.get("id")), owner_of(record), str(user), action)
