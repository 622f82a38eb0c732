"""Who is using the app: sign-in with Streamlit's own authentication, or single-user local mode.

When ``.streamlit/secrets.toml`` has an ``[auth]`` section (OpenID Connect:
``redirect_uri``, ``cookie_secret``, ``client_id``, ``client_secret``,
``server_metadata_url``; see ``.streamlit/secrets.toml.example``), every page
is behind :func:`require_sign_in` and the user is ``st.user``'s e-mail (or its
subject, for a provider that sends no e-mail). Without it the app runs in local
mode: one user, :data:`LOCAL_USER`, and the sidebar says so. Admins are the
e-mails in ``$AKP_ADMINS`` (comma-separated); they may manage every experiment.

A secrets file that exists but cannot be read fails closed: the app shows one
line and stops, instead of quietly running open in local mode.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import streamlit as st

from akp.access import LOCAL_USER, admins_from_env, check_can_manage
from akp.errors import AKPError

SIGN_OUT_LABEL = "Sign out"
SIGN_IN_LABEL = "Sign in"
LOCAL_MODE_TEXT = "Local mode: one user, no sign-in"


class SignInConfigError(AKPError):
    """The sign-in settings exist but cannot be used (unreadable secrets file, missing Authlib)."""


def _secrets_files() -> list[str]:
    from streamlit import config

    return [str(p) for p in (config.get_option("secrets.files") or [])]


def auth_settings() -> Mapping[str, Any] | None:
    """The ``[auth]`` section of the app's secrets, or None in local mode.

    Returns
    -------
    mapping or None
        None when no secrets file exists or it has no ``[auth]`` section.

    Raises
    ------
    SignInConfigError
        When a secrets file exists but cannot be parsed: the app must not fall
        back to local mode (anyone could act as the one user).
    """
    try:
        section = st.secrets.get("auth")
    except FileNotFoundError as exc:  # StreamlitSecretNotFoundError: no file, or a file that did not parse
        if any(os.path.exists(p) for p in _secrets_files()):
            raise SignInConfigError("The secrets file exists but cannot be read; sign-in is off until it is fixed.",
                                    field="secrets.toml") from exc
        return None
    return section if isinstance(section, Mapping) and section else None


def sign_in_enabled() -> bool:
    """Whether users must sign in (``[auth]`` is configured).

    Returns
    -------
    bool
    """
    return auth_settings() is not None


def providers(settings: Mapping[str, Any]) -> list[str | None]:
    """The provider names of an ``[auth]`` section, for ``st.login``.

    Parameters
    ----------
    settings : mapping
        The ``[auth]`` section.

    Returns
    -------
    list of str or None
        ``[None]`` for the unnamed default provider (``client_id`` in ``[auth]``
        itself), else the names of the ``[auth.<name>]`` tables, sorted.
    """
    if "client_id" in settings:
        return [None]
    return sorted(name for name, value in settings.items() if isinstance(value, Mapping))


def user_of(info: Mapping[str, Any]) -> str | None:
    """The user name of ``st.user``'s claims: the e-mail, else the subject.

    Kept as the provider sends it: owners and ``$AKP_ADMINS`` compare exactly
    (:mod:`akp.access`), in the app and in the library alike.

    Parameters
    ----------
    info : mapping
        ``st.user`` (or its ``to_dict()``).

    Returns
    -------
    str or None
        None when nobody is signed in.
    """
    if not info.get("is_logged_in"):
        return None
    email = info.get("email")
    if isinstance(email, str) and email.strip():
        return email.strip()
    sub = info.get("sub")
    return str(sub) if sub not in (None, "") else None


def signed_in_user() -> str | None:
    """The signed-in user, or None (nobody yet; or local mode, which has no sign-in).

    Returns
    -------
    str or None
    """
    if not sign_in_enabled():
        return None
    return user_of(st.user.to_dict())


def current_user() -> str:
    """The user every action of this session is attributed to.

    Returns
    -------
    str
        ``st.user``'s e-mail (or subject) when sign-in is configured,
        :data:`LOCAL_USER` in local mode. With sign-in configured and nobody
        signed in, the page shows the sign-in screen and stops
        (:func:`require_sign_in`), so no action runs anonymously.
    """
    if not sign_in_enabled():
        return LOCAL_USER
    user = signed_in_user()
    if user is None:
        require_sign_in()  # stops the script run
        raise RuntimeError("unreachable: require_sign_in stops the run")  # pragma: no cover
    return user


def admins() -> frozenset[str]:
    """The admins' user names (``$AKP_ADMINS``, comma-separated; compared exactly, like the library does).

    Returns
    -------
    frozenset of str
    """
    return admins_from_env()


def is_admin(user: str | None) -> bool:
    """Whether ``user`` is an admin (named in ``$AKP_ADMINS``).

    Parameters
    ----------
    user : str or None

    Returns
    -------
    bool
    """
    return user is not None and user in admins()


def can_manage(record: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether the current user may cancel, resume, rename, tag or delete an experiment.

    Parameters
    ----------
    record : mapping
        The experiment's record (its ``owner`` decides).

    Returns
    -------
    (bool, str)
        Allowed, and the reason when not (it names the owner), for a disabled button's help.
    """
    try:
        check_can_manage(record, current_user(), admins())
    except PermissionError as exc:
        return False, str(exc)
    return True, ""


