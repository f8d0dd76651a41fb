"""The OpenAI-compatible backend: any server speaking streaming chat completions (vLLM, llama.cpp, Ollama).

Usage, with a vLLM server on port 8000 (``passages`` as :class:`rag.generate.prompt.Passage`)::

    generator = OpenAIServerGenerator("http://127.0.0.1:8000/v1", "Qwen2.5-7B-Instruct")
    "".join(generator.stream(GenerationRequest("How long is the warranty?", passages)))  # 'The warranty lasts two years [1].'
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx

from rag.generate.base import GenerationError, GenerationRequest
from rag.text import estimate_tokens


class OpenAIServerGenerator:
    """Streams ``POST {base_url}/chat/completions``; retries connection failures and 5xx answers (with
    back-off) until the first token arrives; ``api_key``, when given, is sent as a bearer token. Error
    messages never show credentials written into the URL."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0, retries: int = 2,
                 context_window: int = 8192, temperature: float = 0.1) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.context_window = context_window
        self._timeout = httpx.Timeout(timeout, connect=5.0)
        self._retries = retries
        self._temperature = temperature
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._shown = redact_url(self.base_url)

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        yield from self._chat(request.messages, request.max_new_tokens, request.stop.is_set)

    def complete(self, messages: list[dict[str, str]], max_new_tokens: int = 128) -> str:
        return "".join(self._chat(messages, max_new_tokens, lambda: False))

    def _chat(self, messages: list[dict[str, str]], max_tokens: int, stopped) -> Iterator[str]:  # type: ignore[no-untyped-def]
        body = {"model": self.model, "messages": messages, "stream": True, "max_tokens": max_tokens,
                "temperature": self._temperature}
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self._retries + 1):
            try:
                with httpx.stream("POST", url, json=body, headers=self._headers, timeout=self._timeout) as response:
                    if response.status_code >= 500 and attempt < self._retries:
                        time.sleep(0.5 * 2 ** attempt)
                        continue
                    if response.status_code >= 400:
                        detail = response.read().decode(errors="replace").strip().replace("\n", " ")[:200]
                        raise GenerationError(f"LLM server {self._shown}/chat/completions answered HTTP {response.status_code}: "
                                              f"{redact_url(detail)}")
                    for line in response.iter_lines():
                        if stopped():
                            return
                        piece = _delta(line)
                        if piece is None:
                            return
                        if piece:
                            yield piece
                    return
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < self._retries:
                    time.sleep(0.5 * 2 ** attempt)
                    continue
                raise GenerationError(f"cannot reach the LLM server at {self._shown} ({redact_url(str(exc))}); is it running?") from exc
            except httpx.TimeoutException as exc:
                raise GenerationError(f"LLM server {self._shown} timed out ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                raise GenerationError(f"LLM server {self._shown} failed: {redact_url(str(exc))}") from exc


_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact_url(text: str) -> str:
    """``text`` with any user:password written into a URL replaced by ``***``.

    Example:
        >>> redact_url("http://alice:s3cret@llm.local:8000/v1")
        'http://***@llm.local:8000/v1'
    """
    return _CREDENTIALS.sub("***@", text)


def _delta(line: str) -> str | None:
    """The text of one server-sent event line; ``None`` at the end of the stream."""
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    try:
        choice = json.loads(payload)["choices"][0]
    except (ValueError, KeyError, IndexError) as exc:
        raise GenerationError(f"LLM server sent a malformed event: {payload[:120]}") from exc
    return (choice.get("delta") or {}).get("content") or ""
