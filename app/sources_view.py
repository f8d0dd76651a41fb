"""Under each answer: citation buttons, the source panel (passage and page image), nearest passages for a
refusal, and the retrieval inspector."""
from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

import streamlit as st
from PIL import Image

from app.i18n import Texts
from app.page_image import PageRenderError, render_page
from app.safe_markdown import escape, marked
from ingest.loaders import IMAGE_TYPES
from rag.documents import LineBox
from rag.generate.prompt import Passage
from rag.pipeline import Answer, Citation

PageLines = Callable[[str, int], tuple[LineBox, ...]]
"""``(path, page) -> the page's OCR lines``: the index's (see :meth:`rag.index.segments.SegmentedStore.page_lines`)."""


MAX_NAME = 28
"""Characters of a file name on a citation button; longer names lose their middle, never the page."""

PAGE_SCRIPT = """<script>
if (!window.parent.ragPage) {
  window.parent.ragPage = true;
  const doc = window.parent.document;
  const scroller = () => doc.querySelector('[data-testid="stAppScrollToBottomContainer"]');
  let follow = true;
  doc.addEventListener("click", (event) => {
    const target = event.target.closest ? event.target : event.target.parentElement;
    const link = target && target.closest('a[href^="#cite-"]');
    if (link) {
      event.preventDefault();
      const button = doc.querySelector(".st-key-" + link.getAttribute("href").slice(1) + " button");
      if (button) button.click();
    }
    follow = Boolean(target && target.closest('[data-testid="stChatInput"]'));
  }, true);
  doc.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.closest && event.target.closest('[data-testid="stChatInput"]')) follow = true;
  }, true);
  doc.addEventListener("wheel", (event) => {
    const box = scroller();
    if (event.deltaY < 0) follow = false;
    else if (box && box.scrollHeight - box.scrollTop - box.clientHeight < 80) follow = true;
  }, {capture: true, passive: true});
  new MutationObserver(() => {
    const box = scroller();
    if (follow && box) box.scrollTop = box.scrollHeight;
  }).observe(doc.body, {childList: true, subtree: true, characterData: true});
}
</script>"""
"""The chat page's behaviour: an answer's inline [n] (a link to ``#cite-TURN-N``) clicks its citation
button, and the view follows a conversation as it grows (from the moment a question is sent until the
reader scrolls up or clicks elsewhere, such as on a citation)."""


def citation_key(turn: int, n: int) -> str:
    return f"cite-{turn}-{n}"


def citation_label(citation: Citation) -> str:
    """``[n] p.3 · name.pdf``, the name shortened in its middle to :data:`MAX_NAME` characters."""
    name = Path(citation.source).name
    if len(name) > MAX_NAME:
        name = f"{name[: MAX_NAME // 2 - 1]}…{name[-(MAX_NAME // 2):]}"
    return f"[{citation.n}] p.{citation.page} · {name}"


def citations(answer: Answer, turn: int, t: Texts, page_lines: PageLines) -> None:
    """One button per citation (hover: the file name and quote); the clicked one opens its source panel below."""
    if answer.refused:
        _nearest(answer.passages, t)
        return
    if not answer.citations:
        return
    columns = st.columns(min(len(answer.citations), 4))
    for i, citation in enumerate(answer.citations):
        columns[i % len(columns)].button(citation_label(citation), key=citation_key(turn, citation.n),
                                         help=escape(f"{Path(citation.source).name}: {citation.quote[:300]}"),
                                         on_click=_toggle_source, args=((turn, citation.n),))
    opened = st.session_state.get("open_source")
    if opened and opened[0] == turn:
        opened_citation = next((c for c in answer.citations if c.n == opened[1]), None)
        passage = next((p for p in answer.passages if opened_citation and p.chunk_id == opened_citation.chunk_id), None)
        if opened_citation is not None and passage is not None:
            source_panel(opened_citation, passage, turn, t, page_lines)


def _toggle_source(wanted: tuple[int, int]) -> None:
    """Open this citation's panel (closing any other), or close it when it is the open one.

    A callback, so it runs before the rerun draws any answer: an earlier answer's panel is never drawn
    in the same run as the click that replaces it.
    """
    st.session_state["open_source"] = None if st.session_state.get("open_source") == wanted else wanted


