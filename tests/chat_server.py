"""A real chat-completions server on 127.0.0.1 for the official judges: each request's reply comes from `answer`,
a function of the request body returning the choices' contents (a list of strings) or an HTTP error status."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

Answer = Callable[[dict[str, Any]], "list[str] | int"]


class _Handler(BaseHTTPRequestHandler):
    server: "ChatServer"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(body)
        got = self.server.answer(body)
        if isinstance(got, int):
            payload, code = {"error": {"message": "scripted failure"}}, got
        else:
            payload = {
                "choices": [{"index": i, "message": {"role": "assistant", "content": c}} for i, c in enumerate(got)]
            }
            code = 200
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ChatServer(ThreadingHTTPServer):
    def __init__(self, answer: Answer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer, self.requests, self.lock = answer, [], threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def chat_server(answer: Answer) -> Iterator[ChatServer]:
    server = ChatServer(answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def user_text(body: dict[str, Any]) -> str:
    """The text of the request's last user message (a string, or its text parts joined)."""
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content if p["type"] == "text")


def write_prompts(folder: Path) -> Path:
    """Four VStyle-style prompt files (one per category) with upstream's placeholders, in folder."""
    for name in ("acoustic_attributes", "instruction", "role_play", "empathy"):
        text = f"[{name}] Type: {{instruction_type}}\nInstruction: {{input_instruction}}\n"
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
    return folder
