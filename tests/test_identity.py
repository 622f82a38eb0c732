"""Sign-in and local mode (ui.identity, app.py's gate): who the user is, what the sidebar says, who gets in.

AppTest sets ``[auth]`` through ``at.secrets`` and the signed-in claims through
``at.user``; the real OpenID Connect round trip is in ``tests/e2e/test_signin.py``.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui
from ui import identity

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
AUTH = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "s" * 32,
        "client_id": "akp", "client_secret": "secret",
        "server_metadata_url": "http://127.0.0.1:9400/.well-known/openid-configuration"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "store"
    monkeypatch.setenv("AKP_HOME", str(home))
    monkeypatch.delenv("AKP_ADMINS", raising=False)
    yield home
    ui.shutdown_managers(home)


def run_app(user: dict | None = None, auth: dict | None = AUTH, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    if auth is not None:
        at.secrets["auth"] = auth
    if user is not None:
        at.user = user
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sidebar_texts(at: AppTest) -> list[str]:
    return [c.value for c in at.sidebar.caption] + [t.value for t in at.sidebar.text]


# -- who the user is ------------------------------------------------------------------------------------
def test_user_is_the_email_else_the_subject_else_nobody():
    assert identity.user_of({"is_logged_in": True, "email": " alice@example.org ", "sub": "1"}) == "alice@example.org"
    assert identity.user_of({"is_logged_in": True, "sub": "auth0|42"}) == "auth0|42"
    assert identity.user_of({"is_logged_in": True, "email": "", "sub": "7"}) == "7"
    assert identity.user_of({"is_logged_in": False, "email": "a@b.c"}) is None
    assert identity.user_of({"email": "a@b.c"}) is None  # a claim without the sign-in flag is nobody


def test_providers_default_or_named_tables():
    assert identity.providers(AUTH) == [None]
    named = {"redirect_uri": AUTH["redirect_uri"], "cookie_secret": "x" * 32,
             "okta": {"client_id": "o"}, "google": {"client_id": "g"}}
    assert identity.providers(named) == ["google", "okta"]
    assert identity.providers({"redirect_uri": "x", "cookie_secret": "y"}) == []


def test_admins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AKP_ADMINS", "boss@example.org, , ta@example.org")
    assert identity.admins() == {"boss@example.org", "ta@example.org"}
    assert identity.is_admin("boss@example.org")
    assert not identity.is_admin("student@example.org")
    assert not identity.is_admin(None)


def test_an_unreadable_secrets_file_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A broken secrets.toml on a shared instance must not turn into local mode (everyone the one user)."""
    from streamlit import config
    from streamlit.runtime.secrets import Secrets

    bad = tmp_path / "secrets.toml"
    bad.write_text("[auth\nclient_id = ")
    old = config.get_option("secrets.files")
    config.set_option("secrets.files", [str(bad)])
    monkeypatch.setattr(st, "secrets", Secrets())
    try:
        with pytest.raises(identity.SignInConfigError, match="cannot be read"):
            identity.auth_settings()
        bad.unlink()  # no file at all: local mode
        monkeypatch.setattr(st, "secrets", Secrets())
        assert identity.auth_settings() is None
    finally:
        config.set_option("secrets.files", old)


def test_the_example_secrets_file_configures_the_default_provider():
    example = tomllib.loads((ROOT / ".streamlit" / "secrets.toml.example").read_text())
    assert identity.providers(example["auth"]) == [None]
    assert {"redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url"} <= set(
        example["auth"])
    assert example["auth"]["redirect_uri"].endswith("/oauth2callback")


