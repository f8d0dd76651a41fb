"""``rag serve``: the knowledge base over HTTP, for the tools people already use.

OpenAI-compatible ``/v1/models`` and ``/v1/chat/completions`` (streamed over SSE or not) answer from the
documents with ``[n]`` markers and a Sources list, and carry structured ``citations``; native ``/api/*``
endpoints return what ``rag search --json`` and ``rag ask --json`` print, and manage the documents. One
:class:`KnowledgeBase` per process holds the retriever and the answer backend, and reopens the index when
an ingest publishes a new generation.

Usage (what ``rag serve`` does)::

    app = create_app(KnowledgeBase(Settings.resolve({"index_dir": "rag-index"})), ApiKeys())
    uvicorn.run(app, host="127.0.0.1", port=8000)
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api_guard import BodyLimit, LoopbackGuard
from app.api_keys import ApiKeys
from app.knowledge_base import KnowledgeBase
from app.uploads import UPLOADS, UploadRejected, is_upload, save_upload
from rag.embed import EmbedderError
from rag.generate.base import GenerationError
from rag.index import IndexLockedError, IndexNotFoundError
from rag.index.generations import live_generation
from rag.pipeline import Answer, AnswerPipeline, Turn
from rag.retrieve import Filters, Mode

log = logging.getLogger("rag.serve")

# request bodies ---------------------------------------------------------------------------------
MAX_QUERY_CHARS = 4_000
"""A search query or a question: longer ones are refused (400), not searched for minutes."""
MAX_MESSAGES = 200
"""Messages in a chat request (and turns in an ask's history)."""
MAX_MESSAGE_CHARS = 32_000
MAX_JSON_BYTES = 8 * 1024 * 1024
"""Any request body but an upload: room for the longest allowed chat, refused (413) before it is read."""


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    mode: Mode = Mode.HYBRID
    k: int = Field(10, ge=1, le=1000)
    paths: list[str] = []
    languages: list[Literal["zh", "en"]] = []
    pages: str | None = None
    window: int = Field(0, ge=0, le=5)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    history: list[tuple[str, str]] = Field([], max_length=MAX_MESSAGES)
    mode: Mode = Mode.FUSION
    k: int = Field(5, ge=1, le=50)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # OpenAI content parts: keep the text ones
            return "\n".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""

    @model_validator(mode="after")
    def _bounded(self) -> ChatMessage:
        if len(self.text()) > MAX_MESSAGE_CHARS:
            raise ValueError(f"a message holds at most {MAX_MESSAGE_CHARS:,} characters")
        return self


class ChatRequest(BaseModel):
    """An OpenAI chat completion request; sampling settings are accepted and left to the backend's defaults."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool = False

    def question_and_history(self) -> tuple[str, list[Turn]]:
        """The last user message, and the earlier user/assistant exchanges (system messages are ignored)."""
        turns = [(m.role, m.text()) for m in self.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1][0] != "user" or not turns[-1][1].strip():
            raise HTTPException(400, "the last message must be a non-empty user message")
        if len(turns[-1][1]) > MAX_QUERY_CHARS:
            raise HTTPException(400, f"the question holds {len(turns[-1][1]):,} characters; at most {MAX_QUERY_CHARS:,} are searched")
        earlier = turns[:-1]
        history: list[Turn] = [
            (text, earlier[i + 1][1].split(SOURCES_HEADING)[0])  # our own earlier answers, without their sources
            for i, (role, text) in enumerate(earlier[:-1]) if role == "user" and earlier[i + 1][0] == "assistant"
        ]
        return turns[-1][1], history


# responses -----------------------------------------------------------------------------------------
def citations_json(answer: Answer) -> list[dict[str, Any]]:
    return [{"n": c.n, "source": c.source, "page": c.page, "quote": c.quote, "chunk_id": c.chunk_id} for c in answer.citations]


SOURCES_HEADING = "\n\nSources:\n"


def sources_block(answer: Answer) -> str:
    """The Sources list that ends every answer's text: ``[n] file, p. N: "quote"``."""
    if not answer.citations:
        return ""
    lines = [f'[{c.n}] {Path(c.source).name}, p. {c.page}: "{" ".join(c.quote.split())}"' for c in answer.citations]
    return SOURCES_HEADING + "\n".join(lines)


def _error(message: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": " ".join(str(message).split()), "type": kind, "code": None}}


def create_app(kb: KnowledgeBase, keys: ApiKeys, cors_origins: list[str] | None = None) -> FastAPI:
    """The FastAPI application; every route needs a key when ``keys`` holds any."""

    def require_key(request: Request) -> None:
        if not keys:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not keys.accepts(token.strip()):
            raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})

    # the generated docs cannot ask for a key: with keys they are off, keyless they stay on loopback
    app = FastAPI(title="rag: your documents over HTTP", version="1", dependencies=[Depends(require_key)],
                  description="Answers from your own documents with citations. OpenAI-compatible chat under /v1, "
                              "native search, answers and document management under /api.",
                  docs_url=None if keys else "/docs", redoc_url=None if keys else "/redoc",
                  openapi_url=None if keys else "/openapi.json")
    app.add_middleware(BodyLimit, upload_path="/api/documents", upload_bytes=(kb.settings.max_upload_mb + 1) * 1024 * 1024,
                       json_bytes=MAX_JSON_BYTES)
    if not keys:
        app.add_middleware(LoopbackGuard, allowed_origins=cors_origins or [])
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
        return JSONResponse(_error(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return JSONResponse(_error(f"{where or 'request'}: {first.get('msg', 'invalid request')}"), status_code=400)

    @app.exception_handler(IndexNotFoundError)
    async def no_index(request: Request, exc: IndexNotFoundError) -> JSONResponse:
        return JSONResponse(_error(str(exc), "index_not_found"), status_code=503)

    @app.exception_handler(GenerationError)
    async def backend_failed(request: Request, exc: GenerationError) -> JSONResponse:
        return JSONResponse(_error(f"the answer backend failed: {exc}", "server_error"), status_code=502)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse(_error(f"internal error ({type(exc).__name__})", "server_error"), status_code=500)

    for router in (openai_routes(kb), native_routes(kb), document_routes(kb)):
        app.include_router(router)
    return app


def openai_routes(kb: KnowledgeBase) -> APIRouter:
    """``/v1``: the knowledge base as an OpenAI model, answering chat completions."""
    router = APIRouter(tags=["OpenAI-compatible"])

    @router.get("/v1/models", summary="The knowledge bases, as OpenAI models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": kb.name, "object": "model", "created": 0, "owned_by": "rag"}]}

    @router.post("/v1/chat/completions", summary="OpenAI chat completion answered from the documents")
    async def chat(body: ChatRequest) -> Any:
        question, history = body.question_and_history()
        pipeline = await run_in_threadpool(kb.pipeline)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if body.stream:
            return StreamingResponse(_sse(kb, pipeline, question, history, completion_id, created),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        answer = await run_in_threadpool(kb.answer, pipeline, question, history)
        return {"id": completion_id, "object": "chat.completion", "created": created, "model": kb.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text + sources_block(answer)},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "citations": citations_json(answer), "refused": answer.refused}

    return router


