"""Start-up checks of every data row against the built policy, and row names on every mid-run data error.

Why at start-up: a row the model cannot take (longer than its context or a configured limit, audio the config has
no codec for, audio that is NaN or cannot be decoded) otherwise fails only when a batch first holds it, maybe hours
in, and a resumed run fails again at the same batch, since the data position is restored. `fit` (through the
module's setup) and `check-data --config` run the same `row_problems` on every row, so they refuse the same rows.

Lengths are counted with the policy's own tokenizer and layout (prompt_ids / reply_ids), so they are exact: a row
needs prompt + reply tokens for its demonstration and prompt + max_new_tokens for a rollout. Audio without
pre-tokenized codes is encoded here, once: the module's SpeechTokenCache keeps the codes for the run.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

from wavalign.data.check import code_problems
from wavalign.data.schema import DialogueExample, SchemaError

SHOWN = 20  # problems listed in the start-up error; the count says how many there are in all


class RowError(SchemaError):
    """A data row that cannot be turned into tokens (its message starts with the row's file:line)."""


@contextmanager
def naming_row(ex: DialogueExample) -> Iterator[None]:
    """Re-raise any failure while processing `ex` as a RowError starting with its file:line (once)."""
    try:
        yield
    except RowError:
        raise
    except Exception as e:  # whatever a tokenizer or codec raises, the user must learn which row did it
        text = str(e)
        raise RowError(text if text.startswith(ex.source) else f"{ex.source}: {type(e).__name__}: {text}") from e


def row_prompt(policy: Any, speech: Any, ex: DialogueExample) -> Any:
    """The policy's prompt of a row (audio encoded through `speech`, a SpeechTokenCache), failures naming the row."""
    with naming_row(ex):
        return policy.example_prompt(ex.messages, speech.prompt_speech(ex), ex.audios)


def row_reply(policy: Any, speech: Any, ex: DialogueExample) -> Any:
    """The policy's token layout of a row's demonstration, failures naming the row."""
    with naming_row(ex):
        return policy.reply_ids(ex.target_text, speech.target_speech(ex))


def model_context(policy: Any) -> int | None:
    """The longest sequence the policy's model is set up for (its config's max_position_embeddings), if it says."""
    config = getattr(getattr(policy, "model", None), "config", None)
    n = getattr(config, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def prompt_length(policy: Any, messages: Any, speech: Any) -> int:
    """A prompt's length in the policy's steps. A policy that also reads the raw audio (Kimi-Audio's Whisper
    features) lays it out with build_prompt, without computing the features: only its length is needed here."""
    if hasattr(policy, "build_prompt"):
        return len(policy.build_prompt(messages, speech).ids)
    return len(policy.prompt_ids(messages, speech))


def row_problems(
    ex: DialogueExample, policy: Any, speech: Any, max_tokens: int | None, max_new_tokens: int
) -> list[str]:
    """What would make this row fail in a run: codes outside the vocabulary, audio that cannot be encoded, or more
    tokens than the model's context (prompt + the longer of reply and max_new_tokens) or `max_tokens` (prompt +
    reply, the configured limit)."""
    tokens = getattr(policy, "num_speech_tokens", None) or getattr(
        getattr(policy, "layout", None), "num_speech_tokens", None
    )
    codes = code_problems(ex, tokens) if tokens else []
    if codes:
        return codes
    try:
        with naming_row(ex):
            prompt_speech = speech.prompt_speech(ex)
            prompt = prompt_length(policy, ex.messages, prompt_speech)
            reply = len(policy.reply_ids(ex.target_text, speech.target_speech(ex)))
            if getattr(policy, "features_encoder", None) is not None and len(ex.audios) != len(prompt_speech):
                raise ValueError(
                    f"the policy reads the raw prompt audio (Whisper features) but the row has {len(ex.audios)} "
                    f"audio files for {len(prompt_speech)} speech segments"
                )
    except RowError as e:
        return [str(e)]
    out = []
    context = model_context(policy)
    if context is not None and prompt + max(reply, max_new_tokens) > context:
        longest = "reply" if reply >= max_new_tokens else "max_new_tokens"
        out.append(
            f"{ex.source}: {prompt} prompt + {max(reply, max_new_tokens)} {longest} tokens exceed the model's context "
            f"of {context} tokens"
        )
    if max_tokens is not None and prompt + reply > max_tokens:
        out.append(f"{ex.source}: {prompt} prompt + {reply} reply tokens exceed data.max_tokens={max_tokens}")
    return out


def rows_problems(
    examples: Iterable[DialogueExample], policy: Any, speech: Any, max_tokens: int | None, max_new_tokens: int
) -> list[str]:
    """row_problems over many rows; a row listed in two splits (val and test alike) is checked once."""
    seen: set[str] = set()
    out: list[str] = []
    for ex in examples:
        if ex.source in seen:
            continue
        seen.add(ex.source)
        out += row_problems(ex, policy, speech, max_tokens, max_new_tokens)
    return out


def raise_row_problems(problems: Sequence[str]) -> None:
    """One SchemaError listing the first problems and counting them all."""
    if problems:
        more = f"\n... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise SchemaError(
            f"{len(problems)} data row(s) would fail in this run (refused before step 1; `wavalign check-data FILE "
            f"--config CFG` lists them all):\n" + "\n".join(problems[:SHOWN]) + more
        )


def check_rows(policy: Any, speech: Any, datamodule: object, samplings: Sequence[Any]) -> None:
    """At start-up: every row of the datamodule's loaded splits must fit (row_problems), else a SchemaError naming
    each. `samplings`: the sampling settings the rows will be rolled out with (their largest max_new_tokens)."""
    splits = getattr(datamodule, "splits", None)
    if not splits:
        return
    max_new = max((int(getattr(s, "max_new_tokens", 0) or 0) for s in samplings), default=0)
    examples = (ex for rows in splits.values() for ex in rows)  # row by row: a split may be a lazy source
    raise_row_problems(rows_problems(examples, policy, speech, getattr(datamodule, "max_tokens", None), max_new))