def test_secrets_are_never_committed():
    import subprocess

    out = subprocess.run(["git", "check-ignore", ".streamlit/secrets.toml"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, "the .gitignore must cover .streamlit/secrets.toml"


# -- the app shell --------------------------------------------------------------------------------------
def test_local_mode_says_so_and_needs_no_sign_in(home: Path):
    at = run_app(auth=None)
    assert identity.LOCAL_MODE_TEXT in sidebar_texts(at)
    assert not [b for b in at.button if b.label == identity.SIGN_IN_LABEL]
    assert {m.label for m in at.sidebar.metric} == {"Running", "Queued"}


def test_signed_out_user_sees_only_the_sign_in_screen(home: Path):
    at = run_app(user={"is_logged_in": False})
    assert [b.label for b in at.button] == [identity.SIGN_IN_LABEL]
    assert not at.sidebar.metric  # no queue, no pages
    assert ui.manager_of(home) is None  # the job manager was not even started
    # A page asked for directly (a shared link) is behind the gate too: only the sign-in page exists.
    with pytest.raises(ValueError, match=r"Known pages: \['Sign in'\]"):
        at.switch_page("pages/runs.py")


def test_signed_in_user_is_named_in_the_sidebar_and_can_sign_out(home: Path):
    at = run_app(user={"is_logged_in": True, "email": "alice@example.org", "sub": "a1"})
    texts = sidebar_texts(at)
    assert "Signed in as" in texts and "alice@example.org" in texts
    assert identity.LOCAL_MODE_TEXT not in texts
    assert not any(t.startswith("Admins") for t in texts)  # only admins see the admin list
    assert [b.label for b in at.sidebar.button] == [identity.SIGN_OUT_LABEL]


def _sidebar_only() -> None:
    import streamlit as st

    from ui import identity

    if identity.sign_in_gate():
        identity.sidebar_identity()
        st.write("inside")


def test_sign_out_ends_the_session_and_shows_the_sign_in_screen():
    # The sidebar alone (AppTest's second run of app.py drops the sidebar block; the browser test clicks it there).
    at = AppTest.from_function(_sidebar_only, default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": "alice@example.org"}
    at.run()
    assert "inside" in [m.value for m in at.markdown]
    at.button(key="sign-out").click().run()
    assert at.user == {"is_logged_in": False}
    at.run()
    assert [b.label for b in at.button] == [identity.SIGN_IN_LABEL]
    assert "inside" not in [m.value for m in at.markdown]


def test_admins_see_that_they_are_and_who_the_admins_are(home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AKP_ADMINS", "ta@example.org,boss@example.org")
    at = run_app(user={"is_logged_in": True, "email": "boss@example.org"})
    texts = sidebar_texts(at)
    assert "boss@example.org (admin)" in texts
    assert "boss@example.org, ta@example.org" in texts


def test_a_subject_with_markup_is_shown_as_text(home: Path):
    at = run_app(user={"is_logged_in": True, "sub": "![x](http://127.0.0.1:9/beacon.png)"})
    assert "![x](http://127.0.0.1:9/beacon.png)" in [t.value for t in at.sidebar.text]
    assert not any("beacon" in m.value for m in at.sidebar.markdown)


def _manage_probe() -> None:
    import streamlit as st

    from ui import identity

    allowed, why = identity.can_manage({"id": "e1", "owner": "alice@example.org"})
    st.text(f"{allowed}|{why}")


@pytest.mark.parametrize(("user", "admins", "allowed"), [
    ("alice@example.org", "", True), ("bob@example.org", "", False), ("bob@example.org", "bob@example.org", True)])
def test_only_the_owner_or_an_admin_may_manage(user: str, admins: str, allowed: bool,
                                               monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AKP_ADMINS", admins)
    at = AppTest.from_function(_manage_probe, default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": user}
    at.run()
    ok, why = at.text[0].value.split("|", 1)
    assert ok == str(allowed)
    assert ("alice@example.org" in why) is (not allowed)  # the reason names the owner


def test_runs_page_disables_actions_for_someone_elses_experiment(home: Path):
    from akp.store import RunStore
    from tests.specs import small_smoke_spec

    spec = small_smoke_spec("shared", epochs=2, seeds=[0], n_train=32)
    experiment_id = RunStore(home).create_experiment(spec, owner="alice@example.org")
    query = {"experiment": experiment_id}

    def runs_page(user: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.secrets["auth"] = AUTH
        at.user = {"is_logged_in": True, "email": user}
        at.query_params.update(query)
        at.run()
        at.switch_page("pages/runs.py")
        at.query_params.update(query)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    bob = runs_page("bob@example.org").button(key="runs-resume")  # never submitted: resumable by its owner
    assert bob.disabled and "alice@example.org" in bob.help
    assert not runs_page("alice@example.org").button(key="runs-resume").disabled
