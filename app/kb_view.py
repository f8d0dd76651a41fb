"""The documents tab: what the knowledge base holds, adding (upload or folder), re-ingesting, deleting."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import streamlit as st

from app import resources
from app.i18n import Texts
from app.safe_markdown import escape, one_line
from app.uploads import UPLOADS, UploadRejected, is_upload, save_upload
from ingest.pipeline import UNKNOWN_TOKEN_WARNING, Ingestor, IngestReport, ProgressCallback
from ingest.watch import describe
from rag.config import OCR_MODES, Settings
from rag.feedback import FeedbackStore, to_jsonl
from rag.index import Index

STAGES = ("files", "ocr", "embedding")
"""The ingest's progress stages, in the order they finish."""


def render(settings: Settings, index: Index | None, t: Texts) -> None:
    _flash()
    if index is not None:
        _summary(settings.index_dir, index, t)
    settings = _add_documents(settings, t)  # with the OCR choice made there
    if index is not None:
        _documents(settings, index, t)
        _feedback_export(settings.index_dir, t)


def _flash() -> None:
    """Messages from the action before the last rerun (an ingest or a delete)."""
    for kind, text in st.session_state.pop("kb-messages", []):
        getattr(st, kind)(text)


def _tell(kind: str, text: str) -> None:
    st.session_state.setdefault("kb-messages", []).append((kind, text))


def _summary(index_dir: Path, index: Index, t: Texts) -> None:
    counts = index.manifest["counts"]
    files, pages, chunks = st.columns(3)
    files.metric(t("files"), counts["files"])
    pages.metric(t("pages"), counts["pages"])
    chunks.metric(t("chunks"), counts["chunks"])
    embedder = index.embedder
    st.caption(escape(t("embedder", index=index_dir, generation=index.generation.name, name=embedder["name"],
                        dimension=embedder["dimension"])))
    share = index.manifest.get("unknown_token_share", 0)
    if share > UNKNOWN_TOKEN_WARNING:
        st.warning(t("unk_warning", share=share))


def _add_documents(settings: Settings, t: Texts) -> Settings:
    """Upload or name a folder, and choose when pages are read by OCR; the settings with that choice."""
    st.subheader(t("add"))
    ocr = st.radio(t("ocr"), OCR_MODES, index=OCR_MODES.index(settings.ocr), key="ocr", horizontal=True,
                   format_func=lambda mode: t(f"ocr_{mode}"))
    settings = replace(settings, ocr=ocr)
    generation = st.session_state.setdefault("upload-generation", 0)
    # no type= filter: Streamlit would refuse other files without naming them; save_upload says why, per file
    uploaded = st.file_uploader(t("upload", limit=settings.max_upload_mb), accept_multiple_files=True,
                                key=f"upload-{generation}")
    if st.button(t("ingest_uploads"), key="ingest-uploads", disabled=not uploaded, type="primary"):
        saved = []
        for item in uploaded or []:
            try:
                saved.append(save_upload(item.name, item.getvalue(), settings.index_dir / UPLOADS, settings.max_upload_mb))
            except (UploadRejected, OSError) as exc:
                _tell("warning", escape(t("rejected", name=item.name, reason=exc)))
        st.session_state["upload-generation"] = generation + 1  # a fresh, empty uploader
        _ingest(settings, saved, t)
    folder_column, ingest_column, watch_column = st.columns([4, 1, 1], vertical_alignment="bottom")
    folder = folder_column.text_input(t("folder"), key="folder", placeholder="/home/me/papers")
    path = Path(folder.strip()).expanduser()
    if ingest_column.button(t("ingest_folder"), key="ingest-folder", disabled=not folder.strip()):
        if path.is_dir():
            _ingest(settings, [path], t)
        else:
            st.error(escape(t("not_a_folder", path=path)))
    if watch_column.button(t("watch_folder"), key="watch-folder", disabled=not folder.strip(), help=t("watch_help")):
        if path.is_dir():
            resources.watched_folders().watch(settings, path)
            _tell("success", escape(t("watching", path=path)))
            st.rerun()
        else:
            st.error(escape(t("not_a_folder", path=path)))
    _watched(settings, t)
    return settings


def _watched(settings: Settings, t: Texts) -> None:
    """The folders kept in sync, each with its last sync and a button to stop."""
    for n, (folder, watcher) in enumerate(resources.watched_folders().of(settings.index_dir)):
        text_column, button_column = st.columns([5, 1], vertical_alignment="center")
        last = watcher.last
        state = t("sync_pending") if last is None else describe(last)
        text_column.caption(escape(t("watched", path=folder, state=state)))
        if button_column.button(t("unwatch"), key=f"unwatch-{n}"):
            resources.watched_folders().unwatch(settings.index_dir, folder)
            st.rerun()


