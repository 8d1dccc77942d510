"""The LLM judges of the official evaluators, over an OpenAI-compatible chat-completions API (our HTTP transport).

- `VoiceBenchJudge`: VoiceBench's api_judge.py. Open-ended subsets (alpacaeval*, commoneval, wildvoice): its 1-5
  prompt, n=3 samples at temperature 0.5 / top_p 0.95, each sample read as a number or as `[[n]]`, the item's score the
  mean of the 3. sd-qa: its Yes/No prompt with the reference, 3 votes, correct when the most frequent (stripped,
  lowercased) vote is exactly "yes" (a tie, possible only with other replies, counts as not correct; upstream breaks
  it arbitrarily). The sampling is upstream's; the prompts and system message are read at run time from api_judge.py
  in the user's VoiceBench checkout (`voicebench_dir`, else $WAVALIGN_VOICEBENCH_DIR; `benchmarks.voicebench_source`).
- `VStyleJudge`: VStyle's gemini_eval.py. The category's prompt file (upstream's lalm_eval/eval_prompts/<lang>, given
  as `prompt_dir`) formatted with {instruction_type} = the row's ability and {input_instruction} = its instruct_text,
  then the reply audio; the score is the last `[[x]]` that parses as a number (else the whole reply as a number).

A call that fails (HTTP errors after retries, too few samples, no parsable score) yields None: the item is left out
of its mean and counted as failed, as upstream leaves out unparsable VStyle scores.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from wavalign.benchmarks.voicebench_source import VoiceBenchSourceError, read_tables
from wavalign.judges.http import _JITTER, JudgeConfigError, _redact, _retry_after, wav_base64

logger = logging.getLogger(__name__)
T = TypeVar("T")
VSTYLE_PROMPTS = ("acoustic_attributes", "instruction", "role_play", "empathy")


class ChatClient:
    """POST to <base_url>/chat/completions with retries (connection errors, 429, 5xx, unusable replies) and capped,
    jittered backoff. The key is read from `api_key_env` at call time and never stored."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        max_concurrency: int = 8,
        allow_no_key: bool = False,
    ) -> None:
        if max_concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise JudgeConfigError("need max_concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        url = base_url.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model, self.api_key_env, self.allow_no_key = model, api_key_env, allow_no_key
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.max_concurrency = max_concurrency
        self.key()

    def key(self) -> str | None:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key or self.allow_no_key:
            return key or None
        raise JudgeConfigError(
            f"environment variable {self.api_key_env!r} (api_key_env) is not set; export the API "
            "key in it, or pass allow_no_key=True for a server that needs no key"
        )

    def map(self, fn: Callable[[Any, str | None], T], jobs: Sequence[Any]) -> list[T]:
        """fn(job, key) for every job, concurrently, in order."""
        if not jobs:
            return []
        key = self.key()
        with ThreadPoolExecutor(min(self.max_concurrency, len(jobs)), thread_name_prefix="official-judge") as pool:
            return list(pool.map(lambda job: fn(job, key), jobs))

    def ask(self, payload: dict[str, Any], key: str | None, parse: Callable[[list[str]], T | None]) -> T | None:
        """parse(contents of the reply's choices), retried until it returns non-None; None after the last attempt."""
        body = json.dumps({"model": self.model, **payload}).encode("utf-8")
        error, retry_after = "no attempt", None
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) * _JITTER.uniform(0.5, 1.0)
                time.sleep(max(delay, min(retry_after or 0.0, self.max_backoff_s)))
                retry_after = None
            try:
                got = parse(self._post(body, key))
            except urllib.error.HTTPError as e:
                error = f"HTTP {e.code} from {self.url}"
                if e.code != 429 and not 500 <= e.code < 600:
                    break
                retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
                continue
            except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
                error = f"{type(e).__name__}: {e}"
                continue
            if got is not None:
                return got
            error = "reply could not be parsed"
        logger.warning("%s (%s): judge call failed: %s", self.url, self.model, _redact(error, key))
        return None

    def _post(self, body: bytes, key: str | None) -> list[str]:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            choices = json.loads(resp.read())["choices"]
        return [str(c["message"]["content"] or "").strip() for c in choices]


# ---- VoiceBench ------------------------------------------------------------------------------------------------------
_RATING = re.compile(r"\[\[(\d+)\]\]")


def open_rating(text: str) -> float | None:
    """One open-ended sample: the text as a number, else the first [[n]] in it, else None (upstream raises)."""
    try:
        return float(text)
    except ValueError:
        m = _RATING.search(text)
        return float(m.group(1)) if m else None


def majority_yes(votes: Sequence[str]) -> bool:
    """Upstream's majority vote: the most frequent lowercased vote must be 'yes'; ties count as not 'yes'."""
    lowered = [v.lower() for v in votes]
    top = max(lowered.count(v) for v in set(lowered))
    winners = {v for v in lowered if lowered.count(v) == top}
    return winners == {"yes"}


