"""The policy interface the module and objectives see, whatever the architecture (single stream or parallel heads)."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn

from wavalign.policy.masks import ModalityMasks


@dataclass
class StreamSampling:
    """One stream's own sampling settings, for parallel-stream policies (text and audio heads sampled apart).

    Temperature 0 means greedy, as in Kimi-Audio's sampler (kimia_infer/utils/sampler.py), whose infer.py uses
    audio: 0.8 / top-k 10 and text: 0.0 / top-k 5.

    Args:
        temperature: Softmax temperature of this stream, >= 0; 0 decodes it greedily (e.g. deterministic text at
            evaluation), higher values give more varied tokens.
        top_k: Keep only the k most likely tokens of this stream before sampling, >= 0; 0 turns top-k off.
        top_p: Nucleus sampling mass of this stream, in (0, 1]; 1 turns it off, lower values cut the unlikely tail.
    """

    temperature: float
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"invalid stream sampling settings {self}")


@dataclass
class SamplingConfig:
    """How replies are sampled: rollouts (`model.sampling`, paper: G = 4, temperature 0.9, top-p 0.9) or evaluation.

    Single-stream policies have one stream and use the shared settings only; parallel-stream policies may give each
    stream its own (`text`, `audio`).

    Args:
        temperature: Softmax temperature shared by all streams, > 0; lower gives a group's replies less variety
            (and GRPO less signal), higher more noise.
        top_p: Nucleus sampling mass, in (0, 1]; 1 turns it off.
        top_k: None keeps the checkpoint's own top-k when rollouts run through transformers' generate or the fused
            decoder (50 when the checkpoint sets none; the static and compiled decoders read no checkpoint setting,
            so None is off there), 0 turns top-k off, k > 0 keeps the k most likely tokens.
        max_new_tokens: Most decoding steps per reply, >= 1 (a parallel-stream step emits one token per stream);
            raise it when replies are cut short, lower it to make rollouts cheaper.
        do_sample: False decodes greedily (evaluation); True samples with the settings above.
        text: Settings that replace temperature, top_k and top_p for the text stream of a parallel-stream policy;
            None uses the shared ones.
        audio: Settings that replace temperature, top_k and top_p for the audio stream of a parallel-stream policy;
            None uses the shared ones.
        threads: CPU threads while sampling (None: torch's own setting), restored afterwards. Decoding a small model
            one token at a time gives a second thread little work: on a busy 2-core machine 1 thread decoded the
            bench's rollout 6x faster than 2, on a quieter one as fast (docs/performance.md).
    """

    temperature: float = 0.9
    top_p: float = 0.9
    top_k: int | None = None
    max_new_tokens: int = 64
    do_sample: bool = True
    text: StreamSampling | None = None
    audio: StreamSampling | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1 or (self.top_k or 0) < 0:
            raise ValueError(f"invalid sampling settings {self}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"sampling threads must be at least 1 (or null), got {self.threads}")

    def stream(self, name: str) -> "SamplingConfig":
        """The settings one stream samples with ('text' or 'audio'): its own when given, else these."""
        own = getattr(self, name)
        if own is None:
            return self
        return SamplingConfig(
            temperature=own.temperature or 1.0,
            top_p=own.top_p,
            top_k=own.top_k,
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample and own.temperature > 0,
        )


@contextmanager
def sampling_threads(sampling: SamplingConfig) -> Iterator[None]:
    """torch's CPU thread count set to sampling.threads for the block (unchanged when None), then restored."""
    if sampling.threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(sampling.threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class PromptFeatures:
    """Continuous inputs at some prompt positions (Kimi-Audio: Whisper features at the prompt's speech codes):
    mask (N, P) marks the positions, values holds one row per marked position in row-major order of the mask."""

    mask: Tensor
    values: Tensor

    def to(self, device: torch.device | str) -> "PromptFeatures":
        return PromptFeatures(self.mask.to(device), self.values.to(device))

    def repeat_rows(self, times: int) -> "PromptFeatures":
        """Each row repeated `times` times in place (prompt i -> rows i*G .. i*G+G-1), features shared, not recomputed."""
        counts = self.mask.sum(dim=1).tolist()
        chunks = self.values.split([int(c) for c in counts])
        values = torch.cat([c for c in chunks for _ in range(times)]) if chunks else self.values
        return PromptFeatures(self.mask.repeat_interleave(times, dim=0), values)


@dataclass
class SequenceBatch:
    """Prompts (left-padded) with completions (right-padded): what log-probs are computed on.

    masks are over completion positions; for parallel-stream policies, positions are the streams laid side by side.
    """

    prompt_ids: Tensor  # (N, P) single stream, or (N, P, streams) for parallel heads
    prompt_mask: Tensor  # (N, P), 1 on real prompt tokens
    completion_ids: Tensor  # (N, T) single stream, or (N, T, streams) for parallel heads
    masks: ModalityMasks  # each (N, T')
    features: PromptFeatures | None = None  # continuous prompt inputs, for policies that read them

    @property
    def rows(self) -> int:
        return self.prompt_ids.shape[0]

    def to(self, device: torch.device | str) -> "SequenceBatch":
        m = self.masks
        return SequenceBatch(
            self.prompt_ids.to(device),
            self.prompt_mask.to(device),
            self.completion_ids.to(device),
            ModalityMasks(m.completion.to(device), m.text.to(device), m.speech.to(device)),
            None if self.features is None else self.features.to(device),
        )

    def state_dict(self) -> dict[str, Tensor]:
        """The ids and masks as plain tensors, for checkpoints (continuous prompt features are not kept)."""
        m = self.masks
        return {
            "prompt_ids": self.prompt_ids,
            "prompt_mask": self.prompt_mask,
            "completion_ids": self.completion_ids,
            "completion": m.completion,
            "text": m.text,
            "speech": m.speech,
        }

    @classmethod
    def from_state(cls, state: dict[str, Tensor], device: torch.device | str = "cpu") -> "SequenceBatch":
        masks = ModalityMasks(state["completion"], state["text"], state["speech"])
        return cls(state["prompt_ids"], state["prompt_mask"], state["completion_ids"], masks).to(device)


def speech_token_count(policy: object) -> int | None:
    """How many speech codes the policy emits: on the policy (single stream) or its layout (parallel heads)."""
    return getattr(policy, "num_speech_tokens", None) or getattr(
        getattr(policy, "layout", None), "num_speech_tokens", None
    )


def check_codec_fits(policy: object, codec: object | None) -> None:
    """The policy must not emit speech codes the codec cannot decode: fail at start-up, not mid-run in a judge."""
    emits = speech_token_count(policy)
    decodes = getattr(codec, "num_codes", None)
    if emits is not None and decodes is not None and emits > decodes:
        raise ValueError(
            f"model.policy emits {emits} speech codes but model.codec ({type(codec).__name__}) decodes only "
            f"{decodes}: set the policy's num_speech_tokens to the codec's num_codes"
        )


@dataclass
class Reply:
    """One decoded reply: its text and its speech codes (codec ids, offsets removed)."""

    text: str
    speech_codes: list[int]


class SpeechPolicy(nn.Module, ABC):
    """A speech LLM behind the operations the recipe needs.

    Subclasses set `model` (the trained module, peft-wrapped under LoRA), `uses_lora` and `device`, and implement
    `_forward_logprobs`; the reference policy for the KL term and DPO is handled here, alike for every architecture.
    """

    model: nn.Module
    uses_lora: bool = False
    _frozen_reference: nn.Module | None = None
    # Sharded weights (FSDP, ZeRO-3): every forward is a collective, so a rank whose rows are all done keeps decoding
    # (pads) until every rank is done; set by wavalign.runtime.sharding.
    lockstep_decoding: bool = False

    @abstractmethod
    def prompt_ids(self, messages: Sequence[dict[str, str]], speech: Sequence[Sequence[int]]) -> list[int] | Tensor:
        """Token ids of a chat prompt, ending where the assistant's reply starts; speech fills <|audio|> slots.
        A list for single-stream policies, a (P, streams) tensor for parallel heads."""

    def example_prompt(
        self, messages: Sequence[dict[str, str]], speech: Sequence[Sequence[int]], audios: Sequence[Path]
    ) -> Any:
        """The prompt of a data row: prompt_ids, unless the policy also reads the raw prompt audio (one file per
        <|audio|> slot, Kimi-Audio's Whisper input), in which case it overrides this."""
        return self.prompt_ids(messages, speech)

    @abstractmethod
    def reply_ids(self, text: str, speech_codes: Sequence[int]) -> list[int] | Tensor:
        """The reply laid out exactly as the model emits it, EOS included (a demonstration or a DPO pair)."""

    @abstractmethod
    def make_batch(
        self, prompts: Sequence[Sequence[int] | Tensor], replies: Sequence[Sequence[int] | Tensor]
    ) -> SequenceBatch:
        """Pad prompts left and replies right, with modality masks."""

    @abstractmethod
    def rollout(
        self, prompts: Sequence[Sequence[int] | Tensor], group_size: int, sampling: SamplingConfig
    ) -> SequenceBatch:
        """Sample group_size replies per prompt; rows are grouped: prompt i owns rows i*G .. i*G+G-1."""

    @abstractmethod
    def _forward_logprobs(
        self, model: nn.Module, batch: SequenceBatch, with_entropy: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """log-probs of the batch's completion tokens under `model` (self.model, or the frozen reference copy);
        with_entropy: (log-probs, each position's detached entropy of the full distribution), same shape."""

    def token_logprobs(self, batch: SequenceBatch, reference: bool = False) -> Tensor:
        """log pi(y_t | y_<t, x) of each completion position, shape like batch.masks.completion.

        reference=True uses the frozen initial policy (LoRA adapters disabled, or a frozen copy) without grad."""
        if not reference:
            return self._forward_logprobs(self.model, batch)
        with torch.no_grad():
            if self.uses_lora:
                with self.model.disable_adapter():
                    return self._forward_logprobs(self.model, batch)
            if self._frozen_reference is None:
                raise RuntimeError("reference log-probs asked for before setup_reference()")
            if next(self._frozen_reference.parameters()).device != self.device:
                self._frozen_reference.to(self.device)
            return self._forward_logprobs(self._frozen_reference, batch)

    def token_logprobs_and_entropy(self, batch: SequenceBatch) -> tuple[Tensor, Tensor]:
        """token_logprobs of the trained policy and, from the same forward, each position's detached entropy
        H_t = -sum_v pi(v) log pi(v); positions outside the completion hold arbitrary values (mask them)."""
        return self._forward_logprobs(self.model, batch, with_entropy=True)  # type: ignore[return-value]

    def joint_logprobs(self, batches: Sequence[SequenceBatch], with_entropy: bool = False) -> list[Any]:
        """token_logprobs (with_entropy: token_logprobs_and_entropy pairs) of several batches (rollouts and
        demonstrations); a policy that can pad them into one forward and one backward overrides this. The default
        runs them one by one."""
        if with_entropy:
            return [self.token_logprobs_and_entropy(b) for b in batches]
        return [self.token_logprobs(b) for b in batches]

    @abstractmethod
    def decode(self, batch: SequenceBatch) -> list[Reply]:
        """Text and speech codes of every completion row."""

    @property
    def has_reference(self) -> bool:
        return self.uses_lora or self._frozen_reference is not None

    def setup_reference(self) -> None:
        """Make the reference policy available (called once when beta > 0 or DPO needs it): under LoRA it is the
        same weights with the adapters disabled, otherwise a frozen copy of the initial model."""
        if self.has_reference:
            return
        ref = copy.deepcopy(self.model).eval()
        if any(getattr(m, "gradient_checkpointing", False) is True for m in ref.modules()):
            ref.gradient_checkpointing_disable()  # no gradients flow through it; a train-mode forward must not recompute
        for p in ref.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, "_frozen_reference", ref)  # outside the module tree: not trained, not checkpointed
