"""The Streamlit app started by ``rag ui``: a chat with cited answers, and the knowledge base.

Run it with ``rag ui --index ./rag-index``; ``RAG_INDEX`` names the index. Document text is always shown
as escaped Markdown, never as HTML.
"""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import streamlit as st

from app import chat_view, kb_view, resources
from app.access import FailedAttempts, auth_configured, password_problem
from app.i18n import LANGUAGES, Texts, pick_language
from app.preferences import BACKENDS, Preferences
from rag.config import ConfigError, Settings
from rag.index import IndexNotFoundError
from rag.retrieve import Mode


def current_preferences(index_dir: Path, settings: Settings) -> Preferences:
    """The sidebar's values: saved ones seed a new session (the file is read once per session); a change
    is saved for this index."""
    saved: Preferences | None = st.session_state.get("prefs-saved")
    if saved is None:
        saved = st.session_state["prefs-saved"] = Preferences.load(index_dir, settings)
    for field in fields(Preferences):  # also after a run that drew no sidebar, whose widget state is gone
        st.session_state.setdefault(f"pref-{field.name}", getattr(saved, field.name))
    prefs = Preferences(**{f.name: st.session_state[f"pref-{f.name}"] for f in fields(Preferences)}).validated()
    if prefs != saved:
        prefs.save(index_dir)
        st.session_state["prefs-saved"] = prefs
    return prefs


def sidebar(prefs: Preferences, t: Texts) -> None:
    """Widgets keyed ``pref-<field>``: their values are read back by :func:`current_preferences`."""
    with st.sidebar:
        st.header(t("settings"))
        st.selectbox(t("language"), list(LANGUAGES), format_func=lambda code: LANGUAGES[code], key="pref-language")
        modes = [Mode.HYBRID.value, Mode.DENSE.value, Mode.BM25.value]
        st.radio(t("mode"), modes, format_func=lambda m: t(f"mode_{m}"), key="pref-mode")
        st.toggle(t("fusion"), key="pref-fusion", help=t("fusion_help"), disabled=prefs.mode != Mode.HYBRID.value)
        st.slider(t("top_k"), 1, 20, key="pref-top_k")
        st.text_input(t("reranker"), key="pref-reranker")
        st.divider()
        st.selectbox(t("backend"), BACKENDS, format_func=lambda b: t(f"backend_{b}"), key="pref-backend")
        st.text_input(t("hf_model"), key="pref-hf_model", disabled=prefs.backend != "hf")
        st.text_input(t("adapter"), key="pref-adapter", disabled=prefs.backend != "hf")
        st.text_input(t("server_url"), key="pref-server_url", disabled=prefs.backend != "openai",
                      placeholder="http://127.0.0.1:8000/v1")
        st.text_input(t("server_model"), key="pref-server_model", disabled=prefs.backend != "openai")
        missing = prefs.missing_backend_field
        if missing:
            st.warning(t("needs_value", field=t(missing)))
        st.caption(t("settings_saved"))


@st.cache_resource
def _failed_attempts() -> FailedAttempts:
    """One count of failed sign-ins for every session of this server."""
    return FailedAttempts()


def signed_in(t: Texts) -> bool:
    """Whether this session may see the documents: always on loopback without a password; else after
    Streamlit's sign-in (when configured) or the shared ``RAG_UI_PASSWORD``."""
    if auth_configured(Path.cwd()):
        if st.user.is_logged_in:
            return True
        st.button(t("log_in"), on_click=st.login)
        return False
    password = os.environ.get("RAG_UI_PASSWORD")
    if not password or st.session_state.get("signed-in"):
        return True
    problem = password_problem(password)
    if problem:  # `rag ui` refuses to start with it; a streamlit started by hand gets no weaker
        st.error(problem)
        return False
    with st.form("sign-in"):
        given = st.text_input(t("password"), type="password")
        if st.form_submit_button(t("log_in")):
            if _failed_attempts().check(given, password):
                st.session_state["signed-in"] = True
                st.rerun()
            st.error(t("wrong_password"))
    return False


def main() -> None:
    st.set_page_config(page_title="rag · your documents", page_icon=":material/menu_book:", layout="wide")
    try:
        settings = Settings.resolve({"index_dir": Path(os.environ.get("RAG_INDEX", "rag-index"))})
    except ConfigError as exc:
        st.error(str(exc))
        return
    prefs = current_preferences(settings.index_dir, settings)
    t = Texts(pick_language(prefs.language, st.context.locale))
    if not signed_in(t):
        return
    sidebar(prefs, t)
    st.title(t("title"))
    try:
        index = resources.live_index(settings.index_dir)
    except IndexNotFoundError as exc:
        st.error(str(exc))
        index = None
    chat_tab, documents_tab = st.tabs([t("chat"), t("documents")])
    with chat_tab:
        if index is None:
            st.info(t("no_index"))
        else:
            chat_view.render(settings.index_dir, index, prefs, settings.embed_batch_size, t, prefs.operator_key(settings))
    with documents_tab:
        kb_view.render(settings, index, t)


main()