def native_routes(kb: KnowledgeBase) -> APIRouter:
    """``/api/health``, ``/api/search`` and ``/api/ask``: what ``rag search --json`` and ``rag ask --json`` print."""
    router = APIRouter(tags=["search and answers"])

    @router.get("/api/health", summary="Whether the server is up, and what it serves")
    def health() -> dict[str, Any]:
        generation = live_generation(kb.settings.index_dir)
        return {"status": "ok", "knowledge_base": kb.name, "generation": generation.name if generation else None,
                "llm": kb.settings.llm.split(":", 1)[0], "stopped_streams": kb.stopped_streams}

    @router.post("/api/search", summary="Ranked passages: the `rag search --json` object")
    async def search(body: SearchRequest) -> dict[str, Any]:
        try:
            filters = Filters.parse(tuple(body.paths), tuple(body.languages), body.pages)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc

        def run() -> dict[str, Any]:
            result = kb.retriever().search(body.query, mode=body.mode, k=body.k, filters=filters or None, window=body.window)
            return result.to_json()

        return await run_in_threadpool(run)

    @router.post("/api/ask", summary="A cited answer: the `rag ask --json` object")
    async def ask(body: AskRequest) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return kb.answer(kb.pipeline(body.mode, body.k), body.question, list(body.history)).to_json()

        return await run_in_threadpool(run)

    return router


