"""The Streamlit app started by ``rag ui``: a chat with cited answers, and the knowledge base.

Run it with ``rag ui --index ./rag-index``; ``RAG_INDEX`` names the index. Document text is always shown
as escaped Markdown, never as HTML.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import streamlit as st
from PIL import Image, ImageDraw

from app import chat_view, kb_view, resources, sources_view
from app.access import FailedAttempts, auth_configured, password_problem
from app.environment import prepare_process
from app.i18n import LANGUAGES, Texts, pick_language
from app.preferences import BACKENDS, Preferences
from rag.config import ConfigError, Settings
from rag.index import IndexNotFoundError
from rag.retrieve import Mode


def current_preferences(index_dir: Path, settings: Settings) -> Preferences:
    """The sidebar's values: the saved ones seed a new session (the file is read once per session); each
    change is saved for this index by the widget's callback (see :func:`sidebar`)."""
    prefs: Preferences | None = st.session_state.get("prefs")
    if prefs is None:
        prefs = st.session_state["prefs"] = Preferences.load(index_dir, settings)
    return prefs


def _changed(index_dir: Path, name: str, key: str) -> None:
    prefs = replace(st.session_state["prefs"], **{name: st.session_state[key]}).validated()
    if prefs != st.session_state["prefs"]:
        prefs.save(index_dir)
        st.session_state["prefs"] = prefs


def sidebar(index_dir: Path, prefs: Preferences, t: Texts) -> None:
    """The settings. Each widget is keyed ``pref-<language>-<field>`` and starts from the preferences: a
    widget whose label changes with the interface language is a new widget, so switching the language
    must not carry (or lose) a value through Streamlit's widget state."""

    def bound(name: str) -> dict[str, Any]:
        key = f"pref-{t.language}-{name}"
        st.session_state.setdefault(key, getattr(prefs, name))
        return {"key": key, "on_change": _changed, "args": (index_dir, name, key)}

    with st.sidebar:
        st.header(t("settings"))
        st.selectbox(t("language"), list(LANGUAGES), format_func=lambda code: LANGUAGES[code], **bound("language"))
        modes = [Mode.HYBRID.value, Mode.DENSE.value, Mode.BM25.value]
        st.radio(t("mode"), modes, format_func=lambda m: t(f"mode_{m}"), **bound("mode"))
        st.toggle(t("fusion"), help=t("fusion_help"), disabled=prefs.mode != Mode.HYBRID.value, **bound("fusion"))
        st.slider(t("top_k"), 1, 20, **bound("top_k"))
        st.text_input(t("reranker"), **bound("reranker"))
        st.divider()
        st.selectbox(t("backend"), BACKENDS, format_func=lambda b: t(f"backend_{b}"), **bound("backend"))
        st.text_input(t("hf_model"), disabled=prefs.backend != "hf", **bound("hf_model"))
        st.text_input(t("adapter"), disabled=prefs.backend != "hf", **bound("adapter"))
        st.text_input(t("server_url"), disabled=prefs.backend != "openai", placeholder="http://127.0.0.1:8000/v1",
                      **bound("server_url"))
        st.text_input(t("server_model"), disabled=prefs.backend != "openai", **bound("server_model"))
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


@st.cache_resource
def page_icon() -> Image.Image:
    """An open book, drawn here: the page asks no server but this one for anything (no icon font, no CDN)."""
    icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((2, 8, 62, 56), radius=8, fill=(37, 99, 235))
    draw.polygon([(9, 15), (30, 19), (30, 50), (9, 46)], fill=(255, 255, 255))
    draw.polygon([(55, 15), (34, 19), (34, 50), (55, 46)], fill=(255, 255, 255))
    return icon


@st.cache_resource
def warm_at_start(index_dir: str, _settings: Settings) -> None:
    """Load the index and models once per server, in the background (``rag ui`` has loaded them before it
    listens; a streamlit started by hand starts here, on the first page)."""
    resources.warm_in_background(_settings)


def main() -> None:
    prepare_process()
    st.set_page_config(page_title="rag · your documents", page_icon=page_icon(), layout="wide")
    try:
        settings = Settings.resolve({"index_dir": Path(os.environ.get("RAG_INDEX", "rag-index"))})
    except ConfigError as exc:
        st.error(str(exc))
        return
    warm_at_start(str(settings.index_dir), settings)
    prefs = current_preferences(settings.index_dir, settings)
    t = Texts(pick_language(prefs.language, st.context.locale))
    if not signed_in(t):
        return
    sidebar(settings.index_dir, prefs, t)
    st.html(sources_view.PAGE_SCRIPT, unsafe_allow_javascript=True)
    st.title(t("title"))
    try:
        index = resources.live_index(settings.index_dir)
    except IndexNotFoundError as exc:
        st.error(str(exc))
        index = None
    chat_tab, documents_tab = st.tabs([t("chat"), t("documents")], key="tab", on_change="rerun")
    # outside the tabs, so Streamlit pins it to the bottom of the window; "stop" makes its button stop an answer
    question = st.chat_input(t("ask"), key="ask", submit_mode="stop") if index is not None and chat_tab.open else None
    with chat_tab:
        if index is None:
            st.info(t("no_index"))
        else:
            chat_view.render(settings, index, prefs, t, question,
                             prefs.operator_key(settings))
    with documents_tab:
        kb_view.render(settings, index, t)


if __name__ == "__main__":  # Streamlit runs the script as __main__; a parse worker's forkserver imports it as __mp_main__
    main()