def _ingest(settings: Settings, paths: Sequence[Path], t: Texts, force: bool = False) -> None:
    """Ingest with a progress bar; the outcome is shown after the rerun that shows the new index."""
    if paths:
        bar = st.progress(0.0)
        started: dict[str, float] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if started and STAGES.index(stage) < max(STAGES.index(s) for s in started):
                return  # a late count of an earlier stage (a worker's last file): the bar never goes back
            now = time.monotonic()
            text = t(f"progress_{stage}", done=done, total=total)
            elapsed = now - started.setdefault(stage, now)
            if stage == "embedding" and done and elapsed > 0:
                rate = done / elapsed
                text += t("progress_rate", rate=rate, left=_duration((total - done) / rate))
            bar.progress(done / total if total else 1.0, text=text)

        report = _run_writer(settings, progress, lambda ingestor: ingestor.run(paths, force=force), t)
        resources.warm_in_background(settings)  # the next question finds the new index loaded
        if report is not None:
            _tell("success" if not report.failed else "warning",
                  t("ingested", added=report.added, updated=report.updated, unchanged=report.unchanged,
                    failed=len(report.failed), pages=report.pages, chunks=report.chunks))
            for failure in report.failed:
                _tell("error", escape(t("failed_file", path=Path(failure["path"]).name, reason=failure["reason"])))
    st.rerun()


def _duration(seconds: float) -> str:
    """``42 s`` or ``3 min 05 s``."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _run_writer(settings: Settings, progress: ProgressCallback | None, action: Callable[[Ingestor], IngestReport],
                t: Texts) -> IngestReport | None:
    """Run ``action`` with an ingestor that shares the UI's embedder; a busy or broken index is a message."""
    ingestor = Ingestor(settings, embedders=resources.embedder,
                        progress=False, lock_wait=30.0, on_progress=progress)
    try:
        return action(ingestor)
    except Exception as exc:  # the index stays as it was; say why in one line
        _tell("error", escape(t("busy", error=one_line(exc))))
        return None


def _documents(settings: Settings, index: Index, t: Texts) -> None:
    files = sorted(index.files(), key=lambda f: f.ingested_at or "", reverse=True)  # the newest first
    st.subheader(t("in_index"))
    st.dataframe(
        [{t("col_file"): Path(f.path).name, t("col_status"): f.status, t("pages"): f.pages, t("chunks"): f.chunks,
          t("col_ingested"): f.ingested_at, t("col_problem"): f.error or "", t("col_folder"): str(Path(f.path).parent)}
         for f in files],
        width="stretch", hide_index=True, key="documents",
    )
    chosen = st.multiselect(t("manage"), [f.path for f in files], format_func=lambda p: Path(p).name, key="chosen",
                            placeholder=t("choose"))
    reingest, delete = st.columns(2)
    if reingest.button(t("reingest"), key="reingest", disabled=not chosen, icon=":material/refresh:"):
        _ingest(settings, [Path(p) for p in chosen], t, force=True)
    if delete.button(t("delete"), key="delete", disabled=not chosen, icon=":material/delete:"):
        st.session_state["confirm-delete"] = list(chosen)
    pending = st.session_state.get("confirm-delete")
    if pending:
        st.warning(t("confirm_delete", n=len(pending)))
        yes, no = st.columns(2)
        if yes.button(t("confirm"), key="confirm-delete-yes", type="primary"):
            _delete(settings, pending, t)
        if no.button(t("cancel"), key="confirm-delete-no"):
            st.session_state.pop("confirm-delete")
            st.rerun()


def _delete(settings: Settings, paths: list[str], t: Texts) -> None:
    st.session_state.pop("confirm-delete")
    report = _run_writer(settings, None, lambda ingestor: ingestor.remove(paths), t)
    resources.warm_in_background(settings)
    if report is not None:
        for path in paths:
            if is_upload(Path(path), settings.index_dir):
                Path(path).unlink(missing_ok=True)
        _tell("success", t("deleted", n=report.removed))
    st.session_state.pop("chosen", None)
    st.rerun()


def _feedback_export(index_dir: Path, t: Texts) -> None:
    cases = FeedbackStore(index_dir).cases()
    if cases:
        st.download_button(t("feedback_export", n=len(cases)), to_jsonl(cases),
                           file_name="feedback-cases.jsonl", mime="application/jsonl", key="feedback-export")