def may_enter() -> bool:
    """Whether this session may see the app: local mode, or a signed-in user.

    Returns
    -------
    bool

    Raises
    ------
    SignInConfigError
        When the secrets file exists but cannot be read.
    """
    settings = auth_settings()
    return settings is None or user_of(st.user.to_dict()) is not None


def sign_in_gate() -> bool:
    """Let the session in, or show the sign-in screen as the app's only page.

    ``app.py`` calls it before building its navigation: when it returns False
    the run must stop, and no page, sidebar or job manager has run.

    Returns
    -------
    bool
        True when the app may go on.
    """
    try:
        if may_enter():
            return True
    except SignInConfigError as exc:
        st.error(str(exc))
        return False
    # A one-page navigation, so a shared link (``/runs?experiment=...``) shows this screen, not "page not found".
    st.navigation([st.Page(sign_in_page, title="Sign in", icon=":material/login:", default=True)],
                  position="hidden").run()
    return False


def require_sign_in() -> None:
    """Show the sign-in screen and stop the run unless the user is signed in (no-op in local mode)."""
    try:
        if may_enter():
            return
    except SignInConfigError as exc:
        st.error(str(exc))
        st.stop()
    sign_in_page()
    st.stop()


def sign_in_page() -> None:
    """The sign-in screen: what this instance is, and a button per configured provider."""
    from streamlit.auth_util import is_authlib_installed

    settings = auth_settings() or {}
    st.title("AKP Lab")
    st.markdown("This is a shared instance: sign in to see and run experiments. Every experiment records "
                "who launched it; only its owner (or an admin) may cancel, resume, rename or delete it.")
    if not is_authlib_installed():
        st.error("Sign-in is configured but Authlib is not installed (pip install 'Authlib>=1.3.2').")
        return
    names = providers(settings)
    if not names:
        st.error("Sign-in is configured but names no provider (client_id in [auth] or an [auth.<name>] table).")
        return
    for name in names:
        label = SIGN_IN_LABEL if name is None else f"{SIGN_IN_LABEL} with {name}"
        if st.button(label, key=f"sign-in-{name or 'default'}", type="primary", icon=":material/login:"):
            st.login(name)


def sidebar_identity() -> None:
    """The sidebar's identity lines: who is signed in and a sign-out button, or that this is local mode."""
    user = signed_in_user()
    if user is None:
        st.caption(LOCAL_MODE_TEXT)
        return
    # st.text, not Markdown: an e-mail would become a mailto link, and a subject is user text.
    st.caption("Signed in as")
    st.text(user + (" (admin)" if is_admin(user) else ""))
    if st.button(SIGN_OUT_LABEL, key="sign-out", icon=":material/logout:", type="tertiary"):
        st.logout()
    if is_admin(user):
        st.caption("Admins")
        st.text(", ".join(sorted(admins())))