def document_routes(kb: KnowledgeBase) -> APIRouter:
    """``/api/documents``: list, upload (the UI's upload rules) and remove documents."""
    router = APIRouter(tags=["documents"])

    @router.get("/api/documents", summary="The indexed documents")
    async def documents() -> dict[str, Any]:
        return {"documents": await run_in_threadpool(kb.documents)}

    @router.post("/api/documents", summary="Upload files and ingest them (the UI's upload rules)")
    async def upload(files: list[UploadFile] = File(...)) -> dict[str, Any]:
        limit = kb.settings.max_upload_mb
        saved, rejected = [], []
        for file in files:
            data = await file.read(limit * 1024 * 1024 + 1)
            try:
                saved.append(save_upload(file.filename or "upload", data, kb.settings.index_dir / UPLOADS, limit))
            except UploadRejected as exc:
                rejected.append({"name": file.filename, "reason": str(exc)})
        report = await run_in_threadpool(lambda: kb.ingestor().run(saved).summary()) if saved else None
        kb.warm_in_background()
        return {"saved": [p.name for p in saved], "rejected": rejected, "ingest": report}

    @router.delete("/api/documents/{doc_id}", summary="Remove a document from the index (and an uploaded file from disk)")
    async def delete(doc_id: str) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            matches = [d["source"] for d in kb.documents() if d["id"] == doc_id]
            if not matches:
                raise HTTPException(404, f"no document with id {doc_id}")
            report = kb.ingestor().remove(matches)
            kb.warm_in_background()
            for path in matches:
                if is_upload(Path(path), kb.settings.index_dir):
                    Path(path).unlink(missing_ok=True)
            return {"removed": report.removed, "generation": report.generation}

        try:
            return await run_in_threadpool(run)
        except (IndexLockedError, EmbedderError) as exc:
            raise HTTPException(409, str(exc)) from exc

    return router


async def _sse(kb: KnowledgeBase, pipeline: AnswerPipeline, question: str, history: list[Turn], completion_id: str,
               created: int) -> AsyncIterator[str]:
    """The answer as OpenAI chat.completion.chunk events. Generation runs in a worker thread; when the
    client goes away, the response is cancelled here and the stop signal ends the generation."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    stop = threading.Event()
    done = object()

    def post(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop has closed: nobody reads any more, so the generation stops
            stop.set()

    def produce() -> None:
        try:
            for item in kb.answer_stream(pipeline, question, history, stop):
                post(item)
        except Exception as exc:  # reported to the client as an error event
            post(exc)
        finally:
            post(done)

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": kb.name,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    worker = threading.Thread(target=produce, name="rag-answer", daemon=True)
    worker.start()
    finished = False
    try:
        yield event({"role": "assistant", "content": ""})
        while True:
            item = await queue.get()
            if item is done:
                break
            if isinstance(item, Answer):
                yield event({"content": sources_block(item)})
                yield event({}, "stop", citations=citations_json(item), refused=item.refused)
            elif isinstance(item, Exception):
                message = f"the answer backend failed: {item}" if isinstance(item, GenerationError) else \
                    f"internal error ({type(item).__name__})"
                yield f"data: {json.dumps(_error(message, 'server_error'), ensure_ascii=False)}\n\n"
            else:
                yield event({"content": item})
        finished = True
        yield "data: [DONE]\n\n"
    finally:
        if not finished:
            stop.set()
            kb.stopped_streams += 1
