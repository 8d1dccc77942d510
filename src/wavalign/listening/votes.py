"""The vote format (one JSON line per rater and trial) and its append-only log, shared by raters and the judge.

A vote names sides, not systems ("a": the reply played first), so the log is as blind as the page; the report maps
sides back through session.json. Each vote is written with one O_APPEND write and fsync'd before the server
acknowledges it: an acknowledged vote survives a killed server or a power cut, and concurrent appends never
interleave inside a line.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wavalign.listening.session import Session

CHOICES = ("a", "b", "tie")
KINDS = ("human", "judge")
_RATER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,63}$")


class VoteError(ValueError):
    """A vote that does not fit the session (unknown trial, criterion or choice, bad rater id)."""


class DuplicateVote(VoteError):
    """This rater already voted on this trial; the first vote stands (a retried request after a lost reply)."""


@dataclass
class Vote:
    session: str
    trial: str
    rater: str
    choices: dict[str, str]  # criterion -> "a" | "b" | "tie"
    kind: str = "human"
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    detail: dict[str, Any] | None = None  # the judge's verdict in each presentation order

    def line(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v is not None}
        return json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"


def check_rater(rater: Any) -> str:
    if not isinstance(rater, str) or not _RATER.match(rater):
        raise VoteError(
            f"rater id must be 1-64 characters (letters, digits and _ . : @ / -, starting with a letter or digit), got {rater!r}"
        )
    return rater


def parse_vote(data: Any, session: Session) -> Vote:
    """A Vote from decoded JSON, checked against the session; VoteError says which field is wrong."""
    if not isinstance(data, dict):
        raise VoteError(f"a vote is a JSON object, got {type(data).__name__}")
    missing = [k for k in ("session", "trial", "rater", "choices") if k not in data]
    if missing:
        raise VoteError(f"missing field(s) {missing}")
    if data["session"] != session.id:
        raise VoteError(f"vote of session {data['session']!r}, not of this session {session.id!r} ({session.root})")
    if not isinstance(data["trial"], str) or not session.has_trial(data["trial"]):
        raise VoteError(f"unknown trial {data['trial']!r}")
    choices = data["choices"]
    if not isinstance(choices, dict) or sorted(choices) != sorted(session.criteria):
        raise VoteError(f"choices must answer exactly the criteria {session.criteria}, got {choices!r}")
    bad = {k: v for k, v in choices.items() if v not in CHOICES}
    if bad:
        raise VoteError(f"choices must be one of {CHOICES}, got {bad}")
    kind = data.get("kind", "human")
    if kind not in KINDS:
        raise VoteError(f"kind must be one of {KINDS}, got {kind!r}")
    extra = set(data) - {"session", "trial", "rater", "choices", "kind", "time", "detail"}
    if extra:
        raise VoteError(f"unknown field(s) {sorted(extra)}")
    vote = Vote(data["session"], data["trial"], check_rater(data["rater"]), dict(choices), kind)
    vote.time = str(data.get("time", vote.time))
    vote.detail = data.get("detail")
    return vote


def read_votes(path: str | Path, session: Session) -> list[Vote]:
    """Every vote in a votes file; a malformed line, a vote of another session or a second vote of one rater on
    one trial fails naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"votes file {path} does not exist")
    votes, seen = [], {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                vote = parse_vote(json.loads(line), session)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not a JSON line ({e})") from None
            except VoteError as e:
                hint = " (is this the votes file of another session?)" if "not of this session" in str(e) else ""
                raise ValueError(f"{path}:{lineno}: {e}{hint}") from None
            key = (vote.rater, vote.trial)
            if key in seen:
                raise ValueError(
                    f"{path}:{lineno}: rater {vote.rater!r} voted on {vote.trial} already (line {seen[key]})"
                )
            seen[key] = lineno
            votes.append(vote)
    return votes


class VoteLog:
    """The append-only votes file of one session: existing votes are checked on opening, each new vote is durable
    (written and fsync'd) when append returns. Thread-safe."""

    def __init__(self, path: str | Path, session: Session) -> None:
        self.path, self.session = Path(path), session
        self.votes = read_votes(self.path, session) if self.path.exists() else []
        self._done = {(v.rater, v.trial) for v in self.votes}
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            raise ValueError(f"{self.path}: the last line has no newline (a torn write?); fix or remove it first")

    def done(self, rater: str) -> set[str]:
        """The trials this rater has voted on."""
        with self._lock:
            return {t for r, t in self._done if r == rater}

    def append(self, vote: Vote) -> None:
        """Write one vote durably; DuplicateVote when this rater already voted on the trial (nothing written)."""
        line = vote.line().encode("utf-8")
        with self._lock:
            if (vote.rater, vote.trial) in self._done:
                raise DuplicateVote(f"rater {vote.rater!r} already voted on {vote.trial}")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(f"{self.path}: short write ({written} of {len(line)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)
            self._done.add((vote.rater, vote.trial))
            self.votes.append(vote)