def source_panel(citation: Citation, passage: Passage, turn: int, t: Texts, page_lines: PageLines) -> None:
    """File, page, the passage with the quoted sentence highlighted and, for a PDF or an image, the page
    image with the quote marked (from the text layer, or from the OCR lines' boxes)."""
    with st.container(border=True, key=f"source-panel-{turn}-{citation.n}"):
        st.markdown("**" + escape(t("source", n=citation.n, file=Path(citation.source).name, page=citation.page)) + "**")
        st.caption(escape(citation.source))
        text_column, page_column = st.columns([2, 3])
        text_column.markdown(marked(passage.text, [citation.quote], "orange"))
        if Path(citation.source).suffix.lower() in (".pdf", *IMAGE_TYPES):
            with page_column:
                _page_image(citation, passage.text, t, page_lines(citation.source, citation.page))


def _page_image(citation: Citation, passage: str, t: Texts, lines: tuple[LineBox, ...]) -> None:
    """The part of the page around the marked passage, and the whole page one click away."""
    path = Path(citation.source)
    try:
        band, page, was_marked = _rendered_page(str(path), path.stat().st_mtime_ns, citation.page, citation.quote, passage, lines)
    except (OSError, PageRenderError) as exc:
        st.caption(escape(t("page_unavailable", reason=exc)))
        return
    st.image(band if was_marked else page, width="stretch")
    if not was_marked:
        st.caption(t("page_not_marked"))
    else:
        with st.expander(t("whole_page", page=citation.page)):
            st.image(page, width="stretch")


@st.cache_resource
def _pdfium_lock() -> threading.Lock:
    """pdfium is not thread-safe and sessions run in threads: one render at a time per server."""
    return threading.Lock()


@st.cache_data(max_entries=64, show_spinner=False)
def _rendered_page(path: str, mtime_ns: int, page: int, quote: str, passage: str,
                   lines: tuple[LineBox, ...]) -> tuple[bytes, bytes, bool]:
    """PNGs of the band around the quote (else the whole passage) and of the whole page, and whether
    anything was marked; ``mtime_ns`` keys the cache."""
    with _pdfium_lock():
        image = render_page(Path(path), page, quote, lines=lines)
        if not image.marked:
            image = render_page(Path(path), page, passage, lines=lines)
    return _png(image.around_passage()), _png(image.image), image.marked


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _nearest(passages: list[Passage], t: Texts) -> None:
    if not passages:
        st.caption(t("nothing_close"))
        return
    st.caption(t("nearest"))
    for passage in passages[:3]:
        with st.container(border=True):
            st.markdown(f"**{escape(Path(passage.source).name)}**, p. {passage.page}")
            st.markdown(escape(passage.text[:400]))


def inspector(answer: Answer, t: Texts) -> None:
    """Every passage retrieved, its score from each ranked list (and which query variant found it), timings."""
    retrieval = answer.retrieval
    if retrieval is None:
        return
    with st.expander(t("inspector")):
        fusion = "-" if retrieval.fusion_ran is None else ("✓" if retrieval.fusion_ran else "✗")
        if retrieval.gate_reason:
            fusion += f" ({retrieval.gate_reason})"
        st.caption(escape(t("inspector_summary", mode=retrieval.mode.value, query=answer.standalone_question,
                              evidence=answer.evidence, weight=retrieval.dense_weight, fusion=fusion)))
        st.dataframe(
            [{"rank": h.rank, "file": Path(h.source).name, "page": h.page, "score": round(h.score, 4),
              "found by": ", ".join(h.found_by), **{k: round(v, 4) for k, v in h.scores.items()},
              "text": h.text[:160]} for h in retrieval.hits],
            width="stretch", hide_index=True,
        )
        if retrieval.variants:
            st.caption(t("variants"))
            st.dataframe([{"variant": v.name, "text": v.text} for v in retrieval.variants], hide_index=True)
        st.caption(t("timings") + ": " + ", ".join(f"{k} {v:.0f}" for k, v in retrieval.timings.items()))
