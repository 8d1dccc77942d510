"""`fit` with HttpJudge as the training judge while the judge server goes down mid-run (real loopback server).

The run must finish: scores after the outage are fallbacks marked unreliable, the gate treats them as uninformative
(pure SFT), their share is logged as judge/unreliable, and the API key never reaches logs, hparams or checkpoints.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import scalars

from wavalign.cli import main

SECRET = "sk-outage-test-0123456789-never-logged"
KEY_ENV = "WAVALIGN_OUTAGE_TEST_KEY"
HEALTHY_REQUESTS = 8  # the first training step: 2 prompts x G = 4


class _OutageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.served = 0
        self.keys: set[str] = set()
        self.down = threading.Event()

    def go_down(self) -> None:
        """Stop listening: later connections are refused, as when a judge host dies."""
        self.shutdown()
        self.server_close()
        self.down.set()


class _Handler(BaseHTTPRequestHandler):
    server: _OutageServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.served += 1
            self.server.keys.add(self.headers.get("Authorization", ""))
            last = self.server.served == HEALTHY_REQUESTS
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "<score>4</score>"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if last:
            threading.Thread(target=self.server.go_down, daemon=True).start()


@pytest.fixture
def outage_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_OutageServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv(KEY_ENV, SECRET)
    srv = _OutageServer()
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield srv
    if not srv.down.is_set():
        srv.go_down()


def test_fit_survives_a_judge_outage_and_never_stores_the_key(outage_server, tmp_path, root, monkeypatch, capsys):
    monkeypatch.chdir(root)
    judge = {
        "class_path": "wavalign.judges.http.HttpJudge",
        "init_args": {
            "base_url": f"http://127.0.0.1:{outage_server.server_address[1]}/v1",
            "model": "judge-model",
            "api_key_env": KEY_ENV,
            "timeout_s": 2.0,
            "max_retries": 1,
            "backoff_s": 0.01,
            "max_backoff_s": 0.02,
        },
    }
    runs = tmp_path / "runs"
    main(
        [
            "fit",
            "--config",
            "configs/debug_interleaved.yaml",
            f"--model.judge={json.dumps(judge)}",
            "--trainer.max_steps=3",
            "--trainer.val_check_interval=3",
            "--trainer.limit_val_batches=1",
            "--trainer.callbacks=[]",
            "--trainer.num_sanity_val_steps=0",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger.init_args.save_dir",
            str(runs),
            "--trainer.logger.init_args.name",
            "outage",
            "--trainer.logger.init_args.version",
            "0",
        ]
    )

    assert outage_server.down.is_set() and outage_server.served == HEALTHY_REQUESTS
    assert outage_server.keys == {f"Bearer {SECRET}"}  # the key did reach the judge
    logs = scalars(runs / "outage")
    unreliable = dict(logs["judge/unreliable"])
    assert unreliable[0] == 0.0 and unreliable[1] == unreliable[2] == 1.0
    lam_raw = dict(logs["gate/lambda_raw"])
    assert lam_raw[1] == lam_raw[2] == 0.0  # all-unreliable groups are uninformative: the gate falls back to SFT
    assert len(logs["loss/total"]) == 3
    # retried attempts, cumulative: none while healthy, then each of a step's 8 calls retried once (max_retries=1)
    assert dict(logs["judge/retried_attempts"]) == {0: 0.0, 1: 8.0, 2: 16.0}

    stored = [p for p in Path(runs).rglob("*") if p.is_file()]
    assert any(p.suffix == ".ckpt" for p in stored) and any(p.name == "hparams.yaml" for p in stored)
    for path in stored:
        assert SECRET.encode() not in path.read_bytes(), f"API key leaked into {path}"
    out = capsys.readouterr()
    assert SECRET not in out.out and SECRET not in out.err


@pytest.mark.fault
def test_a_lasting_outage_stops_the_run_with_a_checkpoint_and_how_to_resume(
    outage_server, tmp_path, root, monkeypatch, capsys
):
    """Two failed steps in a row (the limit set here) end the run: the error names the judge and its last error,
    the interrupt checkpoint is written, the counter is in TensorBoard, and the key is nowhere."""
    from wavalign.callbacks.guards import JudgeOutage

    monkeypatch.chdir(root)
    judge = {
        "class_path": "wavalign.judges.http.HttpJudge",
        "init_args": {
            "base_url": f"http://127.0.0.1:{outage_server.server_address[1]}/v1",
            "model": "judge-model",
            "api_key_env": KEY_ENV,
            "timeout_s": 2.0,
            "max_retries": 1,
            "backoff_s": 0.01,
            "max_backoff_s": 0.02,
        },
    }
    runs = tmp_path / "runs"
    with pytest.raises(JudgeOutage) as stop:
        main(
            [
                "fit",
                "--config",
                "configs/debug_interleaved.yaml",
                f"--model.judge={json.dumps(judge)}",
                "--trainer.max_steps=8",
                "--trainer.limit_val_batches=0",
                "--guards.max_failed_judge_steps=2",
                "--trainer.enable_progress_bar=false",
                "--trainer.logger.init_args.save_dir",
                str(runs),
                "--trainer.logger.init_args.name",
                "outage",
                "--trainer.logger.init_args.version",
                "0",
            ]
        )
    message = str(stop.value)
    assert "HttpJudge(url='http://127.0.0.1" in message and "2 consecutive steps" in message
    assert (
        "last error:" in message and ("Connection" in message or "refused" in message) and "--ckpt_path last" in message
    )
    ckpt = runs / "outage" / "version_0" / "checkpoints" / "on_exception.ckpt"
    assert ckpt.is_file()
    failed = dict(scalars(runs / "outage")["judge/consecutive_failed_steps"])
    assert failed[0] == 0.0 and failed[1] == 1.0 and failed[2] == 2.0 and max(failed) == 2
    for path in (p for p in runs.rglob("*") if p.is_file()):
        assert SECRET.encode() not in path.read_bytes(), f"API key leaked into {path}"
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err + message


def test_a_judge_down_from_the_start_stops_during_the_sanity_validation(tmp_path, root, monkeypatch):
    """Nothing listens on the judge's port: each of the 2 sanity-validation batches (3 of the 6 validation prompts
    each) gets no reliable score, which is 2 failed judge steps, the limit set here, so the run stops before step 1 (and leaves no version folder)."""
    import socket
    import time

    from wavalign.callbacks.guards import JudgeOutage

    with socket.socket() as s:  # a port that was free a moment ago: connections to it are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.chdir(root)
    monkeypatch.setenv(KEY_ENV, SECRET)
    judge = {
        "class_path": "wavalign.judges.http.HttpJudge",
        "init_args": {
            "base_url": f"http://127.0.0.1:{port}/v1",
            "model": "m",
            "api_key_env": KEY_ENV,
            "max_retries": 1,
            "backoff_s": 0.01,
            "max_backoff_s": 0.02,
        },
    }
    started = time.monotonic()
    with pytest.raises(JudgeOutage, match="every score of 2 batches of the sanity validation was unreliable"):
        main(
            [
                "fit",
                "--config",
                "configs/debug_interleaved.yaml",
                f"--model.judge={json.dumps(judge)}",
                "--trainer.max_steps=8",
                "--trainer.num_sanity_val_steps=2",
                "--data.init_args.eval_batch_size=3",
                "--guards.max_failed_judge_steps=2",
                "--trainer.enable_progress_bar=false",
                "--trainer.callbacks=[]",
                "--trainer.logger.init_args.save_dir",
                str(tmp_path / "runs"),
            ]
        )
    assert time.monotonic() - started < 60
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("version_*"))
