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
blanks; message text on the text stream with audio-stream blanks (parallel_layout.py; chat.merge_turns as Kimi-Audio).
stop_on="audio" ends a reply at its end-of-audio step, as Kimi-Audio's decode loop does when it outputs speech.
A source with a continuous encoder (KimiAudioCheckpoint with whisper_features) adds Whisper features of the raw prompt
audio at the speech-code steps; they are computed once per prompt (example_prompt), ride the batch (SequenceBatch.
features) through rollouts, the KV-cache prefill, training and reference log-probs, and are never recomputed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from wavalign.policy.base import PromptFeatures, Reply, SamplingConfig, SequenceBatch, SpeechPolicy, sampling_threads
from wavalign.policy.decoding import sample_next, still_running
from wavalign.policy.finite_logits import check_finite_logits
from wavalign.policy.forward import token_entropy
from wavalign.policy.lora import LoraSettings, apply_lora
from wavalign.policy.parallel_layout import (  # noqa: F401  (StreamLayout, ParallelChatTemplate: public here too)
    AUDIO,
    TEXT,
    ParallelChatTemplate,
    ParallelPrompt,
    PromptIds,
    StreamLayout,
    build_prompt,
)
from wavalign.policy.parallel_model import ParallelLM, ParallelSource


def _lookup(tokenizer: Any, token: str, what: str) -> int:
    """A token's id; Kimi-Audio's tokenizer keeps its specials in a `special_tokens` dict (kimia_infer reads it)."""
    table = getattr(tokenizer, "special_tokens", None)
    tid = table.get(token) if isinstance(table, dict) else None
    if tid is None:
        tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == getattr(tokenizer, "unk_token_id", None):
        raise ValueError(f"{what} token {token!r} is not in the tokenizer's vocabulary")
    return int(tid)


def _pairs(x: Sequence[Sequence[int]] | Tensor | ParallelPrompt) -> Tensor:
    out = torch.as_tensor(x.ids if isinstance(x, ParallelPrompt) else x, dtype=torch.long)
    if out.dim() != 2 or out.shape[1] != 2:
        raise ValueError(f"a parallel-stream sequence must have shape (steps, 2), got {tuple(out.shape)}")
    return out.cpu()