def fill(template: str, **fields: str) -> str:
    """Plain replacement of {name}, in the order given (upstream's str.replace chain)."""
    for name, value in fields.items():
        template = template.replace("{" + name + "}", value)
    return template


class VoiceBenchJudge:
    """VoiceBench's GPT judge (defaults: upstream's model and sampling). Serving other models changes the numbers;
    report the judge model with the scores.

    Args:
        base_url: Base URL of an OpenAI-compatible API; /chat/completions is appended unless it is already there.
        model: The judge model's name (upstream: gpt-4o-mini); another model changes the numbers.
        samples: Judge replies sampled per item and combined as upstream does, >= 1 (upstream: 3).
        temperature: The judge model's sampling temperature (upstream: 0.5).
        top_p: The judge model's nucleus sampling mass, in (0, 1] (upstream: 0.95).
        max_tokens: Most tokens per judge reply (upstream: 1024).
        api_key_env: Name of the environment variable that holds the API key (never the key itself: it is read at
            call time and never stored).
        timeout_s: Seconds one HTTP call may take before it counts as failed and is retried, > 0.
        max_retries: Retries of a failed call (connection error, timeout, HTTP 429 or 5xx, unusable reply), >= 0.
        backoff_s: Seconds before the first retry; each further retry waits longer (capped, with jitter).
        max_concurrency: Most calls in flight at once from this judge in one process, >= 1.
        allow_no_key: Allow an unset api_key_env (a local server that needs no key); otherwise a missing key fails
            at start-up.
        voicebench_dir: Folder of a VoiceBench checkout, whose api_judge.py prompts are read; None uses
            $WAVALIGN_VOICEBENCH_DIR.
    """

    def __init__(
        self,
        base_url: str,
        model: str = "gpt-4o-mini",
        samples: int = 3,
        temperature: float = 0.5,
        top_p: float = 0.95,
        max_tokens: int = 1024,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_concurrency: int = 8,
        allow_no_key: bool = False,
        voicebench_dir: str | None = None,
    ) -> None:
        if samples < 1:
            raise JudgeConfigError(f"samples must be >= 1, got {samples}")
        try:
            self.prompts = read_tables(voicebench_dir, "VoiceBenchJudge (its prompts are api_judge.py's)")["judge"]
        except VoiceBenchSourceError as e:
            raise JudgeConfigError(str(e)) from e
        self.client = ChatClient(
            base_url,
            model,
            api_key_env,
            timeout_s,
            max_retries,
            backoff_s,
            max_concurrency=max_concurrency,
            allow_no_key=allow_no_key,
        )
        self.samples, self.temperature, self.top_p, self.max_tokens = samples, temperature, top_p, max_tokens

    def _payload(self, text: str, n: int) -> dict[str, Any]:
        return {
            "messages": [{"role": "system", "content": self.prompts["system"]}, {"role": "user", "content": text}],
            "max_tokens": self.max_tokens,
            "frequency_penalty": 0,
            "presence_penalty": 0,
            "stop": None,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "n": n,
        }

    def _sample(self, text: str, key: str | None, parse: Callable[[str], T | None]) -> list[T] | None:
        """`samples` parsed replies to one prompt: one call with n = samples, topped up by further calls where a
        server returns fewer choices (some ignore n); None when a call fails or a reply does not parse."""
        got: list[T] = []
        for _ in range(self.samples):
            want = self.samples - len(got)
            parsed = self.client.ask(self._payload(text, want), key, lambda cs: _all_parsed(cs[:want], parse))
            if parsed is None:
                return None
            got += parsed
            if len(got) >= self.samples:
                return got
        return None

    def open_scores(self, items: Sequence[tuple[str, str]]) -> list[float | None]:
        """(prompt, response) -> the mean of the samples' 1-5 ratings, or None when the call failed."""

        def one(item: tuple[str, str], key: str | None) -> float | None:
            text = fill(self.prompts["open"], prompt=item[0], response=item[1])
            ratings = self._sample(text, key, open_rating)
            return None if ratings is None else float(np.mean(ratings))

        return self.client.map(one, list(items))

    def qa_correct(self, items: Sequence[tuple[str, str, str]]) -> list[bool | None]:
        """(prompt, reference, response) -> whether the majority of the Yes/No votes is 'yes', None on failure."""

        def one(item: tuple[str, str, str], key: str | None) -> bool | None:
            text = fill(self.prompts["qa"], prompt=item[0], reference=item[1], response=item[2])
            votes = self._sample(text, key, lambda c: c)
            return None if votes is None else majority_yes(votes)

        return self.client.map(one, list(items))


