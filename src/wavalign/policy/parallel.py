"""A parallel-stream speech LLM (Kimi-Audio style): at every step one text token and one audio token, from two heads.

How the streams map onto the policy interface, so objectives, gate and module stay unchanged:
- a step holds (text id, audio id): prompt_ids is (P, 2), completion_ids (N, T, 2), stream 0 = text, 1 = audio;
- token_logprobs is (N, 2T) = [text stream, T steps | audio stream, T steps], and so are the masks:
  completion = the reply's steps in both streams; text = the text stream's real tokens up to and including its EOS;
  speech = every audio-stream token plus the text stream's blank fillers (they carry timing, not content).

Reply layout (Kimi-Audio's): text tokens from step 0, then the text EOS, then blank fillers while the speech goes on;
the audio stream starts `audio_delay` blank steps late (Kimi-Audio: 6), then the speech codes, then the end-of-audio
marker, then blanks if the text is the longer. A reply ends at the step where both streams have ended. Sampling forces
what Kimi-Audio's decode loop forces: blanks in the text stream after its EOS, blanks in the audio stream during the
delay and after its end marker. Those forced steps stay in the completion (as the demonstrations teach them).
Prompt layout (Kimi-Audio's): role markers, media begin/end and speech codes on the audio stream with text-stream
blanks; message text on the text stream with audio-stream blanks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from wavalign.data.schema import AUDIO_PLACEHOLDER
from wavalign.modality import ModalityMasks
from wavalign.policy.base import Reply, SamplingConfig, SequenceBatch, SpeechPolicy
from wavalign.policy.decoding import sample_next
from wavalign.policy.lora import LoraSettings, apply_lora
from wavalign.policy.parallel_model import ParallelLM, ParallelSource

TEXT, AUDIO = 0, 1


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

    def __post_init__(self) -> None:
        if not self.end_audio_ids or self.audio_delay < 0:
            raise ValueError("a stream layout needs >= 1 end-of-audio id and audio_delay >= 0")
        if self.text_eos_id == self.filler_id or self.audio_filler_id in self.end_audio_ids:
            raise ValueError("the text EOS must differ from the blank, and the audio blank from the end-of-audio ids")
        markers = (self.text_eos_id, self.filler_id, self.audio_filler_id, *self.end_audio_ids)
        if bool(self.is_speech(torch.tensor(markers)).any()):
            raise ValueError(f"EOS, blank and end-of-audio ids {markers} must lie outside the speech codes")

    def is_speech(self, ids: Tensor) -> Tensor:
        return (ids >= self.speech_offset) & (ids < self.speech_offset + self.num_speech_tokens)

    def reply(self, text_ids: Sequence[int], codes: Sequence[int]) -> Tensor:
        """(T, 2) ids of a reply as the model emits it."""
        if any(not 0 <= c < self.num_speech_tokens for c in codes):
            raise ValueError(f"speech codes must lie in [0, {self.num_speech_tokens})")
        text = [int(t) for t in text_ids] + [self.text_eos_id]
        audio = [self.audio_filler_id] * self.audio_delay + [self.speech_offset + int(c) for c in codes] + [self.end_audio_ids[0]]
        steps = max(len(text), len(audio))
        text += [self.filler_id] * (steps - len(text))
        audio += [self.audio_filler_id] * (steps - len(audio))
        return torch.tensor([text, audio], dtype=torch.long).T.contiguous()

    def ends(self, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per row of (N, T, 2): first text-EOS step, first end-of-audio step (T when absent) and the last step of
        the reply (the later of the two; a row lacking either was cut at max_new_tokens and runs to T - 1)."""
        n, t = ids.shape[:2]
        pos = torch.arange(t, device=ids.device).expand(n, t)
        never = torch.full_like(pos, t)
        text_end = torch.where(ids[..., TEXT] == self.text_eos_id, pos, never).min(dim=1).values
        is_end = torch.isin(ids[..., AUDIO], torch.tensor(self.end_audio_ids, device=ids.device))
        audio_end = torch.where(is_end, pos, never).min(dim=1).values
        last = torch.where((text_end < t) & (audio_end < t), torch.maximum(text_end, audio_end), torch.full_like(text_end, t - 1))
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

    role_tokens: the marker opening each role's message (Kimi-Audio has no system role: map it to the user marker);
    message_end: audio-stream tokens closing every message; speech_begin/speech_end: around prompt speech;
    speech_suffix: after each prompt speech segment (Kimi-Audio: <|im_kimia_speech_ctd_id|>, "reply with speech").
    The assistant's role marker opens the reply."""

    role_tokens: dict[str, str] = field(
        default_factory=lambda: {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
    )
    message_end: list[str] = field(default_factory=lambda: ["<|msg_end|>"])
    speech_begin: str | None = "<|begin_audio|>"
    speech_end: str | None = "<|end_audio|>"
    speech_suffix: list[str] = field(default_factory=lambda: ["<|speech_ctd|>"])

    def __post_init__(self) -> None:
        if "assistant" not in self.role_tokens:
            raise ValueError("chat.role_tokens needs an 'assistant' marker: it opens the reply")


def _lookup(tokenizer: Any, token: str, what: str) -> int:
    """A token's id; Kimi-Audio's tokenizer keeps its specials in a `special_tokens` dict (kimia_infer reads it)."""
    table = getattr(tokenizer, "special_tokens", None)
    tid = table.get(token) if isinstance(table, dict) else None
    if tid is None:
        tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == getattr(tokenizer, "unk_token_id", None):
        raise ValueError(f"{what} token {token!r} is not in the tokenizer's vocabulary")
    return int(tid)


def _pairs(x: Sequence[Sequence[int]] | Tensor) -> Tensor:
    out = torch.as_tensor(x, dtype=torch.long)
    if out.dim() != 2 or out.shape[1] != 2:
        raise ValueError(f"a parallel-stream sequence must have shape (steps, 2), got {tuple(out.shape)}")
    return out.cpu()


class ParallelPolicy(SpeechPolicy):
    """source builds the two-head model (TinyParallel, KimiAudioCheckpoint). Speech codes are ids
    speech_offset + code: give speech_offset (Kimi-Audio: 152064, its codes have no token names) or speech_token,
    a name template whose ids must be contiguous. restrict_heads keeps each head to its stream's tokens (the text
    head never emits speech codes; the audio head emits codes, end-of-audio markers and its blank), in sampling and
    in log-probs alike. encode_kwargs / decode_kwargs go to the tokenizer (Kimi-Audio: {bos: false, eos: false} / {})."""

    def __init__(
        self,
        source: ParallelSource,
        num_speech_tokens: int,
        speech_token: str = "<|s_{}|>",
        speech_offset: int | None = None,
        text_eos_token: str = "<|text_eos|>",
        end_audio_tokens: list[str] = ["<|msg_end|>", "<|end_audio|>"],
        filler_token: str = "<|text_blank|>",
        audio_filler_token: str | None = None,
        pad_token: str | None = None,
        audio_delay: int = 6,
        chat: ParallelChatTemplate | None = None,
        restrict_heads: bool = True,
        lora: LoraSettings | None = None,
        gradient_checkpointing: bool = False,
        encode_kwargs: dict[str, Any] | None = None,
        decode_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        model, tokenizer = source.build()
        self.tokenizer = tokenizer
        self.chat = chat or ParallelChatTemplate()
        self.encode_kwargs = {"add_special_tokens": False} if encode_kwargs is None else dict(encode_kwargs)
        self.decode_kwargs = {"skip_special_tokens": True} if decode_kwargs is None else dict(decode_kwargs)
        ids = lambda token, what: _lookup(tokenizer, token, what)  # noqa: E731
        if speech_offset is None:
            speech_offset = ids(speech_token.format(0), "first speech")
            last = ids(speech_token.format(num_speech_tokens - 1), "last speech")
            if last - speech_offset != num_speech_tokens - 1:
                raise ValueError(f"speech tokens {speech_token} are not contiguous ids ({speech_offset}..{last})")
        if speech_offset + num_speech_tokens > model.vocab_size:
            raise ValueError(f"speech ids {speech_offset}..{speech_offset + num_speech_tokens - 1} exceed the vocabulary ({model.vocab_size})")
        filler = ids(filler_token, "text blank")
        pad = ids(pad_token, "pad") if pad_token else getattr(tokenizer, "pad_token_id", None)
        self.layout = StreamLayout(
            text_eos_id=ids(text_eos_token, "text EOS"),
            end_audio_ids=tuple(ids(t, "end-of-audio") for t in end_audio_tokens),
            filler_id=filler,
            audio_filler_id=ids(audio_filler_token, "audio blank") if audio_filler_token else filler,
            pad_id=pad if pad is not None and 0 <= pad < model.vocab_size else filler,
            speech_offset=speech_offset,
            num_speech_tokens=num_speech_tokens,
            audio_delay=audio_delay,
        )
        self.role_ids = {role: ids(tok, f"{role} role") for role, tok in self.chat.role_tokens.items()}
        self.message_end_ids = [ids(t, "message end") for t in self.chat.message_end]
        self.speech_wrap = (
            [ids(self.chat.speech_begin, "speech begin")] if self.chat.speech_begin else [],
            ([ids(self.chat.speech_end, "speech end")] if self.chat.speech_end else [])
            + [ids(t, "speech suffix") for t in self.chat.speech_suffix],
        )
        self.skip_ids = frozenset(self.role_ids.values()) | frozenset(self.message_end_ids) | frozenset(self.layout.end_audio_ids)
        self._register_head_biases(model.vocab_size, restrict_heads)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.uses_lora = lora is not None
        # peft on our own module: no task type, since it is not a transformers causal LM; adapters in every stack
        self.model = apply_lora(model, lora, task_type=None) if lora is not None else model
        self._frozen_reference: torch.nn.Module | None = None

    def _register_head_biases(self, vocab: int, restrict: bool) -> None:
        """Additive logit masks (0 / -inf) per head; non-persistent, so checkpoints hold weights only."""
        text, audio = torch.zeros(vocab), torch.zeros(vocab)
        if restrict:
            lay = self.layout
            speech = lay.is_speech(torch.arange(vocab))
            text[speech] = float("-inf")
            allowed = speech.clone()
            allowed[list(lay.end_audio_ids) + [lay.audio_filler_id]] = True
            audio[~allowed] = float("-inf")
        self.register_buffer("text_bias", text, persistent=False)
        self.register_buffer("audio_bias", audio, persistent=False)

    @property
    def core(self) -> ParallelLM:
        """The ParallelLM under the LoRA wrapper, if any."""
        return self.model.get_base_model() if self.uses_lora else self.model

    @property
    def device(self) -> torch.device:
        return self.text_bias.device

    # ---- token layout -------------------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, **self.encode_kwargs))

    def prompt_ids(self, messages: Sequence[dict[str, str]], speech: Sequence[Sequence[int]]) -> Tensor:
        """(P, 2) ids: a role marker per message, then its text (text stream) and speech (audio stream)."""
        lay = self.layout
        text: list[int] = []
        audio: list[int] = []

        def on_audio(tokens: Sequence[int]) -> None:
            audio.extend(int(t) for t in tokens)
            text.extend([lay.filler_id] * len(tokens))

        n_slots = sum(m["content"].count(AUDIO_PLACEHOLDER) for m in messages)
        if n_slots != len(speech):
            raise ValueError(f"prompt has {n_slots} audio placeholders but {len(speech)} speech segments")
        segments = iter(speech)
        for m in messages:
            if m["role"] not in self.role_ids:
                raise ValueError(f"no role marker for role {m['role']!r}: add it to chat.role_tokens")
            on_audio([self.role_ids[m["role"]]])
            pieces = m["content"].split(AUDIO_PLACEHOLDER)
            for i, piece in enumerate(pieces):
                if piece.strip():
                    words = self.encode_text(piece)
                    text.extend(words)
                    audio.extend([lay.audio_filler_id] * len(words))
                if i < len(pieces) - 1:
                    codes = list(next(segments))
                    if any(not 0 <= c < lay.num_speech_tokens for c in codes):
                        raise ValueError(f"speech codes must lie in [0, {lay.num_speech_tokens})")
                    on_audio(self.speech_wrap[0] + [lay.speech_offset + int(c) for c in codes] + self.speech_wrap[1])
            on_audio(self.message_end_ids)
        on_audio([self.role_ids["assistant"]])
        return torch.tensor([text, audio], dtype=torch.long).T.contiguous()

    def reply_ids(self, text: str, speech_codes: Sequence[int]) -> Tensor:
        return self.layout.reply(self.encode_text(text), speech_codes)

    def _left_pad(self, prompts: Sequence[Sequence[Sequence[int]] | Tensor]) -> tuple[Tensor, Tensor]:
        rows = [_pairs(p) for p in prompts]
        length = max(len(p) for p in rows)
        ids = torch.full((len(rows), length, 2), self.layout.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, p in enumerate(rows):
            ids[i, length - len(p) :] = p
            mask[i, length - len(p) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def make_batch(self, prompts: Sequence[Sequence[Sequence[int]] | Tensor], replies: Sequence[Sequence[Sequence[int]] | Tensor]) -> SequenceBatch:
        prompt_ids, prompt_mask = self._left_pad(prompts)
        rows = [_pairs(r) for r in replies]
        completion = torch.full((len(rows), max(len(r) for r in rows), 2), self.layout.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            completion[i, : len(r)] = r
        completion = completion.to(self.device)
        return SequenceBatch(prompt_ids, prompt_mask, completion, self.layout.masks(completion))

    # ---- sampling ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: Sequence[Sequence[Sequence[int]] | Tensor], group_size: int, sampling: SamplingConfig) -> SequenceBatch:
        ids, mask = self._left_pad(prompts)
        ids, mask = ids.repeat_interleave(group_size, dim=0), mask.repeat_interleave(group_size, dim=0)
        was_training = self.model.training
        self.model.eval()
        try:
            completion, _ = self.generate(ids, mask, sampling)
        finally:
            self.model.train(was_training)
        return SequenceBatch(ids, mask, completion, self.layout.masks(completion))

    def _head_logprobs(self, text_logits: Tensor, audio_logits: Tensor) -> tuple[Tensor, Tensor]:
        return (
            F.log_softmax(text_logits.float() + self.text_bias, dim=-1),
            F.log_softmax(audio_logits.float() + self.audio_bias, dim=-1),
        )

    @torch.no_grad()
    def generate(self, prompt_ids: Tensor, prompt_mask: Tensor, sampling: SamplingConfig) -> tuple[Tensor, Tensor]:
        """Sample both streams step by step over KV caches. (R, P, 2) left-padded prompts -> completions (R, T, 2)
        and each emitted token's log-prob under the model, (R, 2T) like token_logprobs (0 outside the reply)."""
        lay, rows, dev = self.layout, prompt_ids.shape[0], prompt_ids.device
        cache = self.core.new_cache()
        attention = prompt_mask.clone()
        position = (attention.cumsum(dim=1) - 1).clamp(min=0)
        logits = self.model(
            text_ids=prompt_ids[..., TEXT], audio_ids=prompt_ids[..., AUDIO], attention_mask=attention,
            position_ids=position, cache=cache, logits_to_keep=1,
        )  # fmt: skip
        position = position[:, -1:] + 1
        ends = torch.tensor(lay.end_audio_ids, device=dev)
        text_done = torch.zeros(rows, dtype=torch.bool, device=dev)
        audio_done, finished = text_done.clone(), text_done.clone()
        steps, logps = [], []
        for step in range(sampling.max_new_tokens):
            text_lp, audio_lp = self._head_logprobs(logits[0][:, -1], logits[1][:, -1])
            text = sample_next(text_lp, sampling).squeeze(1).masked_fill(text_done, lay.filler_id)
            audio = sample_next(audio_lp, sampling).squeeze(1).masked_fill(audio_done | (step < lay.audio_delay), lay.audio_filler_id)
            text, audio = text.masked_fill(finished, lay.pad_id), audio.masked_fill(finished, lay.pad_id)
            lp = torch.stack([text_lp.gather(1, text[:, None]), audio_lp.gather(1, audio[:, None])], dim=-1).squeeze(1)
            steps.append(torch.stack([text, audio], dim=-1))
            logps.append(lp.masked_fill(finished[:, None], 0.0))
            text_done |= text == lay.text_eos_id
            audio_done |= torch.isin(audio, ends)
            finished = text_done & audio_done
            if bool(finished.all()) or step == sampling.max_new_tokens - 1:
                break
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            logits = self.model(
                text_ids=text[:, None], audio_ids=audio[:, None], attention_mask=attention, position_ids=position, cache=cache
            )
            position = position + 1
        lp = torch.stack(logps, dim=1)
        return torch.stack(steps, dim=1), torch.cat([lp[..., TEXT], lp[..., AUDIO]], dim=1)

    # ---- log-probs -----------------------------------------------------------------------------------------------
    def _forward_logprobs(self, model: torch.nn.Module, batch: SequenceBatch) -> Tensor:
        completion = batch.completion_ids
        t = completion.shape[1]
        ids = torch.cat([batch.prompt_ids, completion], dim=1)
        attention = torch.cat([batch.prompt_mask, batch.masks.completion[:, :t].long()], dim=1)
        position = (attention.cumsum(dim=1) - 1).clamp(min=0)
        text_logits, audio_logits = model(
            text_ids=ids[..., TEXT], audio_ids=ids[..., AUDIO], attention_mask=attention, position_ids=position,
            logits_to_keep=t + 1,
        )  # fmt: skip
        text_lp, audio_lp = self._head_logprobs(text_logits[:, :-1], audio_logits[:, :-1])
        out = torch.cat(
            [text_lp.gather(2, completion[..., TEXT:TEXT + 1]).squeeze(-1), audio_lp.gather(2, completion[..., AUDIO:]).squeeze(-1)],
            dim=1,
        )
        return out.masked_fill(batch.masks.completion == 0, 0.0)  # restricted heads give -inf beyond the reply

    # ---- decoding ------------------------------------------------------------------------------------------------
    def decode(self, batch: SequenceBatch) -> list[Reply]:
        replies = []
        for row in batch.completion_ids.cpu():
            text_ids, codes = self.layout.split(row, self.skip_ids)
            text = self.tokenizer.decode(text_ids, **self.decode_kwargs).strip()
            replies.append(Reply(text=text, speech_codes=codes))
        return replies