class ParallelPolicy(SpeechPolicy):
    """A parallel-stream policy: a two-head model that emits one text token and one audio token at every step.

    Speech codes are token ids speech_offset + code. A source whose continuous_encoder() is not None makes the
    prompts of data rows carry its features (example_prompt), and plain prompt_ids refuse prompt speech.

    Args:
        source: Where the two-head model and tokenizer come from (TinyParallel, KimiAudioCheckpoint).
        num_speech_tokens: Size of the speech codebook (codec codes 0 .. N-1), e.g. 16384 for Kimi-Audio; must
            match the codec.
        speech_token: Name template of the codec tokens, with {} for the code, whose ids must be contiguous; used
            only when speech_offset is None.
        speech_offset: Token id of speech code 0 (Kimi-Audio: 152064, its codes have no token names); None looks it
            up through speech_token.
        text_eos_token: Token that ends the text stream of a reply (Kimi-Audio: <|im_kimia_text_eos|>).
        end_audio_tokens: Tokens that end the audio stream, any of them; demonstrations end with the first.
        filler_token: The text stream's blank, emitted after its EOS while speech goes on (Kimi-Audio:
            <|im_kimia_text_blank|>); also the audio blank unless audio_filler_token is given.
        audio_filler_token: The audio stream's blank (during the delay and after its end); None uses filler_token,
            as Kimi-Audio does.
        pad_token: Token that pads beyond a reply's end (never read); None uses the tokenizer's pad token, or the
            blank when it has none.
        audio_delay: Blank steps the audio stream waits before its first code, >= 0 (Kimi-Audio: 6).
        stop_on: When a reply ends: "both" (once both streams have ended) or "audio" (as soon as its audio stream
            ends, Kimi-Audio's rule; a longer text holds the audio open with blanks until the text's EOS).
        chat: Prompt markup on the audio stream (role, message-end and media tokens, turn merging); None uses the
            default ParallelChatTemplate.
        restrict_heads: Keep each head to its own stream's tokens (the text head never emits speech codes; the
            audio head emits codes, end-of-audio markers and its blank), in sampling and in log-probs alike. Off by
            default: each head's log-softmax over the whole vocabulary, the model's own distribution, as Kimi-Audio's
            sampler reads it. On, the masked tokens get -inf and every log-prob, the KL and the rollouts come from the
            renormalised rest: log p shifts up by -log(mass kept), up to ~2 nats a token on a random checkpoint.
        zero_text_skips_embedding: Kimi-Audio's decode rule: in rollouts, a row whose text ids in one model call sum
            to 0 (a decode step whose text token is id 0) is fed no text embedding, its audio embedding alone
            (MoonshotKimiaModel.forward adds the text embedding only when `text_input_ids.sum() != 0`, and
            kimia_infer's _generate_loop calls it one step at a time). Teacher-forced log-probs read the whole
            sequence in one call, whose sum is not 0, so they add embed(0) there, as upstream's forward does in
            training: after a text id 0, log-probs and the rollout's own sampling distribution differ (see
            configs/kimi_audio.yaml). Off: the text embedding is always added, rollouts and log-probs alike.
        lora: LoRA adapter settings to train adapters only; None fine-tunes all weights (and keeps a frozen copy as
            the reference when the KL term or DPO needs one).
        gradient_checkpointing: Recompute activations in the backward pass: less memory for more compute.
        encode_kwargs: Keyword arguments for the tokenizer's encode (Kimi-Audio: {bos: false, eos: false}); None
            gives {add_special_tokens: false}.
        decode_kwargs: Keyword arguments for the tokenizer's decode (Kimi-Audio: {}); None gives
            {skip_special_tokens: true}.
    """

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
        stop_on: str = "both",
        chat: ParallelChatTemplate | None = None,
        restrict_heads: bool = False,
        zero_text_skips_embedding: bool = False,
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
            raise ValueError(
                f"speech ids {speech_offset}..{speech_offset + num_speech_tokens - 1} exceed the vocabulary ({model.vocab_size})"
            )
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
            stop_on=stop_on,
        )
        chat = self.chat
        self.prompt_tokens = PromptIds(
            roles={role: ids(tok, f"{role} role") for role, tok in chat.role_tokens.items()},
            message_end=[ids(t, "message end") for t in chat.message_end],
            speech_open=[ids(chat.speech_begin, "speech begin")] if chat.speech_begin else [],
            speech_close=[ids(chat.speech_end, "speech end")] if chat.speech_end else [],
            suffix=[ids(t, "speech suffix") for t in chat.speech_suffix],
            merge_turns=chat.merge_turns,
        )
        self.role_ids = self.prompt_tokens.roles
        self.skip_ids = (
            frozenset(self.role_ids.values())
            | frozenset(self.prompt_tokens.message_end)
            | frozenset(self.layout.end_audio_ids)
        )
        # outside the module tree: frozen, never checkpointed (WhisperFeatures for Kimi-Audio)
        object.__setattr__(self, "features_encoder", source.continuous_encoder())
        if self.features_encoder is not None and getattr(model, "vq_adaptor", None) is None:
            raise ValueError("the source gives a continuous encoder but its model has no feature adaptor (vq_adaptor)")
        self._register_head_biases(model.vocab_size, restrict_heads)
        self.zero_text_skips_embedding = zero_text_skips_embedding
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

    def build_prompt(self, messages: Sequence[dict[str, str]], speech: Sequence[Sequence[int]]) -> ParallelPrompt:
        """The prompt's two streams, which steps hold speech codes, and where each speech segment starts."""
        return build_prompt(messages, speech, self.prompt_tokens, self.layout, self.encode_text)

    def prompt_ids(self, messages: Sequence[dict[str, str]], speech: Sequence[Sequence[int]]) -> Tensor:
        """(P, 2) ids: role markers, message text (text stream) and speech (audio stream), see parallel_layout."""
        if self.features_encoder is not None and speech:
            raise ValueError(
                "this policy feeds Whisper features with prompt speech: build the prompt with example_prompt(messages, speech, audios)"
            )
        return self.build_prompt(messages, speech).ids

    def example_prompt(
        self, messages: Sequence[dict[str, str]], speech: Sequence[Sequence[int]], audios: Sequence[Path]
    ) -> Tensor | ParallelPrompt:
        """prompt_ids, plus (with a continuous encoder) the features of each prompt audio file at its codes' steps:
        Kimi-Audio keeps a segment's first n feature rows for its n codes (MoonshotKimiaModel.forward)."""
        if self.features_encoder is None or not speech:
            return self.build_prompt(messages, speech).ids
        if len(audios) != len(speech):
            raise ValueError(
                f"Whisper features need the raw audio of every prompt speech segment ('audios'): got {len(audios)} files for {len(speech)} segments"
            )
        prompt = self.build_prompt(messages, speech)
        rows = []
        for path, (_, n) in zip(audios, prompt.spans):
            feats = self.features_encoder.file(path, self.device)
            if feats.shape[0] < n:
                raise ValueError(
                    f"audio {path}: {feats.shape[0]} Whisper steps (12.5 Hz) but {n} speech codes: the codes do not come from this audio"
                )
            rows.append(feats[:n])
        prompt.features = torch.cat(rows) if rows else None
        return prompt

    def reply_ids(self, text: str, speech_codes: Sequence[int]) -> Tensor:
        return self.layout.reply(self.encode_text(text), speech_codes)

    def _left_pad(self, prompts: Sequence[Any]) -> tuple[Tensor, Tensor]:
        ids, mask, _ = self._pad_prompts(prompts)
        return ids, mask

    def _pad_prompts(self, prompts: Sequence[Any]) -> tuple[Tensor, Tensor, PromptFeatures | None]:
        """Left-padded (N, P, 2) ids and (N, P) mask, and the prompts' continuous features (None when none has any)."""
        rows = [_pairs(p) for p in prompts]
        length = max(len(p) for p in rows)
        ids = torch.full((len(rows), length, 2), self.layout.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        where = torch.zeros((len(rows), length), dtype=torch.bool)
        values = []
        for i, (p, prompt) in enumerate(zip(rows, prompts)):
            ids[i, length - len(p) :] = p
            mask[i, length - len(p) :] = 1
            if isinstance(prompt, ParallelPrompt) and prompt.features is not None:
                where[i, length - len(p) :] = prompt.continuous
                values.append(prompt.features)
        features = PromptFeatures(where, torch.cat(values)).to(self.device) if values else None
        return ids.to(self.device), mask.to(self.device), features

    def make_batch(
        self, prompts: Sequence[Sequence[Sequence[int]] | Tensor], replies: Sequence[Sequence[Sequence[int]] | Tensor]
    ) -> SequenceBatch:
        prompt_ids, prompt_mask, features = self._pad_prompts(prompts)
        rows = [_pairs(r) for r in replies]
        completion = torch.full((len(rows), max(len(r) for r in rows), 2), self.layout.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            completion[i, : len(r)] = r
        completion = completion.to(self.device)
        return SequenceBatch(prompt_ids, prompt_mask, completion, self.layout.masks(completion), features)

    # ---- sampling ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(
        self, prompts: Sequence[Sequence[Sequence[int]] | Tensor], group_size: int, sampling: SamplingConfig
    ) -> SequenceBatch:
        ids, mask, features = self._pad_prompts(prompts)
        ids, mask = ids.repeat_interleave(group_size, dim=0), mask.repeat_interleave(group_size, dim=0)
        features = None if features is None else features.repeat_rows(group_size)
        was_training = self.model.training
        self.model.eval()
        try:
            with sampling_threads(sampling):
                completion, _ = self.generate(ids, mask, sampling, features)
        finally:
            self.model.train(was_training)
        return SequenceBatch(ids, mask, completion, self.layout.masks(completion), features)

    def _head_logprobs(self, text_logits: Tensor, audio_logits: Tensor) -> tuple[Tensor, Tensor]:
        up = torch.promote_types(text_logits.dtype, torch.float32)  # bf16 -> float32; float64 stays float64
        return (
            F.log_softmax(text_logits.to(up) + self.text_bias, dim=-1),
            F.log_softmax(audio_logits.to(up) + self.audio_bias, dim=-1),
        )

    def _text_rows(self, text_ids: Tensor) -> Tensor | None:
        """Which rows of one decode call get a text embedding: under zero_text_skips_embedding those whose text ids
        (padding zeroed) do not sum to 0, Kimi-Audio's per-call test with a batch of one; else all (None)."""
        return text_ids.sum(dim=1) != 0 if self.zero_text_skips_embedding else None

    @torch.no_grad()
    def generate(
        self, prompt_ids: Tensor, prompt_mask: Tensor, sampling: SamplingConfig, features: PromptFeatures | None = None
    ) -> tuple[Tensor, Tensor]:
        """Sample both streams step by step over KV caches (features enter with the prompt's prefill). (R, P, 2)
        left-padded prompts -> completions (R, T, 2) and each emitted token's log-prob under the model, (R, 2T) like
        token_logprobs (0 outside the reply). Each stream samples with its own settings (sampling.stream)."""
        lay, rows, dev = self.layout, prompt_ids.shape[0], prompt_ids.device
        text_sampling, audio_sampling = sampling.stream("text"), sampling.stream("audio")
        cache = self.core.new_cache()
        attention = prompt_mask.clone()
        position = (attention.cumsum(dim=1) - 1).clamp(min=0)
        logits = self.model(
            text_ids=prompt_ids[..., TEXT],
            audio_ids=prompt_ids[..., AUDIO],
            attention_mask=attention,
            position_ids=position,
            cache=cache,
            logits_to_keep=1,
            continuous=None if features is None else features.mask,
            features=None if features is None else features.values,
            text_rows=self._text_rows(prompt_ids[..., TEXT] * prompt_mask),
        )
        position = position[:, -1:] + 1
        ends = torch.tensor(lay.end_audio_ids, device=dev)
        text_done = torch.zeros(rows, dtype=torch.bool, device=dev)
        audio_done, finished = text_done.clone(), text_done.clone()
        steps, logps = [], []
        for step in range(sampling.max_new_tokens):
            text_lp, audio_lp = self._head_logprobs(logits[0][:, -1], logits[1][:, -1])
            check_finite_logits(text_lp), check_finite_logits(audio_lp)  # NaN/inf: a clean error before sampling
            text = sample_next(text_lp, text_sampling).squeeze(1).masked_fill(text_done, lay.filler_id)
            audio = (
                sample_next(audio_lp, audio_sampling)
                .squeeze(1)
                .masked_fill(audio_done | (step < lay.audio_delay), lay.audio_filler_id)
            )
            text, audio = text.masked_fill(finished, lay.pad_id), audio.masked_fill(finished, lay.pad_id)
            lp = torch.stack([text_lp.gather(1, text[:, None]), audio_lp.gather(1, audio[:, None])], dim=-1).squeeze(1)
            steps.append(torch.stack([text, audio], dim=-1))
            logps.append(lp.masked_fill(finished[:, None], 0.0))
            text_done |= text == lay.text_eos_id
            audio_done |= torch.isin(audio, ends)
            finished = audio_done if lay.stop_on == "audio" else text_done & audio_done
            if not still_running(finished, self.lockstep_decoding) or step == sampling.max_new_tokens - 1:
                break
            attention = torch.cat([attention, torch.ones_like(attention[:, :1])], dim=1)
            logits = self.model(
                text_ids=text[:, None],
                audio_ids=audio[:, None],
                attention_mask=attention,
                position_ids=position,
                cache=cache,
                text_rows=self._text_rows(text[:, None]),
            )
            position = position + 1
        lp = torch.stack(logps, dim=1)
        return torch.stack(steps, dim=1), torch.cat([lp[..., TEXT], lp[..., AUDIO]], dim=1)

    # ---- log-probs -----------------------------------------------------------------------------------------------
    def _forward_logprobs(
        self, model: torch.nn.Module, batch: SequenceBatch, with_entropy: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        completion = batch.completion_ids
        t = completion.shape[1]
        ids = torch.cat([batch.prompt_ids, completion], dim=1)
        attention = torch.cat([batch.prompt_mask, batch.masks.completion[:, :t].long()], dim=1)
        position = (attention.cumsum(dim=1) - 1).clamp(min=0)
        continuous = values = None
        if batch.features is not None:  # the prompt's feature positions, none in the completion
            continuous = torch.cat(
                [batch.features.mask, torch.zeros_like(completion[..., TEXT], dtype=torch.bool)], dim=1
            )
            values = batch.features.values
        text_logits, audio_logits = model(
            text_ids=ids[..., TEXT],
            audio_ids=ids[..., AUDIO],
            attention_mask=attention,
            position_ids=position,
            logits_to_keep=t + 1,
            continuous=continuous,
            features=values,
        )
        text_lp, audio_lp = self._head_logprobs(text_logits[:, :-1], audio_logits[:, :-1])
        out = torch.cat(
            [
                text_lp.gather(2, completion[..., TEXT : TEXT + 1]).squeeze(-1),
                audio_lp.gather(2, completion[..., AUDIO:]).squeeze(-1),
            ],
            dim=1,
        )
        outside = batch.masks.completion == 0
        out = out.masked_fill(outside, 0.0)  # restricted heads give -inf beyond the reply
        if not with_entropy:
            return out
        entropy = torch.cat([token_entropy(text_lp), token_entropy(audio_lp)], dim=1)  # each head's own distribution
        return out, entropy.masked_fill(outside, 0.0)

    # ---- decoding ------------------------------------------------------------------------------------------------
    def decode(self, batch: SequenceBatch) -> list[Reply]:
        replies = []
        for row in batch.completion_ids.cpu():
            text_ids, codes = self.layout.split(row, self.skip_ids)
            text = self.tokenizer.decode(text_ids, **self.decode_kwargs).strip()
            replies.append(Reply(text=text, speech_codes=codes))
        return replies
