"""An OpenAI-compatible chat-completions server for the tests, on 127.0.0.1, serving scripted
judgements: a policy function maps the request's messages to the reply text. It can answer the
first requests with 429/500, delay every answer (to observe concurrency) and check the API key.
Written for this project's tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JudgeServer:
    def __init__(self, policy: Callable[[list[dict]], str], fail_first: tuple[int, ...] = (), delay_s: float = 0.0,
                 api_key: str | None = "test-key"):
        self.policy = policy
        self.fail_first = list(fail_first)
        self.delay_s = delay_s
        self.api_key = api_key
        self.requests: list[dict] = []
        """Every request body received, failed ones included."""
        self.statuses: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def answered(self) -> int:
        return self.statuses.count(200)

    def __enter__(self) -> JudgeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)
                with server._lock:
                    server.statuses.append(status)

            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with server._lock:
                    server.requests.append(request)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    failure = server.fail_first.pop(0) if server.fail_first else None
                try:
                    time.sleep(server.delay_s)
                    if self.path.rstrip("/") != "/v1/chat/completions":
                        return self._send(404, {"error": {"message": f"no route {self.path}"}})
                    if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                        return self._send(401, {"error": {"message": "invalid api key"}})
                    if failure is not None:
                        # retry-after-ms keeps the client's backoff short in tests
                        return self._send(failure, {"error": {"message": f"scripted {failure}"}}, {"retry-after-ms": "5"})
                    content = server.policy(request["messages"])
                    self._send(200, {
                        "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": int(time.time()),
                        "model": request["model"],
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    })
                finally:
                    with server._lock:
                        server.in_flight -= 1

        return Handler


def answers_of(messages: list[dict]) -> dict[str, str]:
    """The question and answers a judge prompt (conf/judge_prompts/*_v1.yaml) carries."""
    user = next(m["content"] for m in messages if m["role"] == "user")

    def between(start: str, end: str) -> str | None:
        if start not in user:
            return None
        return user.split(start, 1)[1].split(end, 1)[0].strip()

    return {"question": between("[User request]", "[Response"), "a": between("[Response A]", "[End of response A]"),
            "b": between("[Response B]", "[End of response B]"), "answer": between("[Response]", "[End of response]")}
