"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests, answering from a script.

Each test queues the replies it wants (status, body or chat content, extra headers, a delay) and
reads back the requests it received. ``/v1/models`` always answers with the configured model list;
each ``/v1/chat/completions`` request takes the next scripted reply, or a 500 once the script is
spent, so a test that asks more often than it planned sees an error rather than a hang.
"""

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message of a chat completion
    body: bytes | None = None  # a raw body instead, for malformed replies
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait this long before answering: longer than the client's timeout is a hang


def chat(content: str) -> Reply:
    return Reply(content=content)


def error(status: int, **headers: str) -> Reply:
    return Reply(status=status, body=json.dumps({"error": {"message": f"scripted {status}"}}).encode(), headers=headers)


def hang(seconds: float) -> Reply:
    return Reply(delay_s=seconds, content='{"diff": {}, "hypothesis": "too late"}')


class ScriptedLLMServer:
    def __init__(self, models: tuple[str, ...] = ("scripted-model",)) -> None:
        self.models = models
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []  # chat completion request bodies, in order
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="llm-server", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def __enter__(self) -> "ScriptedLLMServer":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()  # ends any scripted hang at once
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def next_reply(self) -> Reply:
        try:
            return self.replies.popleft()
        except IndexError:
            return error(500)


def _handler_for(server: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                return self._send(error(404))
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "test"} for name in server.models]
            self._send(Reply(body=json.dumps({"object": "list", "data": data}).encode()))

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            request = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(error(404))
            server.requests.append(request)
            reply = server.next_reply()
            if reply.delay_s and server.stopping.wait(reply.delay_s):
                return
            self._send(reply, request.get("model", ""))

        def _send(self, reply: Reply, model: str = "") -> None:
            body = reply.body if reply.body is not None else _completion(reply.content or "", model)
            try:
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up waiting: that is what a hang test wants
                pass

    return Handler


def _completion(content: str, model: str) -> bytes:
    message = {"role": "assistant", "content": content}
    return json.dumps(
        {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()
