"""A single-stream speech LLM (VITA-Audio / GLM-4-Voice style): text and speech tokens interleaved in one vocabulary.

Any transformers causal LM works, remote code included; sampling is transformers' generate with its KV cache,
from the checkpoint's own generation config. The reference policy is the same weights with the LoRA adapters
disabled (no second copy), or a frozen copy under full fine-tuning.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import LogitsProcessorList

from wavalign.policy.base import Reply, SamplingConfig, SequenceBatch, SpeechPolicy, sampling_threads
from wavalign.policy.decoding import StaticCacheSampler
from wavalign.policy.finite_logits import FiniteLogitsCheck
from wavalign.policy.forward import completion_logits, gather_logprobs, train_mode_without_dropout
from wavalign.policy.generation import checkpoint_stop_ids, rollout_generation_config
from wavalign.policy.lora import LoraSettings, apply_lora
from wavalign.policy.masks import InterleaveLayout, ModalityMasks, ModalitySpec
from wavalign.policy.prompting import ChatTemplate, render_prompt
from wavalign.policy.qwen2_decoding import Qwen2FusedSampler, check_qwen2, draw_settings
from wavalign.policy.sources import ModelSource
from wavalign.policy.vita_audio import MAIN_HEAD_ONLY, check_discrete_user_audio, check_mtp_inference_mode, mctp_layers

DECODERS = ("generate", "static", "compiled", "fused")


def _token_id(tokenizer, token: str, what: str) -> int:
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id:
        raise ValueError(f"{what} token {token!r} is not in the tokenizer's vocabulary")
    return int(tid)


class InterleavedPolicy(SpeechPolicy):
    """A single-stream policy: one causal LM whose reply interleaves chunks of text tokens and speech-code tokens.

    The options merge_chunk_tail, text_speech_separator, eos_suffix, train_mode_forward and mtp_inference_mode are
    what configs/vita_audio.yaml turns on to lay replies out and run the model as VITA-Audio's own code does; the
    defaults keep the plain layout of the tiny world.

    Args:
        source: Where the transformer and tokenizer come from (a local checkpoint, or a tiny model built from config).
        num_speech_tokens: Size of the speech codebook (codec codes 0 .. N-1), e.g. 256 in the tiny world, 16384 for
            GLM-4-Voice codes; must match the codec.
        speech_token: Name template of the codec tokens in the tokenizer, with {} for the code ("<|s_{}|>",
            GLM-4-Voice "<|audio_{}|>"); their ids must be contiguous.
        begin_audio_token: Token that opens each speech chunk; None when the model uses none.
        end_audio_token: Token that closes each speech chunk; None when the model uses none.
        eos_token: Token that ends a reply; None uses the tokenizer's own EOS. Rollouts also stop on every EOS id
            of the checkpoint's generation config (VITA-Audio's lists <|im_end|> and <|endoftext|>), as its own
            generate does; a completion ends at its first stop token, which is trained as EOS is.
        text_chunks: The reply's interleave pattern, text side: tokens per text chunk in order, the last repeating
            (VITA-Audio: [1, 4]).
        speech_chunks: The reply's interleave pattern, speech side: codes per speech chunk in order, the last
            repeating (VITA-Audio: [8]).
        chat: The chat template that turns messages into prompt text; None uses the plain default template.
        lora: LoRA adapter settings to train adapters only; None fine-tunes all weights (and keeps a frozen copy as
            the reference when the KL term or DPO needs one).
        gradient_checkpointing: Recompute activations in the backward pass: less memory for more compute; turn it
            on when long replies do not fit.
        decoder: How rollouts decode: "generate" (transformers' generate, dynamic cache), "static" (our loop over a
            reused static cache), "compiled" (the same with the one-token step compiled: fastest for long runs,
            compiles once per shape bucket) or "fused" (plain Qwen2 models only, such as the world's TinyQwen2: the
            decode step written out, 1.3-1.8x as fast as generate at the world's shapes; same distribution as
            generate, other random draws); models with MCTP layers need "generate".
        merge_chunk_tail: True: once text or speech runs out of chunks, the rest of both goes into the last chunk
            pair (VITA-Audio's text_audio_interval) instead of following in chunks of its own.
        text_speech_separator: Text appended to the reply's text when it has speech too, tokenized with it ("\\n":
            the assistant content is "text\\n<|audio|>" upstream); empty for none.
        eos_suffix: Text trained after EOS in demonstrations ("\\n": upstream supervises "<|im_end|>\\n"); never
            sampled; empty for none.
        train_mode_forward: True: a log-prob forward of a model in eval mode (the frozen reference, validation) runs
            in train mode with dropout off, as the official WavAlign trainer runs its reference (VITA-Audio's
            eval-mode forward needs generation state); a model already in train mode runs as it is.
        mtp_inference_mode: The MCTP schedule of rollouts on models with MCTP layers, as pairs (main-head tokens,
            MCTP tokens), the last pair repeating; [8192, 0] samples from the main head only, whose log-probs are
            the ones trained.
    """

    def __init__(
        self,
        source: ModelSource,
        num_speech_tokens: int,
        speech_token: str = "<|s_{}|>",
        begin_audio_token: str | None = "<|begin_audio|>",
        end_audio_token: str | None = "<|end_audio|>",
        eos_token: str | None = None,
        text_chunks: list[int] = [4],
        speech_chunks: list[int] = [8],
        chat: ChatTemplate | None = None,
        lora: LoraSettings | None = None,
        gradient_checkpointing: bool = False,
        decoder: str = "generate",
        merge_chunk_tail: bool = False,
        text_speech_separator: str = "",
        eos_suffix: str = "",
        train_mode_forward: bool = False,
        mtp_inference_mode: list[int] = list(MAIN_HEAD_ONLY),
    ) -> None:
        super().__init__()
        model, tokenizer = source.build()
        check_discrete_user_audio(model)
        self.tokenizer = tokenizer
        self.chat = chat or ChatTemplate()
        self.speech_offset = _token_id(tokenizer, speech_token.format(0), "first speech")
        last = _token_id(tokenizer, speech_token.format(num_speech_tokens - 1), "last speech")
        if last - self.speech_offset != num_speech_tokens - 1:
            raise ValueError(f"speech tokens {speech_token} are not contiguous ids ({self.speech_offset}..{last})")
        self.num_speech_tokens = num_speech_tokens
        begin = _token_id(tokenizer, begin_audio_token, "begin-of-audio") if begin_audio_token else None
        end = _token_id(tokenizer, end_audio_token, "end-of-audio") if end_audio_token else None
        eos = _token_id(tokenizer, eos_token, "EOS") if eos_token else tokenizer.eos_token_id
        if eos is None:
            raise ValueError("the tokenizer has no EOS token: set eos_token in the policy config")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        self.spec = ModalitySpec(
            speech_ranges=((self.speech_offset, self.speech_offset + num_speech_tokens),),
            eos_id=eos,
            pad_id=pad,
            boundary_ids=tuple(b for b in (begin, end) if b is not None),
            stop_ids=tuple(s for s in checkpoint_stop_ids(model) if s != eos),
        )
        self.layout = InterleaveLayout(tuple(text_chunks), tuple(speech_chunks), begin, end, merge_chunk_tail)
        self.text_speech_separator = text_speech_separator
        self.eos_suffix_ids = tokenizer.encode(eos_suffix, add_special_tokens=False) if eos_suffix else []
        if eos_suffix and not self.eos_suffix_ids:
            raise ValueError(f"eos_suffix {eos_suffix!r} encodes to no tokens")
        self.train_mode_forward = train_mode_forward
        self.mtp_inference_mode = check_mtp_inference_mode(mtp_inference_mode)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.uses_lora = lora is not None
        self.model = apply_lora(model, lora) if lora is not None else model
        self._frozen_reference: torch.nn.Module | None = None
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if decoder != "generate" and mctp_layers(model) > 0:
            raise ValueError(
                f"decoder {decoder!r} cannot run a model with MCTP layers: its forward keeps generation state that only "
                "its own generate() sets up; use decoder: generate"
            )
        if decoder == "fused":
            check_qwen2(self.model)
        self.decoder = decoder
        self._sampler: StaticCacheSampler | Qwen2FusedSampler | None = None

    # ---- token layout -------------------------------------------------------------------------------------------
    def encode_speech(self, codes: Sequence[int]) -> list[int]:
        if any(not 0 <= c < self.num_speech_tokens for c in codes):
            raise ValueError(f"speech codes must lie in [0, {self.num_speech_tokens})")
        body = [self.speech_offset + int(c) for c in codes]
        b, e = self.layout.begin_audio_id, self.layout.end_audio_id
        return ([b] if b is not None else []) + body + ([e] if e is not None else [])

    def encode_text(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def prompt_ids(self, messages: Sequence[dict[str, str]], speech: Sequence[Sequence[int]]) -> list[int]:
        return render_prompt(self.chat, messages, speech, self.encode_text, self.encode_speech)

    def reply_ids(self, text: str, speech_codes: Sequence[int]) -> list[int]:
        speech = [self.speech_offset + int(c) for c in speech_codes]
        if text and speech:
            text += self.text_speech_separator
        return self.layout.layout(self.encode_text(text), speech, self.spec.eos_id) + self.eos_suffix_ids

    def masks(self, completion: Tensor) -> ModalityMasks:
        """The spec's masks, with the eos_suffix tokens right after a row's first stop token counted as text when
        that token is EOS (the suffix follows EOS in demonstrations; a reply that stopped on another token ends
        there)."""
        m = self.spec.masks(completion)
        n = len(self.eos_suffix_ids)
        if not n:
            return m
        suffix = torch.as_tensor(self.eos_suffix_ids, device=completion.device)
        stops = self.spec.is_stop(completion)
        for row, ids in enumerate(completion):
            eos = stops[row].nonzero()
            if len(eos) and int(ids[int(eos[0])]) != self.spec.eos_id:
                continue
            if len(eos) and torch.equal(ids[int(eos[0]) + 1 : int(eos[0]) + 1 + n], suffix):
                m.completion[row, int(eos[0]) + 1 : int(eos[0]) + 1 + n] = 1.0
                m.text[row, int(eos[0]) + 1 : int(eos[0]) + 1 + n] = 1.0
        return m

    def make_batch(self, prompts: Sequence[Sequence[int]], replies: Sequence[Sequence[int]]) -> SequenceBatch:
        pad = self.spec.pad_id
        p_len = max(len(p) for p in prompts)
        r_len = max(len(r) for r in replies)
        prompt_ids = torch.full((len(prompts), p_len), pad, dtype=torch.long)
        prompt_mask = torch.zeros((len(prompts), p_len), dtype=torch.long)
        completion = torch.full((len(replies), r_len), pad, dtype=torch.long)
        for i, p in enumerate(prompts):
            prompt_ids[i, p_len - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
            prompt_mask[i, p_len - len(p) :] = 1
        for i, r in enumerate(replies):
            completion[i, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        return SequenceBatch(prompt_ids, prompt_mask, completion, self.masks(completion)).to(self.device)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ---- sampling ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, prompts: Sequence[Sequence[int]], group_size: int, sampling: SamplingConfig) -> SequenceBatch:
        base = self.make_batch(prompts, [[self.spec.eos_id]] * len(prompts))
        ids = base.prompt_ids.repeat_interleave(group_size, dim=0)
        attn = base.prompt_mask.repeat_interleave(group_size, dim=0)
        was_training = self.model.training
        self.model.eval()
        try:
            with sampling_threads(sampling):
                completion = self._sample(ids, attn, sampling)
        finally:
            self.model.train(was_training)
        if completion.shape[1] == 0:
            completion = torch.full((ids.shape[0], 1), self.spec.pad_id, dtype=torch.long, device=ids.device)
        return SequenceBatch(ids, attn, completion, self.masks(completion))

    def _sample(self, ids: Tensor, attn: Tensor, sampling: SamplingConfig) -> Tensor:
        if self.decoder == "fused":
            return self._sample_fused(ids, attn, sampling)
        if self.decoder != "generate":
            if not isinstance(self._sampler, StaticCacheSampler):  # none yet, or the fused one
                self._sampler = StaticCacheSampler(self.model, compile=self.decoder == "compiled")
            stops = self.spec.all_stop_ids
            return self._sampler.sample(ids, attn, sampling, stops, self.spec.pad_id, self.lockstep_decoding)
        config = rollout_generation_config(
            self.model, sampling, self.spec.all_stop_ids, self.spec.pad_id, self.mtp_inference_mode
        )
        synced = {"synced_gpus": True} if self.lockstep_decoding else {}  # transformers' lockstep across ranks
        checked = LogitsProcessorList([FiniteLogitsCheck()])  # NaN/inf logits: a clean error, not multinomial's
        out = self.model.generate(
            input_ids=ids, attention_mask=attn, generation_config=config, logits_processor=checked, **synced
        )
        return out[:, ids.shape[1] :]

    def _sample_fused(self, ids: Tensor, attn: Tensor, sampling: SamplingConfig) -> Tensor:
        """The fused loop, sampling as generate would from the same generation config (the checkpoint's top-k)."""
        if self.lockstep_decoding:
            raise ValueError("decoder 'fused' cannot decode in lockstep across ranks (sharded weights): use generate")
        if not isinstance(self._sampler, Qwen2FusedSampler):  # none yet, or the static one of another decoder
            self._sampler = Qwen2FusedSampler(self.model)
        stops = self.spec.all_stop_ids
        config = rollout_generation_config(self.model, sampling, stops, self.spec.pad_id, self.mtp_inference_mode)
        return self._sampler.sample(ids, attn, draw_settings(config), sampling.max_new_tokens, stops, self.spec.pad_id)

    # ---- log-probs -----------------------------------------------------------------------------------------------
    def _forward_logprobs(
        self, model: torch.nn.Module, batch: SequenceBatch, with_entropy: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        completion = batch.completion_ids
        ids = torch.cat([batch.prompt_ids, completion], dim=1)
        attn = torch.cat([batch.prompt_mask, batch.masks.completion.long()], dim=1)
        position_ids = (attn.cumsum(dim=1) - 1).clamp(min=0)
        # a model in train mode (the policy during training) runs as it is, as upstream's policy forward does
        mode = train_mode_without_dropout(model) if self.train_mode_forward and not model.training else nullcontext()
        with mode:
            logits = completion_logits(model, ids, attn, position_ids, batch.prompt_ids.shape[1])
        return gather_logprobs(logits, completion, with_entropy)

    def joint_logprobs(self, batches: Sequence[SequenceBatch], with_entropy: bool = False) -> list[Any]:
        """One forward over all rows: prompts re-padded left and completions right to the common lengths (padding
        changes no log-prob: attention masks and position ids skip it), then split back. On a small model this
        saves a forward and a backward pass of fixed per-layer overhead."""
        if len(batches) < 2:
            return super().joint_logprobs(batches, with_entropy)
        p_len = max(b.prompt_ids.shape[1] for b in batches)
        t_len = max(b.completion_ids.shape[1] for b in batches)
        pad = self.spec.pad_id

        def grow(x: Tensor, length: int, value: int | float, left: bool) -> Tensor:
            extra = length - x.shape[1]
            return F.pad(x, (extra, 0) if left else (0, extra), value=value)

        def right(name: str) -> Tensor:
            return torch.cat([grow(getattr(b.masks, name), t_len, 0.0, False) for b in batches])

        joint = SequenceBatch(
            torch.cat([grow(b.prompt_ids, p_len, pad, True) for b in batches]),
            torch.cat([grow(b.prompt_mask, p_len, 0, True) for b in batches]),
            torch.cat([grow(b.completion_ids, t_len, pad, False) for b in batches]),
            ModalityMasks(right("completion"), right("text"), right("speech")),
        )
        if with_entropy:
            logp, entropy = self.token_logprobs_and_entropy(joint)
        else:
            logp, entropy = self.token_logprobs(joint), None
        out: list[Any] = []
        row = 0
        for b in batches:
            part = (slice(row, row + b.rows), slice(0, b.completion_ids.shape[1]))
            out.append(logp[part] if entropy is None else (logp[part], entropy[part]))
            row += b.rows
        return out

    # ---- decoding ------------------------------------------------------------------------------------------------
    def decode(self, batch: SequenceBatch) -> list[Reply]:
        replies = []
        for row in batch.completion_ids.tolist():
            text_ids, codes = self.spec.split_reply(row, self.speech_offset)
            text = self.tokenizer.decode(text_ids, skip_special_tokens=True).strip()
            replies.append(Reply(text=text, speech_codes=codes))
        return replies
