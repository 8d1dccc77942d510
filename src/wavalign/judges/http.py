"""An audio-capable LLM judge behind an OpenAI-compatible chat-completions API (GPT-4o-audio, Gemini's OpenAI
endpoint, a local vLLM server, ...), as in the paper: the judge reads the question and the answer's transcript,
hears the answer as a base64 WAV, and writes <justification>...</justification><score>1-5</score>.

The transport is the standard library (urllib + a thread pool) so that the judge adds no dependency. The API key is
read from the environment at call time and never kept on the object, so it cannot reach repr, hparams, pickles or
logs; only the *name* of the variable is configuration.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import soundfile as sf

from wavalign.judges.base import Judge, JudgeRequest, JudgeScore, clip_score

logger = logging.getLogger(__name__)

MODES = ("holistic", "semantic", "acoustic", "split")
PROMPT_NAMES = ("holistic", "semantic", "acoustic")
# Integers or decimals, whitespace allowed; the last tag wins because models sometimes restate the format first.
_SCORE_TAG = re.compile(r"<score>\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*</score>", re.IGNORECASE)
_JUSTIFICATION = re.compile(r"<justification>(.*?)</justification>", re.IGNORECASE | re.DOTALL)
T = TypeVar("T")
_RETRY_COUNT_LOCK = threading.Lock()  # module-level: a judge must stay picklable
_JITTER = random.Random()  # private, so seed_everything does not give every rank the same retry schedule


class JudgeConfigError(RuntimeError):
    """A configuration problem (missing key, bad mode): raised, unlike per-request failures, which become
    unreliable fallback scores."""


def parse_score(content: str) -> float | None:
    """The last <score>x</score> in a judge reply, clipped into [1, 5]; None when there is none."""
    found = _SCORE_TAG.findall(content)
    return clip_score(float(found[-1])) if found else None


def wav_base64(audio: np.ndarray, sample_rate: int) -> str:
    """Mono float waveform -> base64 of a 16-bit PCM WAV file, the format the chat APIs accept as input_audio."""
    wav = np.squeeze(np.asarray(audio, dtype=np.float32))
    if wav.ndim != 1:
        raise ValueError(f"reply_audio must be mono (1-D), got shape {np.shape(audio)}")
    wav = np.clip(np.nan_to_num(wav), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, wav, int(sample_rate), format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def load_prompts(prompt_dir: str | None = None) -> dict[str, str]:
    """The packaged prompts, each replaced by `<prompt_dir>/<name>.txt` where that file exists, so a run can
    tune the judge's instructions without editing the package."""
    packaged = resources.files("wavalign.judges") / "prompts"
    prompts = {name: (packaged / f"{name}.txt").read_text(encoding="utf-8").strip() for name in PROMPT_NAMES}
    if prompt_dir is not None:
        folder = Path(prompt_dir).expanduser()
        if not folder.is_dir():
            raise JudgeConfigError(f"prompt_dir {str(folder)!r} is not a folder")
        for name in PROMPT_NAMES:
            if (folder / f"{name}.txt").is_file():
                prompts[name] = (folder / f"{name}.txt").read_text(encoding="utf-8").strip()
    return prompts


