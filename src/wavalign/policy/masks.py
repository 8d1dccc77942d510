"""Which completion tokens are text (semantic) and which are speech (acoustic), decided from token ids only.

The recipe's central move is to give the judge's sequence-level advantage to the text tokens alone (method.md,
"Token modalities"); everything here exists so that a mask of text and speech positions is exact for any batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass
class ModalityMasks:
    """Float masks of shape (rows, positions); text + speech == completion."""

    completion: Tensor
    text: Tensor
    speech: Tensor

    def select(self, which: str) -> Tensor:
        """The mask a loss uses: 'text' | 'speech' | 'all'. A row with none of the asked tokens falls back to its
        completion mask (method.md), so no row silently drops out of the mean."""
        if which == "all":
            return self.completion
        if which not in ("text", "speech"):
            raise ValueError(f"token mask must be 'text', 'speech' or 'all', got {which!r}")
        mask = self.text if which == "text" else self.speech
        empty = mask.sum(dim=1, keepdim=True) == 0
        return torch.where(empty, self.completion, mask)


@dataclass(frozen=True)
class ModalitySpec:
    """Token-id layout of a single-stream speech LLM (VITA-Audio / GLM-4-Voice style).

    speech_ranges: half-open [start, end) id ranges of audio codebook tokens.
    boundary_ids: begin/end-of-audio markers; counted as speech (they carry no content).
    eos_id: ends a reply; counted as text (stopping is a semantic decision).
    pad_id: never part of a completion past the first EOS.
    filler_ids: text-stream blanks of parallel-stream models; neither text nor speech here, acoustic there.
    stop_ids: further tokens that end a reply just as eos_id does (VITA-Audio's generation config stops on
        <|endoftext|> besides <|im_end|>): a completion ends at its first stop token of either kind, which counts as
        text. eos_id stays the one that demonstrations are laid out with.
    """

    speech_ranges: tuple[tuple[int, int], ...]
    eos_id: int
    pad_id: int
    boundary_ids: tuple[int, ...] = ()
    filler_ids: tuple[int, ...] = ()
    stop_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for start, end in self.speech_ranges:
            if not 0 <= start < end:
                raise ValueError(f"speech range [{start}, {end}) is empty or negative")
        for stop in self.all_stop_ids:
            if stop in self.boundary_ids or self.in_speech_range(stop):
                raise ValueError(f"eos_id / stop id {stop} must not be a speech or boundary token")

    @property
    def all_stop_ids(self) -> tuple[int, ...]:
        """eos_id first, then the other stop tokens, each once."""
        return tuple(dict.fromkeys((self.eos_id, *self.stop_ids)))

    def is_stop(self, ids: Tensor) -> Tensor:
        """Bool tensor: tokens that end a reply (eos_id or any other stop token)."""
        out = torch.zeros_like(ids, dtype=torch.bool)
        for stop in self.all_stop_ids:
            out |= ids == stop
        return out

    def in_speech_range(self, token_id: int) -> bool:
        return any(start <= token_id < end for start, end in self.speech_ranges)

    def is_speech(self, ids: Tensor) -> Tensor:
        """Bool tensor: codebook tokens and begin/end-of-audio markers."""
        out = torch.zeros_like(ids, dtype=torch.bool)
        for start, end in self.speech_ranges:
            out |= (ids >= start) & (ids < end)
        for b in self.boundary_ids:
            out |= ids == b
        return out

    def completion_mask(self, ids: Tensor) -> Tensor:
        """1 up to and including the first stop token (EOS or another); a row without one runs to its last non-pad
        token. A pad id that is also a stop token (VITA-Audio's <|endoftext|>) ends the row where it first occurs, as
        transformers' generate ends it."""
        positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        big = ids.shape[1]
        is_eos = self.is_stop(ids)
        first_eos = torch.where(is_eos, positions, torch.full_like(positions, big)).min(dim=1).values
        non_pad = ids != self.pad_id
        last_non_pad = torch.where(non_pad, positions, torch.full_like(positions, -1)).max(dim=1).values
        end = torch.where(first_eos < big, first_eos, last_non_pad)
        return (positions <= end.unsqueeze(1)).float()

    def masks(self, ids: Tensor) -> ModalityMasks:
        """Completion, text and speech masks of a right-padded (rows, positions) completion batch."""
        completion = self.completion_mask(ids)
        speech = self.is_speech(ids).float() * completion
        filler = torch.zeros_like(ids, dtype=torch.bool)
        for f in self.filler_ids:
            filler |= ids == f
        text = completion * (1.0 - speech) * (~filler).float()
        return ModalityMasks(completion=completion, text=text, speech=speech)

    def split_reply(self, ids: Sequence[int], speech_offset: int) -> tuple[list[int], list[int]]:
        """A completion's text ids up to its first stop token (stop tokens and pad dropped) and its speech codes
        (boundaries dropped, offset removed)."""
        stops = set(self.all_stop_ids)
        text, codes = [], []
        for t in ids:
            if t in stops:
                break
            if self.in_speech_range(t):
                codes.append(t - speech_offset)
            elif t not in self.boundary_ids and t != self.pad_id and t not in self.filler_ids:
                text.append(t)
        return text, codes


@dataclass(frozen=True)
class InterleaveLayout:
    """How a reply's text and speech tokens alternate in one stream, e.g. VITA-Audio's 1:8 then 4:8.

    text_chunks / speech_chunks list the chunk sizes in order; the last size repeats. When one modality runs out,
    the rest of the other follows in its own chunk sizes. Each speech chunk is wrapped in begin/end-of-audio markers
    when they are given.

    merge_tail=True lays out as VITA-Audio's text_audio_interval does: both modalities are cut into chunks, the pairs
    alternate up to the shorter count, and everything left of both goes into the last pair (text 7, speech 40 at
    [1, 4] / [8]: t0 [8] t1..t4 [8] t5 t6 [24]); speech alone is one block.
    """

    text_chunks: tuple[int, ...] = (4,)
    speech_chunks: tuple[int, ...] = (8,)
    begin_audio_id: int | None = None
    end_audio_id: int | None = None
    merge_tail: bool = False

    def __post_init__(self) -> None:
        if not self.text_chunks or not self.speech_chunks or min(self.text_chunks + self.speech_chunks) < 1:
            raise ValueError("text_chunks and speech_chunks must be non-empty lists of positive sizes")

    def _wrap(self, speech: list[int]) -> list[int]:
        b, e = self.begin_audio_id, self.end_audio_id
        return ([b] if b is not None else []) + speech + ([e] if e is not None else [])

    @staticmethod
    def _cut(ids: Sequence[int], sizes: tuple[int, ...]) -> list[list[int]]:
        chunks, i = [], 0
        while i < len(ids):
            n = sizes[min(len(chunks), len(sizes) - 1)]
            chunks.append(list(ids[i : i + n]))
            i += n
        return chunks

    def _merged_tail(self, text_ids: Sequence[int], speech_ids: Sequence[int]) -> list[int]:
        text, speech = self._cut(text_ids, self.text_chunks), self._cut(speech_ids, self.speech_chunks)
        if not speech or not text:
            return list(text_ids) + (self._wrap(list(speech_ids)) if speech else [])
        n = min(len(text), len(speech))
        text = text[: n - 1] + [sum(text[n - 1 :], [])]
        speech = speech[: n - 1] + [sum(speech[n - 1 :], [])]
        return [t for pair in zip(text, speech) for t in pair[0] + self._wrap(pair[1])]

    def layout(self, text_ids: Sequence[int], speech_ids: Sequence[int], eos_id: int) -> list[int]:
        """The reply as the model emits it: interleaved chunks, then EOS."""
        if self.merge_tail:
            return self._merged_tail(text_ids, speech_ids) + [eos_id]
        out: list[int] = []
        ti = si = k = 0
        while ti < len(text_ids) or si < len(speech_ids):
            n_text = self.text_chunks[min(k, len(self.text_chunks) - 1)]
            n_speech = self.speech_chunks[min(k, len(self.speech_chunks) - 1)]
            out.extend(text_ids[ti : ti + n_text])
            ti += n_text
            chunk = list(speech_ids[si : si + n_speech])
            si += n_speech
            if chunk:
                if self.begin_audio_id is not None:
                    out.append(self.begin_audio_id)
                out.extend(chunk)
                if self.end_audio_id is not None:
                    out.append(self.end_audio_id)
            k += 1
        out.append(eos_id)
        return out
