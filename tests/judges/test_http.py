"""HttpJudge against a real HTTP server on 127.0.0.1 whose behaviour is chosen by the request's model name."""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import numpy as np
import pytest
import soundfile as sf

from wavalign.judges.base import JudgeRequest
from wavalign.judges.http import HttpJudge, JudgeConfigError, load_prompts, parse_score

SECRET = "sk-test-0123456789-do-not-leak"
KEY_ENV = "WAVALIGN_TEST_JUDGE_KEY"


class _Handler(BaseHTTPRequestHandler):
    """Scenarios (by model): good, slow, flaky (500 twice per question), always500, garbage, 401, ratelimit,
    retryafter (429 asking for 0.6 s once)."""

    server: "_Server"

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][1]["content"][0]["text"].splitlines()[0]
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": body, "t": time.monotonic()}
            )
            nth = self.server.seen[(body["model"], question)] = self.server.seen.get((body["model"], question), 0) + 1
        scenario = body["model"]
        if scenario == "slow":
            time.sleep(1.0)
        if scenario == "always500" or (scenario == "flaky" and nth <= 2):
            return self._send(500, {"error": {"message": "upstream overloaded"}})
        if scenario == "ratelimit" and nth == 1:
            return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
        if scenario == "retryafter" and nth == 1:
            return self._send(429, {"error": {"message": "come back later"}}, {"Retry-After": "0.6"})
        if scenario == "401":  # echoes the header back, as some proxies do: the judge must redact it
            return self._send(401, {"error": {"message": f"invalid key: {self.headers.get('Authorization')}"}})
        if scenario == "garbage":
            return self._reply("I think the answer is quite good, maybe a four.")
        time.sleep(random.uniform(0.0, 0.02))  # scramble completion order
        self._reply(f"<justification>fine</justification>\n<score> {self._score(body, question)} </score>")

    @staticmethod
    def _score(body: dict[str, Any], question: str) -> str:
        wanted = re.search(r"score=([\d.]+)", question)
        if wanted:
            return wanted.group(1)
        system = body["messages"][0]["content"]
        return "5" if "Ignore the acoustic quality" in system else "1" if "Ignore correctness" in system else "4"

    def _reply(self, content: str) -> None:
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})

    def _send(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client timed out and hung up
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    lock: threading.Lock
    requests: list[dict[str, Any]]
    seen: dict[tuple[str, str], int]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def count(self, model: str) -> int:
        return sum(r["body"]["model"] == model for r in self.requests)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.lock, srv.requests, srv.seen = threading.Lock(), [], {}
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def make_judge(server: _Server, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, SECRET)

    def make(model: str = "good", **kwargs: Any) -> HttpJudge:
        opts = dict(api_key_env=KEY_ENV, timeout_s=2.0, max_retries=5, backoff_s=0.01, max_backoff_s=0.05)
        opts.update(kwargs)
        return HttpJudge(f"http://127.0.0.1:{server.server_address[1]}/v1", model, **opts)

    return make


def _req(i: int = 0, audio: np.ndarray | None = None, **kw: Any) -> JudgeRequest:
    return JudgeRequest(question=f"q{i} " + kw.pop("q", ""), reply_text=f"answer {i}", reply_audio=audio, **kw)


def test_parse_score() -> None:
    assert parse_score("<justification>ok</justification><score>4</score>") == 4.0
    assert parse_score("<SCORE>\n 3.5 \n</SCORE>") == 3.5
    assert parse_score("format <score>1</score> ... final <score>5</score>") == 5.0
    assert parse_score("<score>7</score>") == 5.0 and parse_score("<score>0</score>") == 1.0
    assert parse_score("<score>four</score>") is None and parse_score("no tag") is None


def test_scores_parse_in_order_and_request_shape(make_judge, server: _Server) -> None:
    judge = make_judge(max_concurrency=8)
    wanted = [1 + (i % 9) * 0.5 for i in range(20)]
    out = judge.score([_req(i, q=f"score={s}") for i, s in enumerate(wanted)])
    assert [s.score for s in out] == wanted and all(s.reliable for s in out)
    assert judge.last_unreliable == 0 and judge.total_scored == 20
    texts = [r["body"]["messages"][1]["content"][0]["text"] for r in server.requests]
    first = server.requests[next(i for i, t in enumerate(texts) if t.startswith("Question: q0 "))]
    assert first["path"] == "/v1/chat/completions"
    body = first["body"]
    assert body["model"] == "good" and body["temperature"] == 0.0
    assert body["messages"][0] == {"role": "system", "content": load_prompts()["holistic"]}
    text = "Question: q0 score=1.0\nTranscript of answer: answer 0"
    assert body["messages"][1]["content"] == [{"type": "text", "text": text}]


def test_audio_is_sent_as_base64_wav(make_judge, server: _Server) -> None:
    wav = np.random.default_rng(0).uniform(-0.9, 0.9, 12345).astype(np.float32)
    make_judge().score([_req(0, wav, sample_rate=24000, style="cheerful", reference="Paris")])
    user = server.requests[-1]["body"]["messages"][1]["content"]
    assert user[0]["text"].endswith("Requested speaking style: cheerful\nReference answer: Paris")
    assert user[1]["type"] == "input_audio" and user[1]["input_audio"]["format"] == "wav"
    decoded, sr = sf.read(io.BytesIO(base64.b64decode(user[1]["input_audio"]["data"])), dtype="float32")
    assert sr == 24000 and decoded.shape == wav.shape
    assert np.abs(decoded - wav).max() < 1e-4
    make_judge(send_audio=False).score([_req(1, wav)])
    assert len(server.requests[-1]["body"]["messages"][1]["content"]) == 1


def test_flaky_and_rate_limited_calls_are_retried(make_judge, server: _Server, caplog) -> None:
    judge = make_judge("flaky")
    with caplog.at_level(logging.WARNING, logger="wavalign.judges.http"):
        out = judge.score([_req(0), _req(1)])
    assert [s.score for s in out] == [4.0, 4.0] and all(s.reliable for s in out)
    assert server.count("flaky") == 6  # 500, 500, ok per question
    assert judge.last_retried == judge.total_retried == 4  # the retries that succeeded are counted and said
    assert "4 failed attempt(s) retried; all 2 calls then scored" in caplog.text
    out = make_judge("ratelimit").score([_req(0)])
    assert out[0].score == 4.0 and server.count("ratelimit") == 2


def test_a_429_waits_as_long_as_its_retry_after_says(make_judge, server: _Server) -> None:
    """Our own backoff here is ~10 ms; the server asks for 0.6 s, and the retry must honour it (up to the cap)."""
    out = make_judge("retryafter", max_backoff_s=5.0).score([_req(0)])
    assert out[0].score == 4.0 and out[0].reliable and server.count("retryafter") == 2
    first, second = (r["t"] for r in server.requests if r["body"]["model"] == "retryafter")
    assert second - first >= 0.55


def test_server_errors_end_as_unreliable_fallback(make_judge, server: _Server, caplog) -> None:
    judge = make_judge("always500", max_retries=2, fallback_score=2.5)
    with caplog.at_level(logging.WARNING, logger="wavalign.judges.http"):
        out = judge.score([_req(0), _req(1), _req(2)])
    assert all(s.score == 2.5 and not s.reliable and s.parts == {"error": 1.0} for s in out)
    assert server.count("always500") == 9 and judge.last_unreliable == 3 and judge.total_unreliable == 3
    assert "HTTP 500" in caplog.text and len(caplog.records) == 1  # one line per distinct failure


def test_timeout_ends_as_unreliable_fallback(make_judge, server: _Server) -> None:
    t0 = time.monotonic()
    out = make_judge("slow", timeout_s=0.2, max_retries=1).score([_req(0), _req(1)])
    assert time.monotonic() - t0 < 1.5
    assert all(not s.reliable and s.score == 2.5 for s in out)
    assert server.count("slow") == 4


def test_garbage_is_retried_then_fallback(make_judge, server: _Server) -> None:
    judge = make_judge("garbage", max_retries=3, fallback_score=3.0)
    out = judge.score([_req(0)])
    assert out[0].score == 3.0 and not out[0].reliable and out[0].parts["error"] == 1.0
    assert server.count("garbage") == 4


def test_401_is_not_retried_and_reported_once(make_judge, server: _Server, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        out = make_judge("401").score([_req(0), _req(1)])
    assert all(not s.reliable for s in out) and server.count("401") == 2  # one attempt each
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "HTTP 401" in errors[0].getMessage() and "2/2" in errors[0].getMessage()


def test_key_reaches_server_but_never_leaks(make_judge, server: _Server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    judge = make_judge()
    judge.score([_req(0)])
    make_judge("401").score([_req(1)])
    make_judge("garbage", max_retries=1).score([_req(2)])
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert "401" in caplog.text and "***" in caplog.text  # the echoed key was redacted
    assert SECRET not in caplog.text
    for text in (repr(judge), str(judge), str(vars(judge))):
        assert SECRET not in text and "Bearer" not in text
    assert SECRET.encode() not in pickle.dumps(judge)
    assert pickle.loads(pickle.dumps(judge)).score([_req(3)])[0].score == 4.0


def test_missing_key_is_a_clear_error(make_judge, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAVALIGN_NO_SUCH_KEY", raising=False)
    with pytest.raises(JudgeConfigError, match="WAVALIGN_NO_SUCH_KEY"):
        make_judge(api_key_env="WAVALIGN_NO_SUCH_KEY")
    judge = make_judge()
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(JudgeConfigError, match=KEY_ENV):
        judge.score([_req(0)])
    assert make_judge(api_key_env="WAVALIGN_NO_SUCH_KEY", allow_no_key=True).score([_req(0)])[0].score == 4.0
    assert "Authorization" not in server.requests[-1]["headers"]


def test_split_mode_combines_two_calls(make_judge, server: _Server) -> None:
    out = make_judge(mode="split").score([_req(0), _req(1)])
    assert [s.score for s in out] == [pytest.approx(0.7 * 5 + 0.3 * 1)] * 2
    assert out[0].parts == {"semantic": 5.0, "acoustic": 1.0} and out[0].reliable
    systems = sorted(r["body"]["messages"][0]["content"] for r in server.requests)
    prompts = load_prompts()
    assert systems == sorted([prompts["semantic"], prompts["acoustic"]] * 2)


def test_prompt_dir_overrides_packaged_prompts(make_judge, server: _Server, tmp_path) -> None:
    (tmp_path / "semantic.txt").write_text("Custom rubric. Ignore the acoustic quality.\n")
    judge = make_judge(mode="semantic", prompt_dir=str(tmp_path))
    assert judge.score([_req(0)])[0].score == 5.0
    assert server.requests[-1]["body"]["messages"][0]["content"] == "Custom rubric. Ignore the acoustic quality."
    assert judge.prompts["holistic"] == load_prompts()["holistic"]
    with pytest.raises(JudgeConfigError, match="mode"):
        make_judge(mode="vibes")


def test_concurrency_is_bounded_per_judge_so_per_rank() -> None:
    """Each training process (rank) builds its own HttpJudge: a shared server sees at most max_concurrency calls
    from each, max_concurrency x ranks in all (the bound docs/distributed.md tells users to divide by)."""
    from chat_server import chat_server

    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> list[str]:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return ["<justification>ok</justification><score>4</score>"]

    requests = [JudgeRequest(question=f"q{i}", reply_text="a") for i in range(8)]
    with chat_server(answer) as server:
        judge = HttpJudge(server.url, "m", allow_no_key=True, max_concurrency=2, send_audio=False)
        assert [s.score for s in judge.score(requests)] == [4.0] * 8
        assert state["peak"] == 2  # one judge: never more than its bound, and the bound is reached
        state["peak"] = 0
        ranks = [HttpJudge(server.url, "m", allow_no_key=True, max_concurrency=2, send_audio=False) for _ in range(2)]
        threads = [threading.Thread(target=j.score, args=(requests,)) for j in ranks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 2 < state["peak"] <= 4  # two ranks: up to twice the bound
