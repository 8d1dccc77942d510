"""`wavalign listening judge SESSION_DIR`: the listening test's protocol run by an LLM judge over HTTP.

For every trial the judge hears both replies twice, once in each order, and names the better one per criterion
(or a tie). LLM judges favour a position; asking both orders cancels that: a side wins a criterion only when it
wins in both orders, anything else is a tie. Verdicts are written as votes of rater `judge:<model>` (kind
"judge") in the raters' format, so the report compares judge and humans on the same trials. Transport, retries
and the API key (read from the environment variable named by --api_key_env) are HttpJudge's.
"""

from __future__ import annotations

import argparse
import base64
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from wavalign.judges.http import HttpJudge
from wavalign.listening.session import Session, Side, Trial, load_session
from wavalign.listening.votes import Vote, VoteLog

DESCRIPTIONS = {
    "helpfulness": "does the reply answer the prompt correctly, completely and usefully?",
    "naturalness": "does the speech sound natural and fluent, like a person talking?",
    "overall": "all things considered, which reply would a user rather receive?",
}
ORDERS = {"ab": ("a", "b"), "ba": ("b", "a")}  # which side is shown as Reply 1 and as Reply 2


def system_prompt(criteria: Sequence[str]) -> str:
    lines = [
        "You compare two spoken replies to the same user prompt. You get the prompt, the transcript of each reply "
        "and, where available, each reply's audio (Reply 1, then Reply 2). For each criterion, say which reply is "
        "better: 1, 2, or tie when neither is.",
        "",
        "Criteria:",
    ]
    lines += [f"- {c}: {DESCRIPTIONS.get(c, 'judge the replies on this criterion')}" for c in criteria]
    example = "".join(f"<{c}>1</{c}>" for c in criteria)
    lines += ["", f"Write a short <justification>...</justification>, then one tag per criterion, e.g. {example}."]
    return "\n".join(lines)


def parse_verdict(reply: str, criteria: Sequence[str]) -> dict[str, str] | None:
    """criterion -> "1" | "2" | "tie" from the judge's tags (the last tag of each wins); None when one is missing."""
    out = {}
    for c in criteria:
        found = re.findall(rf"<{c}>\s*(1|2|tie)\s*</{c}>", reply, flags=re.IGNORECASE)
        if not found:
            return None
        out[c] = found[-1].lower()
    return out


def combine(ab: dict[str, str], ba: dict[str, str]) -> dict[str, str]:
    """Per criterion, the side that won in both orders, else "tie" (verdicts already mapped to sides)."""
    return {c: ab[c] if ab[c] == ba[c] else "tie" for c in ab}


def to_sides(verdict: dict[str, str], order: str) -> dict[str, str]:
    first, second = ORDERS[order]
    return {c: {"1": first, "2": second, "tie": "tie"}[v] for c, v in verdict.items()}


def _audio_part(session: Session, side: Side) -> dict[str, Any] | None:
    if not side.audio:
        return None
    data = base64.b64encode((session.audio_dir / side.audio).read_bytes()).decode("ascii")
    return {"type": "input_audio", "input_audio": {"data": data, "format": Path(side.audio).suffix.lstrip(".")}}


def user_content(session: Session, trial: Trial, order: str, send_audio: bool) -> list[dict[str, Any]]:
    first, second = (getattr(trial, s) for s in ORDERS[order])
    text = f"Prompt: {trial.question}\nReply 1 transcript: {first.text}\nReply 2 transcript: {second.text}"
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if send_audio:
        for n, side in ((1, first), (2, second)):
            part = _audio_part(session, side)
            if part is not None:
                content += [{"type": "text", "text": f"Reply {n} audio:"}, part]
    return content


def judge_session(
    session: Session, judge: HttpJudge, votes: VoteLog, send_audio: bool = True, limit: int | None = None
) -> tuple[int, list[str]]:
    """Judge every trial this judge has not voted on yet (a rerun resumes); (votes written, failures)."""
    rater = f"judge:{re.sub(r'[^A-Za-z0-9_.:@/-]', '-', judge.model)}"[:64]
    todo = [t for t in session.trials if t.id not in votes.done(rater)][:limit]
    key = judge.api_key()
    system = system_prompt(session.criteria)

    def one(trial: Trial) -> str | None:
        got = {}
        for order in ORDERS:
            content = user_content(session, trial, order, send_audio)
            verdict, error = judge.ask(system, content, lambda r: parse_verdict(r, session.criteria), key)
            if verdict is None:
                return f"{trial.id} ({order}): {error}"
            got[order] = to_sides(verdict, order)
        votes.append(Vote(session.id, trial.id, rater, combine(got["ab"], got["ba"]), kind="judge", detail=got))
        return None

    with ThreadPoolExecutor(max(1, min(judge.max_concurrency, len(todo)))) as pool:
        failures = [f for f in pool.map(one, todo) if f is not None]
    return len(todo) - len(failures), failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wavalign listening judge", description=__doc__.split("\n\n")[0])
    parser.add_argument("session_dir", help="a folder made by `wavalign listening build`")
    parser.add_argument("--base_url", required=True, help="OpenAI-compatible API base URL (…/v1)")
    parser.add_argument("--model", required=True, help="the judge model's name on that server")
    parser.add_argument("--api_key_env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    parser.add_argument("--allow_no_key", action="store_true", help="the server needs no key")
    parser.add_argument("--votes", default=None, help="judge votes file (default: SESSION_DIR/judge_votes.jsonl)")
    parser.add_argument("--text_only", action="store_true", help="send transcripts only, no audio")
    parser.add_argument("--max_concurrency", type=int, default=4, help="calls in flight at once")
    parser.add_argument("--max_retries", type=int, default=3, help="retries of a failed call")
    parser.add_argument("--timeout_s", type=float, default=60.0, help="seconds per call")
    parser.add_argument("--limit", type=int, default=None, help="judge at most this many trials (a trial run)")
    args = parser.parse_args(argv)
    session = load_session(args.session_dir)
    judge = HttpJudge(
        args.base_url,
        args.model,
        api_key_env=args.api_key_env,
        allow_no_key=args.allow_no_key,
        max_concurrency=args.max_concurrency,
        max_retries=args.max_retries,
        timeout_s=args.timeout_s,
    )
    log = VoteLog(Path(args.votes) if args.votes else session.root / "judge_votes.jsonl", session)
    written, failures = judge_session(session, judge, log, send_audio=not args.text_only, limit=args.limit)
    print(f"judge: {written} trials judged ({len(log.votes)} in {log.path}); {len(failures)} failed")
    for line in failures[:5]:
        print(f"  failed: {line}")
    return 1 if failures else 0
