"""Who is using the app, and whether they may change an experiment.

For now every visitor is the single local user (:data:`akp.access.LOCAL_USER`):
the app runs in single-user mode. Sign-in replaces :func:`current_user` with the
signed-in user (``st.user``); the rules themselves live in :mod:`akp.access`,
which the library enforces whatever a page shows.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from akp.access import LOCAL_USER, admins_from_env
from akp.access import can_manage as _can_manage

__all__ = ["can_manage", "current_user", "is_admin"]


def current_user() -> str:
    """The user this session acts as (pages pass it to every change): :data:`~akp.access.LOCAL_USER` for now."""
    return LOCAL_USER


def is_admin(user: str) -> bool:
    """Whether ``user`` is listed in ``$AKP_ADMINS``."""
    return user in admins_from_env()


def can_manage(record: Mapping[str, Any]) -> bool:
    """Whether the current user may cancel, resume, rename, annotate or delete the experiment ``record``."""
    return _can_manage(record, current_user(), admins_from_env())
