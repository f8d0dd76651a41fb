"""The Streamlit app (started by ``rag ui``): chat with cited answers, the source panel, the knowledge base.

Document text is always shown as escaped Markdown, never as HTML.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import streamlit as st

from rag.config import Settings
from rag.generate.base import GenerationError
from rag.index import Index, IndexNotFoundError
from rag.pipeline import Answer, AnswerPipeline

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<:$])")


def escape(text: str) -> str:
    """Document text as literal Markdown: no links, images, HTML or formatting can come from a document."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


@st.cache_resource(show_spinner="Loading the index and models…")
def load_pipeline(index_dir: str, generation: str, llm: str, adapter: str | None) -> AnswerPipeline:
    """One pipeline per index generation and backend, shared by every session of this server."""
    from rag.generate.factory import make_generator
    from rag.retrieve import Retriever

    settings = Settings.resolve({"index_dir": Path(index_dir), "llm": llm, "adapter": adapter})
    retriever = Retriever.open(settings.index_dir, settings)
    generator = make_generator(settings.llm, retriever.embedder, retriever.tokenizer, settings.adapter,
                               dense_weight=retriever.dense_weight_for)
    return AnswerPipeline(retriever, generator)


def highlighted(text: str, quote: str) -> str:
    """The passage as escaped Markdown with the quoted sentence marked."""
    start = text.find(quote) if quote else -1
    if start < 0:
        return escape(text)
    end = start + len(quote)
    return f"{escape(text[:start])}:orange-background[{escape(quote)}]{escape(text[end:])}"


def show_sources(turn: dict[str, Any]) -> None:
    answer: Answer = turn["answer"]
    selected = st.session_state.get("selected")
    if answer.refused:
        st.caption("Nearest passages" if answer.passages else "Nothing close was found.")
        for passage in answer.passages[:3]:
            st.markdown(f"**{escape(Path(passage.source).name)}**, page {passage.page}")
            st.markdown(escape(passage.text[:400]))
        return
    columns = st.columns(max(1, len(answer.citations)))
    for column, citation in zip(columns, answer.citations):
        label = f"[{citation.n}] {Path(citation.source).name} p.{citation.page}"
        if column.button(label, key=f"cite-{turn['id']}-{citation.n}", help=citation.quote[:200]):
            st.session_state["selected"] = (turn["id"], citation.n)
            selected = st.session_state["selected"]
    if answer.unsupported:
        st.warning("Not supported by the cited passages: " + " / ".join(answer.unsupported))
    if selected and selected[0] == turn["id"]:
        citation = next(c for c in answer.citations if c.n == selected[1])
        passage = next(p for p in answer.passages if p.n == citation.n)
        with st.container(border=True):
            st.markdown(f"**Source [{citation.n}]: {escape(Path(citation.source).name)}, page {citation.page}**")
            st.caption(citation.source)
            st.markdown(highlighted(passage.text, citation.quote))


def show_inspector(answer: Answer) -> None:
    retrieval = answer.retrieval
    if retrieval is None:
        return
    with st.expander("Retrieval inspector"):
        st.caption(
            f"mode {retrieval.mode.value}; standalone question: {answer.standalone_question}; evidence {answer.evidence:.2f}; "
            f"dense weight {retrieval.dense_weight:.2f}; fusion "
            + ("ran" if retrieval.fusion_ran else "skipped" if retrieval.fusion_ran is False else "not used")
            + (f" ({retrieval.gate_reason})" if retrieval.gate_reason else "")
        )
        st.dataframe([{"rank": h.rank, "file": Path(h.source).name, "page": h.page, "score": round(h.score, 4),
                       "found by": ", ".join(h.found_by), **{k: round(v, 4) for k, v in h.scores.items()}}
                      for h in retrieval.hits], use_container_width=True)
        st.caption("timings (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in retrieval.timings.items()))


def chat(index_dir: Path, index: Index) -> None:
    settings = Settings.resolve({"index_dir": index_dir})
    turns: list[dict[str, Any]] = st.session_state.setdefault("turns", [])
    if st.button("New chat", key="new-chat"):
        turns.clear()
        st.session_state.pop("selected", None)
    for turn in turns:
        st.chat_message("user").markdown(escape(turn["question"]))
        with st.chat_message("assistant"):
            st.markdown(escape(turn["answer"].text))
            show_sources(turn)
            show_inspector(turn["answer"])
    question = st.chat_input("Ask your documents… / 向文档提问…")
    if not question:
        return
    st.chat_message("user").markdown(escape(question))
    history = [(t["question"], t["answer"].text) for t in turns]
    with st.chat_message("assistant"):
        try:
            pipeline = load_pipeline(str(index_dir), index.generation.name, settings.llm, settings.adapter)
            final: list[Answer] = []

            def pieces() -> Iterator[str]:
                for item in pipeline.stream(question, history):
                    if isinstance(item, Answer):
                        final.append(item)
                    else:
                        yield escape(item)

            st.write_stream(pieces())
        except (GenerationError, IndexNotFoundError, RuntimeError) as exc:
            st.error(f"Could not answer: {exc}")
            return
        turn = {"id": len(turns), "question": question, "answer": final[0]}
        turns.append(turn)
        show_sources(turn)
        show_inspector(final[0])


def knowledge_base(index_dir: Path, index: Index) -> None:
    manifest = index.manifest
    counts = manifest["counts"]
    left, middle, right = st.columns(3)
    left.metric("Files", counts["files"])
    middle.metric("Pages", counts["pages"])
    right.metric("Chunks", counts["chunks"])
    embedder = manifest["embedder"]
    st.caption(f"Index {index_dir} ({index.generation.name}), embedder {embedder['name']} ({embedder['dimension']} dimensions)")
    if manifest.get("unknown_token_share", 0) > 0.2:
        st.warning(
            f"{manifest['unknown_token_share']:.0%} of the indexed text is unknown to the embedder, so dense search "
            "is weak for it (Chinese under an English model); set RAG_EMBED_MODEL to a multilingual model."
        )
    st.dataframe(
        [
            {"file": f.path, "status": f.status, "pages": f.pages, "chunks": f.chunks,
             "ingested": f.ingested_at, "problem": f.error or ""}
            for f in index.files()
        ],
        use_container_width=True,
    )


def main() -> None:
    st.set_page_config(page_title="rag: your documents", layout="wide")
    index_dir = Path(os.environ.get("RAG_INDEX", "rag-index"))
    st.title("Your documents")
    try:
        index = Index.open(index_dir)
    except IndexNotFoundError as exc:
        st.info(str(exc))
        return
    chat_tab, documents_tab = st.tabs(["Chat", "Documents"])
    with chat_tab:
        chat(index_dir, index)
    with documents_tab:
        knowledge_base(index_dir, index)


main()
