"""Token layout of a two-stream (Kimi-Audio style) policy: replies, their masks and end points, and chat prompts.

Stream 0 is text, stream 1 audio. Everything here works from token ids only, so rollouts and demonstrations (and the
real checkpoint and the tiny world) share one definition of where a reply ends and which tokens are text or speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

from wavalign.data.schema import AUDIO_PLACEHOLDER
from wavalign.policy.masks import ModalityMasks

TEXT, AUDIO = 0, 1
STOP_RULES = ("both", "audio")


@dataclass(frozen=True)
class StreamLayout:
    """Token ids of a two-stream reply and the masks they imply, from ids only (rollouts and demonstrations alike)."""

    text_eos_id: int
    end_audio_ids: tuple[int, ...]  # any of them ends the audio stream; the first one ends demonstrations
    filler_id: int  # text-stream blank
    audio_filler_id: int  # audio-stream blank (Kimi-Audio: the same id)
    pad_id: int  # beyond a reply's end; never read
    speech_offset: int
    num_speech_tokens: int
    audio_delay: int = 0
    # "both": a reply ends when both streams have ended; "audio": as soon as the audio stream ends (Kimi-Audio's
    # decode loop with speech output), whatever the text stream is doing then
    stop_on: str = "both"

    def __post_init__(self) -> None:
        if not self.end_audio_ids or self.audio_delay < 0:
            raise ValueError("a stream layout needs >= 1 end-of-audio id and audio_delay >= 0")
        if self.stop_on not in STOP_RULES:
            raise ValueError(f"stop_on must be one of {STOP_RULES}, got {self.stop_on!r}")
        if self.text_eos_id == self.filler_id or self.audio_filler_id in self.end_audio_ids:
            raise ValueError("the text EOS must differ from the blank, and the audio blank from the end-of-audio ids")
        markers = (self.text_eos_id, self.filler_id, self.audio_filler_id, *self.end_audio_ids)
        if bool(self.is_speech(torch.tensor(markers)).any()):
            raise ValueError(f"EOS, blank and end-of-audio ids {markers} must lie outside the speech codes")

    def is_speech(self, ids: Tensor) -> Tensor:
        return (ids >= self.speech_offset) & (ids < self.speech_offset + self.num_speech_tokens)

    def reply(self, text_ids: Sequence[int], codes: Sequence[int]) -> Tensor:
        """(T, 2) ids of a reply as the model emits it. Under stop_on="audio" the audio stream's end marker is the
        reply's last step, so a text longer than the speech is met by audio blanks before that marker."""
        if any(not 0 <= c < self.num_speech_tokens for c in codes):
            raise ValueError(f"speech codes must lie in [0, {self.num_speech_tokens})")
        text = [int(t) for t in text_ids] + [self.text_eos_id]
        audio = [self.audio_filler_id] * self.audio_delay + [self.speech_offset + int(c) for c in codes]
        if self.stop_on == "audio":
            audio += [self.audio_filler_id] * (len(text) - 1 - len(audio))
        audio.append(self.end_audio_ids[0])
        steps = max(len(text), len(audio))
        text += [self.filler_id] * (steps - len(text))
        audio += [self.audio_filler_id] * (steps - len(audio))
        return torch.tensor([text, audio], dtype=torch.long).T.contiguous()

    def ends(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per row of (N, T, 2): first text-EOS step, first end-of-audio step (T when absent) and the last step of
        the reply: under stop_on="both" the later of the two, under "audio" the end-of-audio step; a row lacking
        what ends it was cut at max_new_tokens and runs to T - 1."""
        n, t = ids.shape[:2]
        pos = torch.arange(t, device=ids.device).expand(n, t)
        never = torch.full_like(pos, t)
        text_end = torch.where(ids[..., TEXT] == self.text_eos_id, pos, never).min(dim=1).values
        is_end = torch.isin(ids[..., AUDIO], torch.tensor(self.end_audio_ids, device=ids.device))
        audio_end = torch.where(is_end, pos, never).min(dim=1).values
        if self.stop_on == "audio":
            last = audio_end.clamp(max=t - 1)
        else:
            both = (text_end < t) & (audio_end < t)
            last = torch.where(both, torch.maximum(text_end, audio_end), torch.full_like(text_end, t - 1))
        return text_end, audio_end, last

    def masks(self, ids: Tensor) -> ModalityMasks:
        """(N, T, 2) ids -> masks of shape (N, 2T) over [text stream | audio stream]."""
        text_end, _, last = self.ends(ids)
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        valid = (pos <= last.unsqueeze(1)).float()
        real = valid * (pos <= text_end.unsqueeze(1)).float() * (ids[..., TEXT] != self.filler_id).float()
        return ModalityMasks(
            completion=torch.cat([valid, valid], dim=1),
            text=torch.cat([real, torch.zeros_like(real)], dim=1),
            speech=torch.cat([valid - real, valid], dim=1),
        )

    def split(self, ids: Tensor, skip_ids: frozenset[int] = frozenset()) -> tuple[list[int], list[int]]:
        """A (T, 2) reply's text ids (before EOS; blanks, codes and `skip_ids` dropped) and its speech codes."""
        text_end, audio_end, _ = (int(x) for x in self.ends(ids.unsqueeze(0)))
        text, audio = ids[:text_end, TEXT], ids[:audio_end, AUDIO]
        drop = torch.tensor(sorted(skip_ids | {self.filler_id, self.pad_id}), dtype=torch.long)
        text = text[~torch.isin(text, drop) & ~self.is_speech(text)]
        return text.tolist(), (audio[self.is_speech(audio)] - self.speech_offset).tolist()


@dataclass
class ParallelChatTemplate:
    """Prompt markup on the audio stream (Kimi-Audio puts role and media markers there, the text stream holds blanks).

    The assistant's role marker opens the reply.

    Args:
        role_tokens: The marker token opening each role's turn, by role; must include "assistant" (Kimi-Audio has no
            system role: map "system" to the user marker).
        message_end: Audio-stream tokens that close a turn.
        speech_begin: Token put before each prompt speech segment; None for none.
        speech_end: Token put after each prompt speech segment; None for none.
        speech_suffix: Tokens after prompt speech (Kimi-Audio: <|im_kimia_speech_ctd_id|>, "reply with speech").
        merge_turns: False: every message is its own turn, with its marker and end, and the suffix follows every
            speech segment. True (Kimi-Audio's prompt manager, kimia_infer/api/prompt_manager.py get_prompt):
            consecutive messages whose roles share a marker form one turn, with one marker, the message end only at
            the end of the turn, and the suffix only there too, when the turn's last piece is speech.
    """

    role_tokens: dict[str, str] = field(
        default_factory=lambda: {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
    )
    message_end: list[str] = field(default_factory=lambda: ["<|msg_end|>"])
    speech_begin: str | None = "<|begin_audio|>"
    speech_end: str | None = "<|end_audio|>"
    speech_suffix: list[str] = field(default_factory=lambda: ["<|speech_ctd|>"])
    merge_turns: bool = False

    def __post_init__(self) -> None:
        if "assistant" not in self.role_tokens:
            raise ValueError("chat.role_tokens needs an 'assistant' marker: it opens the reply")


@dataclass
class ParallelPrompt:
    """A prompt's (P, 2) ids, the steps whose audio-stream token is a prompt speech code (Kimi-Audio's continuous
    positions) and, per speech segment in order, its first step and length. `features` (one row per continuous step,
    in order) is set by policies that feed continuous features there."""

    ids: Tensor
    continuous: Tensor  # (P,) bool
    spans: list[tuple[int, int]]
    features: Tensor | None = None


@dataclass(frozen=True)
class PromptIds:
    """A chat template's token ids, resolved once against the tokenizer."""

    roles: dict[str, int]
    message_end: list[int]
    speech_open: list[int]
    speech_close: list[int]  # speech_end only
    suffix: list[int]
    merge_turns: bool


def _pieces(content: str, segments: Iterator[Sequence[int]]) -> list[str | list[int]]:
    """A message's content as text pieces (whitespace-only ones dropped) and speech code lists, in order."""
    out: list[str | list[int]] = []
    parts = content.split(AUDIO_PLACEHOLDER)
    for i, part in enumerate(parts):
        if part.strip():
            out.append(part)
        if i < len(parts) - 1:
            out.append([int(c) for c in next(segments)])
    return out


def build_prompt(
    messages: Sequence[dict[str, str]],
    speech: Sequence[Sequence[int]],
    ids: PromptIds,
    layout: StreamLayout,
    encode_text: Callable[[str], list[int]],
) -> ParallelPrompt:
    """Lay a chat out on the two streams: markup and speech on the audio stream (text-stream blanks beside them),
    message text on the text stream (audio-stream blanks beside it), then the assistant marker that opens the reply."""
    n_slots = sum(m["content"].count(AUDIO_PLACEHOLDER) for m in messages)
    if n_slots != len(speech):
        raise ValueError(f"prompt has {n_slots} audio placeholders but {len(speech)} speech segments")
    for m in messages:
        if m["role"] not in ids.roles:
            raise ValueError(f"no role marker for role {m['role']!r}: add it to chat.role_tokens")
    text: list[int] = []
    audio: list[int] = []
    continuous: list[bool] = []
    spans: list[tuple[int, int]] = []

    def on_audio(tokens: Sequence[int], is_speech: bool = False) -> None:
        audio.extend(int(t) for t in tokens)
        text.extend([layout.filler_id] * len(tokens))
        continuous.extend([is_speech] * len(tokens))

    # turns: (marker, pieces); merging joins consecutive messages with the same marker
    turns: list[tuple[int, list[str | list[int]]]] = []
    segments = iter(speech)
    for m in messages:
        marker, pieces = ids.roles[m["role"]], _pieces(m["content"], segments)
        if ids.merge_turns and turns and turns[-1][0] == marker:
            turns[-1][1].extend(pieces)
        else:
            turns.append((marker, pieces))
    for marker, pieces in turns:
        on_audio([marker])
        for piece in pieces:
            if isinstance(piece, str):
                words = encode_text(piece)
                text.extend(words)
                audio.extend([layout.audio_filler_id] * len(words))
                continuous.extend([False] * len(words))
                continue
            if any(not 0 <= c < layout.num_speech_tokens for c in piece):
                raise ValueError(f"speech codes must lie in [0, {layout.num_speech_tokens})")
            on_audio(ids.speech_open)
            spans.append((len(audio), len(piece)))
            on_audio([layout.speech_offset + c for c in piece], is_speech=True)
            on_audio(ids.speech_close)
            if not ids.merge_turns:
                on_audio(ids.suffix)
        if ids.merge_turns and pieces and not isinstance(pieces[-1], str):
            on_audio(ids.suffix)
        on_audio(ids.message_end)
    on_audio([ids.roles["assistant"]])
    pairs = torch.tensor([text, audio], dtype=torch.long).T.contiguous()
    return ParallelPrompt(pairs, torch.tensor(continuous, dtype=torch.bool), spans)