def _all_parsed(contents: list[str], parse: Callable[[str], T | None]) -> list[T] | None:
    parsed = [parse(c) for c in contents]
    return None if not parsed or any(p is None for p in parsed) else parsed  # type: ignore[return-value]


# ---- VStyle ---------------------------------------------------------------------------------------------------------
def bracket_score(text: str) -> float | None:
    """VStyle's parse: the last [[x]] whose x is a number, else the whole reply as a number, else None."""
    for inner in reversed(re.findall(r"\[\[(.*?)]]", text, flags=re.S)):
        try:
            return float(inner)
        except ValueError:
            continue
    try:
        return float(text.strip())
    except ValueError:
        return None


class VStyleJudge:
    """VStyle's LALM judge: one call per reply with the category's prompt, the optional instruction audio, then the
    reply audio (upstream's order). A reply without audio cannot be judged (None), as upstream refuses an empty
    response audio path. Upstream calls Gemini (gemini-2.5-pro-preview-06-05) with up to 5 attempts, 5 s apart, and
    its 4 threads; here an OpenAI-compatible endpoint serves the model (e.g. Gemini's).

    Args:
        base_url: Base URL of an OpenAI-compatible API (e.g. Gemini's OpenAI endpoint); /chat/completions is
            appended unless it is already there.
        model: The judge model's name (upstream: gemini-2.5-pro-preview-06-05).
        prompt_dir: VStyle's lalm_eval/eval_prompts/<language> folder, with one prompt file per category.
        send_instruction_audio: Also send the spoken instruction, before the reply audio, where an item has one.
        max_tokens: Most tokens per judge reply.
        api_key_env: Name of the environment variable that holds the API key (never the key itself: it is read at
            call time and never stored).
        timeout_s: Seconds one HTTP call may take before it counts as failed and is retried, > 0.
        max_retries: Retries of a failed call (connection error, timeout, HTTP 429 or 5xx, unusable reply), >= 0.
        backoff_s: Seconds before the first retry; each further retry waits longer (capped, with jitter).
        max_concurrency: Most calls in flight at once from this judge in one process, >= 1.
        allow_no_key: Allow an unset api_key_env (a local server that needs no key); otherwise a missing key fails
            at start-up.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        prompt_dir: str,
        send_instruction_audio: bool = False,
        max_tokens: int = 4096,
        api_key_env: str = "GEMINI_API_KEY",
        timeout_s: float = 300.0,
        max_retries: int = 4,
        backoff_s: float = 5.0,
        max_concurrency: int = 4,
        allow_no_key: bool = False,
    ) -> None:
        folder = Path(prompt_dir).expanduser()
        missing = [n for n in VSTYLE_PROMPTS if not (folder / f"{n}.txt").is_file()]
        if missing:
            raise JudgeConfigError(
                f"VStyleJudge prompt_dir {str(folder)!r} lacks {[m + '.txt' for m in missing]} "
                "(use VStyle's lalm_eval/eval_prompts/<language> folder)"
            )
        self.prompts = {n: (folder / f"{n}.txt").read_text(encoding="utf-8") for n in VSTYLE_PROMPTS}
        self.client = ChatClient(
            base_url,
            model,
            api_key_env,
            timeout_s,
            max_retries,
            backoff_s,
            max_concurrency=max_concurrency,
            allow_no_key=allow_no_key,
        )
        self.send_instruction_audio, self.max_tokens = send_instruction_audio, max_tokens

    def prompt(self, ability: str, instruction: str) -> str:
        category = ability.split("/", 1)[0]
        if category not in self.prompts:
            raise ValueError(f"VStyle ability {ability!r}: no prompt for {category!r}; known: {VSTYLE_PROMPTS}")
        return self.prompts[category].format(instruction_type=ability, input_instruction=instruction)

    def scores(self, items: Sequence[dict[str, Any]]) -> list[float | None]:
        """items: {ability, instruction, reply_audio, sample_rate, instruction_audio (or None), instruction_rate}."""

        def one(item: dict[str, Any], key: str | None) -> float | None:
            if item["reply_audio"] is None or np.size(item["reply_audio"]) == 0:
                return None
            parts: list[dict[str, Any]] = [{"type": "text", "text": self.prompt(item["ability"], item["instruction"])}]
            if self.send_instruction_audio and item.get("instruction_audio") is not None:
                parts.append(_audio_part(item["instruction_audio"], item["instruction_rate"]))
            parts.append(_audio_part(item["reply_audio"], item["sample_rate"]))
            payload = {"messages": [{"role": "user", "content": parts}], "max_tokens": self.max_tokens}
            return self.client.ask(payload, key, lambda contents: bracket_score(contents[0]) if contents else None)

        return self.client.map(one, list(items))


def _audio_part(wav: np.ndarray, sample_rate: int) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": wav_base64(wav, sample_rate), "format": "wav"}}