class HttpJudge(Judge):
    """Scores replies with an LLM judge over HTTP, concurrently and in order.

    Modes: holistic (one call, default), semantic or acoustic (one call with that prompt), split (two calls,
    score = semantic_weight * semantic + (1 - semantic_weight) * acoustic). Connection errors, timeouts, HTTP 429
    and 5xx and replies without a score are retried up to `max_retries` times with capped exponential backoff and
    jitter; other 4xx are not retried. A call that still fails scores `fallback_score`, reliable=False, so that one
    bad request never stops training. `last_unreliable` / `total_unreliable` / `total_scored` count them for logs.

    Concurrency is bounded per process: at most `max_concurrency` calls are in flight from one judge (retries wait
    inside their slot). Under multi-process training (configs/strategies/) every rank builds its own judge and scores
    only its own groups, so a shared judge server sees up to max_concurrency x processes (devices x nodes) calls at
    once: set max_concurrency to the server's budget divided by the process count.

    Args:
        base_url: The API's base URL (e.g. https://api.openai.com/v1, or a local vLLM server's); /chat/completions
            is appended unless it is already there.
        model: The judge model's name as the server knows it (e.g. gpt-4o-audio-preview).
        api_key_env: Name of the environment variable that holds the API key (never the key itself: it is read at
            call time and never stored).
        mode: "holistic" (one call, default), "semantic" or "acoustic" (one call with that prompt), or "split" (two
            calls, score = semantic_weight * semantic + (1 - semantic_weight) * acoustic).
        prompt_dir: Folder whose holistic.txt / semantic.txt / acoustic.txt replace the packaged prompts of the same
            name, to tune the judge's instructions without editing the package; None uses the packaged ones.
        timeout_s: Seconds one HTTP call may take before it counts as failed and is retried, > 0.
        max_retries: Retries of a failed call (connection error, timeout, HTTP 429 or 5xx, no score in the reply),
            >= 0; other 4xx are not retried.
        backoff_s: Seconds before the first retry; each further retry waits twice as long, with jitter.
        max_backoff_s: Longest wait between retries in seconds (a server's Retry-After is honoured up to this).
        max_concurrency: Most calls in flight at once from this judge in one process, >= 1; divide the server's
            budget by the number of training processes.
        fallback_score: Score (1-5) of a reply whose call still fails after the retries, marked unreliable so that
            the gate and the advantages ignore it.
        send_audio: Send the reply's audio as a base64 WAV; False sends the transcript only (text-only judges).
        temperature: The judge model's sampling temperature; 0 gives the most repeatable scores.
        semantic_weight: Weight of the semantic score in "split" mode, in [0, 1] (paper: 0.7); ignored otherwise.
        include_context: Tell the judge the requested speaking style and the reference answer where a task has
            them; False shows only the question and the reply.
        allow_no_key: Allow an unset api_key_env (a local server that needs no key); otherwise a missing key fails
            at start-up.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        mode: str = "holistic",
        prompt_dir: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_concurrency: int = 8,
        fallback_score: float = 2.5,
        send_audio: bool = True,
        temperature: float = 0.0,
        semantic_weight: float = 0.7,
        include_context: bool = True,
        allow_no_key: bool = False,
    ) -> None:
        if mode not in MODES:
            raise JudgeConfigError(f"mode must be one of {MODES}, got {mode!r}")
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0 or not 0.0 <= semantic_weight <= 1.0:
            raise JudgeConfigError(
                "need max_concurrency >= 1, max_retries >= 0, timeout_s > 0 and semantic_weight in [0, 1]"
            )
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.mode = mode
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_concurrency = int(max_concurrency)
        self.fallback_score = float(fallback_score)
        self.send_audio = bool(send_audio)
        self.temperature = float(temperature)
        self.semantic_weight = float(semantic_weight)
        self.include_context = bool(include_context)
        self.allow_no_key = bool(allow_no_key)
        self.prompts = load_prompts(prompt_dir)
        self.last_unreliable = 0
        self.total_unreliable = 0
        self.total_scored = 0
        # Failed attempts that were retried (whether the retry then scored or not): an outage that the retries
        # absorb is otherwise invisible. Logged per batch, and as judge/retried_attempts by RunGuards.
        self.last_retried = 0
        self.total_retried = 0
        self.api_key()  # fail at construction, before a policy is loaded, rather than at the first reward

    def __repr__(self) -> str:
        return (
            f"HttpJudge(url={self.url!r}, model={self.model!r}, mode={self.mode!r}, api_key_env={self.api_key_env!r})"
        )

    def api_key(self) -> str | None:
        """The key, read from the environment now (never stored); None for a keyless server when allowed."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            return key
        if self.allow_no_key:
            return None
        raise JudgeConfigError(
            f"HttpJudge: environment variable {self.api_key_env!r} (api_key_env) is not set; export the API key "
            "in it, or pass allow_no_key=True for a server that needs no key"
        )

    # ----------------------------------------------------------------------------------------------- scoring

    def score(self, requests: Sequence[JudgeRequest]) -> list[JudgeScore]:
        requests = list(requests)
        if not requests:
            return []
        key = self.api_key()  # read now, so a rotated key is picked up; passed down, never stored
        modes = ("semantic", "acoustic") if self.mode == "split" else (self.mode,)
        contents = [self._user_content(r) for r in requests]
        jobs = [(content, m) for content in contents for m in modes]
        retried_before = self.total_retried
        with ThreadPoolExecutor(min(self.max_concurrency, len(jobs)), thread_name_prefix="http-judge") as pool:
            outcomes = list(pool.map(lambda job: self._call(job[0], job[1], key), jobs))
        self.last_retried = self.total_retried - retried_before

        scores: list[JudgeScore] = []
        errors: Counter[str] = Counter()
        for i in range(len(requests)):
            got = outcomes[i * len(modes) : (i + 1) * len(modes)]
            parts = {m: s for m, (s, _) in zip(modes, got) if s is not None}
            failed = [e for _, e in got if e is not None]
            errors.update(failed)
            if len(parts) < len(modes):
                scores.append(
                    JudgeScore(self.fallback_score, reliable=False, parts={**parts, "error": 1.0}, error=failed[0])
                )
            elif self.mode == "split":
                w = self.semantic_weight
                total = w * parts["semantic"] + (1.0 - w) * parts["acoustic"]
                scores.append(JudgeScore(clip_score(total), parts=parts))
            else:
                scores.append(JudgeScore(parts[self.mode], parts=parts))

        self.last_unreliable = sum(not s.reliable for s in scores)
        self.total_unreliable += self.last_unreliable
        self.total_scored += len(scores)
        if self.last_retried and not errors:
            logger.warning(
                "%r: %d failed attempt(s) retried; all %d calls then scored", self, self.last_retried, len(jobs)
            )
        for message, count in errors.most_common(3):  # one line per distinct failure, not one per request
            level = logging.ERROR if message.startswith("not retried") else logging.WARNING
            logger.log(
                level,
                "%r: %d/%d calls failed (scored %s, unreliable): %s",
                self,
                count,
                len(jobs),
                self.fallback_score,
                message,
            )
        return scores

    def _user_content(self, req: JudgeRequest) -> list[dict[str, Any]]:
        lines = [f"Question: {req.question}", f"Transcript of answer: {req.reply_text}"]
        if self.include_context and req.style:
            lines.append(f"Requested speaking style: {req.style}")
        if self.include_context and req.reference:
            lines.append(f"Reference answer: {req.reference}")
        content: list[dict[str, Any]] = [{"type": "text", "text": "\n".join(lines)}]
        if self.send_audio and req.reply_audio is not None and np.size(req.reply_audio) > 0:
            data = wav_base64(req.reply_audio, req.sample_rate)
            content.append({"type": "input_audio", "input_audio": {"data": data, "format": "wav"}})
        return content

    def _call(self, content: list[dict[str, Any]], mode: str, key: str | None) -> tuple[float | None, str | None]:
        """One judged reply with retries -> (score, None) or (None, why it failed). Never raises: a failure here
        must cost one unreliable reward, not the run."""
        score, error = self.ask(self.prompts[mode], content, parse_score, key)
        if score is not None and logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s score %.2f", mode, score)
        return score, error

    def ask(
        self, system: str, content: list[dict[str, Any]], parse: Callable[[str], T | None], key: str | None
    ) -> tuple[T | None, str | None]:
        """One chat call with this judge's retries -> (parse(reply), None) or (None, why it failed); a reply that
        `parse` maps to None is retried like a failed call. Shared with other protocols over the same endpoint
        (wavalign.listening.pairwise_judge), so they get the same transport, key handling and backoff."""
        payload = {
            "model": self.model,
            "temperature": self.temperature,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": content}],
        }
        body = json.dumps(payload).encode("utf-8")
        error = "no attempt made"
        retry_after: float | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                with _RETRY_COUNT_LOCK:  # the calls of a batch run on a thread pool
                    self.total_retried += 1
                time.sleep(self._delay(attempt, retry_after))
                retry_after = None
            try:
                reply = self._post(body, key)
            except urllib.error.HTTPError as e:
                error = f"HTTP {e.code} {e.reason} from {self.url}: {_snippet(e)}"
                if e.code != 429 and not 500 <= e.code < 600:
                    return None, _redact(f"not retried: {error} (check base_url, model and ${self.api_key_env})", key)
                retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
                continue
            except (OSError, http.client.HTTPException, ValueError) as e:  # connection, timeout, malformed JSON
                error = f"{type(e).__name__}: {e}"
                continue
            except Exception as e:  # noqa: BLE001 - the contract is one answer per request, whatever happens
                logger.exception("%r: unexpected error while judging", self)
                return None, _redact(f"{type(e).__name__}: {e}", key)
            parsed = parse(reply)
            if parsed is not None:
                if logger.isEnabledFor(logging.DEBUG):
                    why = _JUSTIFICATION.search(reply)
                    logger.debug("judge reply: %s", (why.group(1).strip() if why else reply)[:500])
                return parsed, None
            error = f"no answer in the expected format in the reply: {reply[:200]!r}"
            logger.debug("%r attempt %d: %s", self, attempt + 1, _redact(error, key))
        return None, _redact(f"after {self.max_retries + 1} attempts: {error}", key)

    def _post(self, body: bytes, key: str | None) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            raw = resp.read()
        try:
            content = json.loads(raw)["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"unexpected response shape: {raw[:200]!r}") from e
        if isinstance(content, list):  # some servers return content parts rather than one string
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise ValueError(f"message content is {type(content).__name__}, not text")
        return content

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Capped exponential backoff with jitter, so concurrent workers and ranks do not retry in lockstep."""
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * _JITTER.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_s))
        return delay


def _snippet(err: urllib.error.HTTPError, limit: int = 300) -> str:
    try:
        return err.read(limit).decode("utf-8", "replace").strip() or "(empty body)"
    except Exception:  # noqa: BLE001 - the body is only for the log line
        return "(unreadable body)"
    finally:
        err.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None


def _redact(text: str, key: str | None) -> str:
    """Belt and braces: a server that echoes the key in an error body must not put it in our logs."""
    return text.replace(key, "***") if key else text
