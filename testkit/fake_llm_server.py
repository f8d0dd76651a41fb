"""A tiny OpenAI-compatible chat server on 127.0.0.1 for tests: streams a scripted reply as SSE."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLMServer:
    """``reply(messages) -> str`` decides the answer; ``failures`` first requests get HTTP 503; each streamed
    piece of 7 characters waits ``delay_s`` (a slow model), and ``stopped`` counts the streams whose client
    went away before the end.

    Example:
        >>> with FakeLLMServer(lambda messages: "Two years [1].") as server:
        ...     server.base_url
        'http://127.0.0.1:PORT/v1'
    """

    def __init__(self, reply: Callable[[list[dict[str, str]]], str], failures: int = 0, delay_s: float = 0.0) -> None:
        self.requests: list[dict] = []
        self.stopped = 0
        owner = self
        self._failures = failures

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append({"path": self.path, "body": body, "authorization": self.headers.get("Authorization")})
                if self.path != "/v1/chat/completions":
                    self.send_error(404)
                    return
                if owner._failures > 0:
                    owner._failures -= 1
                    self.send_error(503, "warming up")
                    return
                text = reply(body["messages"])
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    for start in range(0, len(text), 7):
                        event = {"choices": [{"index": 0, "delta": {"content": text[start : start + 7]}}]}
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(delay_s)
                    self.wfile.write(b"data: [DONE]\n\n")
                except OSError:  # the client stopped reading
                    owner.stopped += 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLMServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
