"""The log-prob forward of a causal LM, right whatever its forward's signature and its eval-mode quirks.

Why: transformers renamed the "keep only the last n logits" argument (`num_logits_to_keep` up to 4.4x,
`logits_to_keep` since), and remote-code models (VITA-Audio) take the old name and swallow unknown keywords, so
passing the wrong one silently returns logits for every position; reading those as the reply's shifts every
log-prob onto a prompt position. Here the argument the forward accepts is passed, and the returned length is
checked: the last n positions, or all of them (then sliced by prompt length), or an error.

VITA-Audio's forward in eval mode also reads generation state (prefill length, MCTP schedule) that only its
`generate` sets up; the official WavAlign trainer runs its reference forward in train mode, so
`train_mode_without_dropout` does that with dropout off, which makes it the same function as eval mode.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn

KEEP_ARGUMENTS = ("logits_to_keep", "num_logits_to_keep")  # transformers >= 4.49, and the older name


def _unwrapped(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (whose forward takes **kwargs and passes them on)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def logits_keep_argument(model: nn.Module) -> str | None:
    """The keyword this model's forward takes to return only the last n positions' logits, or None."""
    params = inspect.signature(_unwrapped(model).forward).parameters
    return next((name for name in KEEP_ARGUMENTS if name in params), None)


def completion_logits(
    model: nn.Module, ids: Tensor, attention_mask: Tensor, position_ids: Tensor, prompt_len: int
) -> Tensor:
    """Logits predicting each token after the first `prompt_len` of `ids`: shape (rows, T, vocab), T = len - prompt_len.

    Raises RuntimeError when the model returns neither the asked last T + 1 positions nor all of them."""
    total = ids.shape[1]
    t = total - prompt_len
    if prompt_len < 1 or t < 1:
        raise ValueError(f"need a prompt and a completion, got {prompt_len} prompt and {t} completion positions")
    keep = logits_keep_argument(model)
    kwargs = {keep: t + 1} if keep else {}
    logits = model(
        input_ids=ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False, **kwargs
    ).logits
    if logits.shape[:2] == (ids.shape[0], t + 1) and keep:
        return logits[:, :-1, :]
    if logits.shape[:2] == (ids.shape[0], total):
        return logits[:, prompt_len - 1 : total - 1, :]
    raise RuntimeError(
        f"the model returned logits for {tuple(logits.shape[:2])} (rows, positions); expected the last {t + 1} "
        f"positions{f' (asked with {keep}={t + 1})' if keep else ''} or all {total}: its forward neither keeps the "
        "asked logits nor returns them all"
    )


@contextmanager
def train_mode_without_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Run `model` in train mode with every dropout off, then restore each module's mode and rates.

    Dropout modules are put in eval mode; float `attention_dropout` / `dropout` attributes that modules pass to
    their attention kernels (Qwen2 does) are set to 0 for the duration."""
    modes = {m: m.training for m in model.modules()}
    rates: list[tuple[nn.Module, str, float]] = []
    model.train()
    try:
        for m in model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
            for name in ("attention_dropout", "dropout"):
                value = getattr(m, name, None)
                if isinstance(value, float) and value > 0:
                    rates.append((m, name, value))
                    setattr(m, name, 0.0)
        yield model
    finally:
        for m, name, value in rates:
            setattr(m, name, value)
        for m, mode in modes.items():
            m.training = mode


ENTROPY_CHUNK_ELEMENTS = 1 << 24  # at most this many extra vocabulary entries alive while entropy is summed (64 MiB)


def token_entropy(log_probs: Tensor) -> Tensor:
    """H_t = -sum_v p_v log p_v of each position of full-vocabulary log-probs (rows, T, vocab), detached.

    Why this way: the forward already holds the log-softmax (autograd keeps it for the backward), so entropy is read
    from it under no_grad, a few rows at a time: the extra memory is a few temporaries of one chunk (at most
    ENTROPY_CHUNK_ELEMENTS entries each), freed before the next chunk, and only the (rows, T) result is kept. A -inf
    log-prob (a head that masks tokens) counts as p log p = 0, never NaN."""
    rows, steps, vocab = log_probs.shape
    per_chunk = max(1, ENTROPY_CHUNK_ELEMENTS // max(1, steps * vocab))
    if rows == 0:
        return log_probs.new_zeros(0, steps)
    with torch.no_grad():
        return torch.cat([_entropy(chunk) for chunk in log_probs.split(per_chunk)])


def _entropy(log_probs: Tensor) -> Tensor:
    """-sum p log p with -inf log-probs (p = 0) read as the most negative finite value, so 0 x -inf gives 0."""
    finite = log_probs.clamp(min=torch.finfo(log_probs.dtype).min)
    return -(log_probs.exp() * finite).sum(dim=-1)


def gather_logprobs(logits: Tensor, targets: Tensor, with_entropy: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """log-softmax of (rows, T, vocab) logits in at least float32, read at (rows, T) targets; with_entropy: also
    each position's detached entropy (token_entropy), as (log-probs, entropy)."""
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    picked = torch.gather(logp, 2, targets.unsqueeze(-1)).squeeze(-1)
    return (picked, token_entropy(logp)) if with_entropy else picked
