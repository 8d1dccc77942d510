"""`wavalign listening serve SESSION_DIR`: the rating page and its small JSON API on 127.0.0.1 (aiohttp).

Routes: GET / (the page), GET /api/trials?rater=ID (this rater's trials, in their own order, and which are done),
GET /audio/NAME (the session's opaquely named copies), POST /api/vote. A vote is acknowledged (HTTP 200) only
after VoteLog has fsync'd it; several raters may vote at once under their own ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path
from typing import Any, Sequence

from aiohttp import web

from wavalign.listening.page import PAGE
from wavalign.listening.session import Session, Trial, load_session, rater_order
from wavalign.listening.votes import DuplicateVote, VoteError, VoteLog, check_rater, parse_vote

_AUDIO_NAME = re.compile(r"^[0-9a-f]{16}\.[a-z0-9]{1,5}$")
SESSION_KEY = web.AppKey("session", Session)
LOG_KEY = web.AppKey("log", VoteLog)


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _served_trial(trial: Trial, show_text: bool) -> dict[str, Any]:
    """What the page gets of a trial: no system index, no folder, audio by opaque name only."""

    def side(s) -> dict[str, Any]:
        return {
            "audio": f"/audio/{s.audio}" if s.audio else None,
            "text": s.text if show_text or not s.audio else None,
        }

    return {
        "id": trial.id,
        "question": trial.question,
        "question_audio": f"/audio/{trial.question_audio}" if trial.question_audio else None,
        "a": side(trial.a),
        "b": side(trial.b),
    }


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})


async def _trials(request: web.Request) -> web.Response:
    session, log = request.app[SESSION_KEY], request.app[LOG_KEY]
    try:
        rater = check_rater(request.query.get("rater", ""))
    except VoteError as e:
        return _error(400, str(e))
    return web.json_response(
        {
            "criteria": session.criteria,
            "trials": [_served_trial(t, session.show_text) for t in rater_order(session, rater)],
            "done": sorted(log.done(rater)),
        },
        headers={"Cache-Control": "no-store"},
    )


async def _audio(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = request.app[SESSION_KEY].audio_dir / name
    if not _AUDIO_NAME.match(name) or not path.is_file():
        return _error(404, "no such audio")
    return web.FileResponse(path)


async def _vote(request: web.Request) -> web.Response:
    session, log = request.app[SESSION_KEY], request.app[LOG_KEY]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "the body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "the body is not a JSON object")
    try:
        vote = parse_vote({**body, "session": session.id, "kind": "human"}, session)
        log.append(vote)  # durable when this returns
    except DuplicateVote as e:
        return _error(409, str(e), duplicate=True)
    except VoteError as e:
        return _error(400, str(e))
    return web.json_response({"ok": True, "done": len(log.done(vote.rater)), "total": len(session.trials)})


def make_app(session_dir: str | Path, votes: str | Path | None = None) -> web.Application:
    """The aiohttp application over a built session; votes default to SESSION_DIR/votes.jsonl (checked now, so
    a foreign or damaged file fails before anyone rates)."""
    session = load_session(session_dir)
    app = web.Application(client_max_size=64 * 1024)
    app[SESSION_KEY] = session
    app[LOG_KEY] = VoteLog(Path(votes) if votes else session.root / "votes.jsonl", session)
    app.router.add_get("/", _page)
    app.router.add_get("/api/trials", _trials)
    app.router.add_get("/audio/{name}", _audio)
    app.router.add_post("/api/vote", _vote)
    return app


async def serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    log = app[LOG_KEY]
    print(
        f"listening: http://{host}:{bound}/ ({len(app[SESSION_KEY].trials)} trials; votes: {log.path}, "
        f"{len(log.votes)} so far). Ctrl-C stops; every acknowledged vote is already on disk.",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wavalign listening serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("session_dir", help="a folder made by `wavalign listening build`")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: this machine only)")
    parser.add_argument("--votes", default=None, help="votes file (default: SESSION_DIR/votes.jsonl)")
    args = parser.parse_args(argv)
    app = make_app(args.session_dir, args.votes)
    try:
        asyncio.run(serve(app, args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0
