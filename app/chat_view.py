"""The chat tab: history, streaming answers, unsupported sentences marked, sources, feedback, export."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import streamlit as st

from app import resources, sources_view
from app.conversation import Conversation
from app.i18n import Texts
from app.preferences import Preferences
from app.safe_markdown import escape, marked, one_line
from rag.feedback import Feedback, FeedbackStore
from rag.index import Index
from rag.pipeline import Answer


def render(index_dir: Path, index: Index, prefs: Preferences, batch_size: int, t: Texts, api_key: str | None = None) -> None:
    conversation: Conversation = st.session_state.setdefault("conversation", Conversation())
    new_chat, export = st.columns([1, 1])
    if new_chat.button(t("new_chat"), key="new-chat", icon=":material/add_comment:"):
        conversation = st.session_state["conversation"] = Conversation()
        st.session_state.pop("open_source", None)
    export.download_button(t("export"), conversation.to_markdown(), file_name="conversation.md", mime="text/markdown",
                           key="export", disabled=not conversation.answers, icon=":material/download:")
    store = FeedbackStore(index_dir)
    messages = st.container()  # above the input box, which is inline inside a tab
    question = st.chat_input(t("ask"))
    with messages:
        for turn, (asked, answer) in enumerate(zip(conversation.questions, conversation.answers, strict=True)):
            st.chat_message("user").markdown(escape(asked))
            with st.chat_message("assistant"):
                _answer_block(answer, turn, conversation, store, t, index.store.page_lines)
        if question:
            _ask(question, index, prefs, batch_size, conversation, store, t, api_key)


def _answer_block(answer: Answer, turn: int, conversation: Conversation, store: FeedbackStore, t: Texts,
                  page_lines: sources_view.PageLines, text_slot: Any = st) -> None:
    """The answer (in ``text_slot``: where it was streamed), its sources, inspector and feedback."""
    text_slot.markdown(_answer_markdown(answer))
    if answer.unsupported:
        st.caption(t("unsupported"))
    sources_view.citations(answer, turn, t, page_lines)
    sources_view.inspector(answer, t)
    _feedback(answer, turn, conversation, store, t)


def _answer_markdown(answer: Answer) -> str:
    """The answer as escaped text with the sentences the citation check could not support marked red,
    under its header (in italics) when it quotes documents in another language."""
    if not answer.header:
        return marked(answer.text, answer.unsupported, "red")
    body = answer.text.removeprefix(answer.header).lstrip("\n")
    return f"_{escape(answer.header)}_\n\n{marked(body, answer.unsupported, 'red')}"


def _ask(question: str, index: Index, prefs: Preferences, batch_size: int, conversation: Conversation,
         store: FeedbackStore, t: Texts, api_key: str | None = None) -> None:
    st.chat_message("user").markdown(escape(question))
    with st.chat_message("assistant"):
        stop = threading.Event()
        final: list[Answer] = []
        placeholder = st.empty()
        placeholder.caption(t("searching"))  # replaced by the first words of the answer
        try:
            pipeline = resources.answer_pipeline(index, prefs, batch_size, api_key)

            def pieces() -> Iterator[str]:
                for item in pipeline.stream(question, conversation.history, stop=stop):
                    if isinstance(item, Answer):
                        final.append(item)
                    else:
                        yield escape(item)

            placeholder.write_stream(pieces())
        except Exception as exc:  # any backend failure is a message in the chat, never a stack trace
            placeholder.error(t("answering_failed", error=one_line(exc)))
            return
        finally:
            stop.set()  # a rerun (the user clicked elsewhere) interrupts the stream: stop the model too
        answer = final[0]
        _answer_block(answer, conversation.add(question, answer), conversation, store, t, index.store.page_lines,
                      text_slot=placeholder)


def _feedback(answer: Answer, turn: int, conversation: Conversation, store: FeedbackStore, t: Texts) -> None:
    key = f"feedback-{conversation.id}-{turn}"

    def save() -> None:
        rating = st.session_state.get(key)
        store.save(Feedback(conversation.id, turn, conversation.questions[turn], answer.text,
                            [asdict(c) for c in answer.citations], answer.refused, rating,
                            st.session_state.get(f"{key}-comment", "")))

    st.feedback("thumbs", key=key, on_change=save)
    if st.session_state.get(key) is not None:
        st.text_input(t("comment"), key=f"{key}-comment", on_change=save)
