"""The chat tab: history, streaming answers with their stages, sources, feedback, export.

The conversation lives in the server's :class:`app.conversation.ConversationStore` under the id in the
page's address (``?chat=…``): reloading the tab finds it again.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

import streamlit as st

from app import resources, sources_view
from app.conversation import Conversation
from app.i18n import Texts
from app.preferences import Preferences
from app.safe_markdown import escape, linked_markers, marked, one_line
from rag.config import Settings
from rag.feedback import Feedback, FeedbackStore
from rag.index import Index
from rag.pipeline import Answer, Stage

CHAT_PARAMETER = "chat"
"""The query parameter naming the conversation of a browser tab."""


def render(settings: Settings, index: Index, prefs: Preferences, t: Texts, question: str | None,
           api_key: str | None = None) -> None:
    """The conversation so far, then ``question`` (from the pinned input) answered as it streams."""
    conversation = current_conversation()
    new_chat, export = st.columns([1, 1])
    if new_chat.button(t("new_chat"), key="new-chat", icon=":material/add_comment:"):
        conversation = start_conversation()
        st.session_state.pop("open_source", None)
    store = FeedbackStore(settings.index_dir)
    for turn, (asked, answer) in enumerate(zip(conversation.questions, conversation.answers, strict=True)):
        st.chat_message("user").markdown(escape(asked))
        with st.chat_message("assistant"):
            _answer_block(answer, turn, conversation, store, t, index.store.page_lines)
    if question:
        _ask(question, settings, prefs, conversation, store, t, api_key)
    # drawn last, into its slot above the messages: it holds the exchange just answered
    export.download_button(t("export"), conversation.to_markdown(), file_name="conversation.md", mime="text/markdown",
                           key="export", disabled=not conversation.answers, icon=":material/download:")


def current_conversation() -> Conversation:
    """This tab's conversation: the session's, else the one the address names, else a new one."""
    conversation: Conversation | None = st.session_state.get("conversation")
    if conversation is None:
        conversation = resources.conversations().get(st.query_params.get(CHAT_PARAMETER))
        st.session_state["conversation"] = conversation
    if st.query_params.get(CHAT_PARAMETER) != conversation.id:
        st.query_params[CHAT_PARAMETER] = conversation.id
    return conversation


def start_conversation() -> Conversation:
    conversation = st.session_state["conversation"] = resources.conversations().get(None)
    st.query_params[CHAT_PARAMETER] = conversation.id
    return conversation


def _answer_block(answer: Answer, turn: int, conversation: Conversation, store: FeedbackStore, t: Texts,
                  page_lines: sources_view.PageLines, text_slot: Any = st) -> None:
    """The answer (in ``text_slot``: where it was streamed), its sources, inspector and feedback."""
    text_slot.markdown(_answer_markdown(answer, turn))
    if answer.unsupported:
        st.caption(t("unsupported"))
    sources_view.citations(answer, turn, t, page_lines)
    sources_view.inspector(answer, t)
    _feedback(answer, turn, conversation, store, t)


def _answer_markdown(answer: Answer, turn: int) -> str:
    """The answer as escaped text with the sentences the citation check could not support marked red,
    under its header (in italics) when it quotes documents in another language; each [n] opens its
    source (see :data:`app.sources_view.PAGE_SCRIPT`)."""
    cited = {c.n for c in answer.citations}

    def link(n: int) -> str | None:
        return f"#{sources_view.citation_key(turn, n)}" if n in cited else None

    if not answer.header:
        return linked_markers(marked(answer.text, answer.unsupported, "red"), link)
    body = answer.text.removeprefix(answer.header).lstrip("\n")
    return f"_{escape(answer.header)}_\n\n{linked_markers(marked(body, answer.unsupported, 'red'), link)}"


def _ask(question: str, settings: Settings, prefs: Preferences, conversation: Conversation,
         store: FeedbackStore, t: Texts, api_key: str | None = None) -> None:
    """Stream the answer under its stage ("searching", "reading", "writing"). The input's stop button
    (or any click) ends the run: the model is stopped and what it wrote so far is kept, marked stopped."""
    st.chat_message("user").markdown(escape(question))
    with st.chat_message("assistant"):
        stop = threading.Event()
        final: list[Answer] = []
        written: list[str] = []
        stage_slot, placeholder = st.empty(), st.empty()

        def show(stage: Stage) -> None:
            stage_slot.caption(t(f"stage_{stage}"))

        show("searching")
        try:
            pipeline = resources.answer_pipeline(settings, prefs, api_key)

            def pieces() -> Iterator[str]:
                for item in pipeline.stream(question, conversation.history, stop=stop, on_stage=show):
                    if isinstance(item, Answer):
                        final.append(item)
                    else:
                        written.append(item)
                        yield escape(item)

            placeholder.write_stream(pieces())
        except Exception as exc:  # any backend failure is a message in the chat, never a stack trace
            placeholder.error(t("answering_failed", error=one_line(exc)))
            return
        except BaseException:  # stopped, or another click: Streamlit ends the run from inside the stream
            if written and not final:  # what was written stays on screen, and is kept, marked, for the next run
                conversation.add(question, _stopped(question, "".join(written), t))
            raise
        finally:
            stop.set()  # whatever ended the stream ends the model's generation too
            stage_slot.empty()
        answer = final[0]
        _answer_block(answer, conversation.add(question, answer), conversation, store, t,
                      pipeline.retriever.index.store.page_lines, text_slot=placeholder)


def _stopped(question: str, written: str, t: Texts) -> Answer:
    """What the backend wrote before the user stopped it: kept, with no citations, and said to be cut short."""
    return Answer(question, f"{written.rstrip()} … ({t('stopped')})", [], False, False, [], 0.0, question, 0.0)


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
