"""The SpeechPolicy contract (policy/base.py), checked the same way on every backbone: what the module, the objectives
and the gate rely on, whatever the architecture, so a new backbone is trusted once it passes here.

A new backbone joins by adding ONE line to BACKBONES: Backbone(name, builder, reference). The builder makes the policy
(a tiny random checkpoint of the real shapes, from the fixtures its own tests use); the reference is the float64
log-probs of one unpadded row from the model's own forward, written once per architecture family (a causal LM's
logits, a two-head model's heads), so a backbone of an existing family reuses one.

How the backbones legitimately differ, and how the contract says it through the interface instead of skipping:
- single stream (interleaved: tiny, VITA-Audio) or parallel heads (tiny parallel, Kimi-Audio): completion_ids is
  (N, T) or (N, T, streams) and the masks and log-probs are (N, T) or (N, streams * T), the streams side by side
  (SequenceBatch's docstring); `positions` lays ids out that way, so one set of checks reads both;
- Kimi-Audio reads Whisper features of the raw prompt audio: every prompt is built with example_prompt (messages,
  codes and the audio files), which is prompt_ids for the others, and features must follow their rows;
- the tokens around the content differ (VITA's "\\n" separator and "<|im_end|>\\n", Kimi's blanks, delays and
  end-of-audio markers): the checks name the text words and the speech codes by what reply_ids does with them
  (`content_ids`), not by a backbone's token names; single-stream log-probs outside the mask are whatever the
  forward gives (finite), parallel ones are 0: the contract asks for finite values that the mask then ignores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_policy
from kimi_tiny import kimi_policy, write_noise, write_tiny_kimi
from test_parallel import tiny_parallel
from torch import Tensor
from vita_fixtures import quirky  # noqa: F401 (fixture)
from vita_policy import vita_policy

from wavalign.policy.base import Reply, SamplingConfig, SequenceBatch, SpeechPolicy, speech_token_count

# (messages, speech codes per <|audio|> slot): distinct prompts of different lengths, so left padding differs too;
# at most 7 codes per slot, the Whisper steps of the 0.5 s audio files (Kimi-Audio keeps a step per code)
PROMPTS = [
    ([{"role": "user", "content": "<|audio|>"}], [[1, 2, 3]]),
    ([{"role": "system", "content": "one plus one"}, {"role": "user", "content": "<|audio|>"}], [[4, 5, 6, 7, 0, 2]]),
]
GROUP = 3
SAMPLING = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=10)
GREEDY = SamplingConfig(max_new_tokens=8, do_sample=False)
# demonstrations: text with speech, text alone, speech alone (words of the tiny vocabularies, lower case)
TEXT_A, CODES_A = "two plus two is four", [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
TEXT_B, CODES_B = "six", [8, 7]
ATOL = 1e-9  # float64 throughout: a position read one step off is wrong by far more


Reference = Callable[[SpeechPolicy, Tensor, Tensor, "tuple[Tensor, Tensor] | None"], "tuple[Tensor, Tensor]"]


@dataclass(frozen=True)
class Backbone:
    """name: the test id; build: the policy, from pytest's request (for on-disk fixtures); reference: one row's
    float64 (log-probs of the reply's positions, entropies) from the model's own forward, in the masks' layout."""

    name: str
    build: Callable[[pytest.FixtureRequest], SpeechPolicy]
    reference: Reference


def causal_lm_reference(policy: SpeechPolicy, prompt: Tensor, reply: Tensor, features: Any) -> tuple[Tensor, Tensor]:
    """A transformers causal LM over prompt + reply alone (no padding, no position ids, no logits-keep keyword), in
    train mode: VITA-Audio's eval-mode forward needs generation state, and the tiny models have no dropout."""
    model = policy.model
    modes = {m: m.training for m in model.modules()}
    model.train()
    try:
        with torch.no_grad():
            logits = model(input_ids=torch.cat([prompt, reply]).unsqueeze(0)).logits[0].double()
    finally:
        for m, mode in modes.items():
            m.training = mode
    logp = F.log_softmax(logits[len(prompt) - 1 : len(prompt) - 1 + len(reply)], dim=-1)
    return logp.gather(1, reply.unsqueeze(1)).squeeze(1), entropy(logp)


def parallel_heads_reference(
    policy: SpeechPolicy, prompt: Tensor, reply: Tensor, features: Any
) -> tuple[Tensor, Tensor]:
    """A two-head model (ParallelLM) over prompt + reply alone: each head's distribution (with the policy's head
    restriction, which is part of its distribution) read at its own stream, laid out [text stream | audio stream]."""
    ids = torch.cat([prompt, reply]).unsqueeze(0)
    steps = ids.shape[1]
    continuous = values = None
    if features is not None:
        continuous = torch.cat([features[0], torch.zeros(len(reply), dtype=torch.bool)]).unsqueeze(0)
        values = features[1]
    with torch.no_grad():
        text_logits, audio_logits = policy.model(
            text_ids=ids[..., 0],
            audio_ids=ids[..., 1],
            attention_mask=torch.ones(1, steps, dtype=torch.long),
            position_ids=torch.arange(steps).unsqueeze(0),
            continuous=continuous,
            features=values,
        )
    start = len(prompt) - 1
    parts = []
    for stream, (logits, bias) in enumerate(((text_logits, policy.text_bias), (audio_logits, policy.audio_bias))):
        logp = F.log_softmax(logits[0, start : start + len(reply)].double() + bias.double(), dim=-1)
        parts.append((logp.gather(1, reply[:, stream : stream + 1]).squeeze(1), entropy(logp)))
    return torch.cat([parts[0][0], parts[1][0]]), torch.cat([parts[0][1], parts[1][1]])


def entropy(logp: Tensor) -> Tensor:
    """-sum_v p log p per position; tokens a head may not emit (-inf) count 0."""
    return -torch.where(logp.isfinite(), logp.exp() * logp, torch.zeros_like(logp)).sum(dim=-1)


def build_vita(request: pytest.FixtureRequest) -> SpeechPolicy:
    return vita_policy(request.getfixturevalue("quirky"))


def build_kimi(request: pytest.FixtureRequest) -> SpeechPolicy:
    folder = request.getfixturevalue("tmp_path_factory").mktemp("contract_kimi") / "Kimi-Audio-tiny"
    write_tiny_kimi(folder)
    return kimi_policy(folder)  # configs/kimi_audio.yaml: Whisper features of the prompt audio


# ONE line per backbone.
BACKBONES = [
    Backbone("tiny-interleaved", lambda request: tiny_policy(seed=3), causal_lm_reference),
    Backbone("tiny-parallel", lambda request: tiny_parallel(seed=1), parallel_heads_reference),
    Backbone("vita-audio", build_vita, causal_lm_reference),
    Backbone("kimi-audio", build_kimi, parallel_heads_reference),
]


# ---- fixtures: one policy, its prompts and its rollouts per backbone, shared by the module's tests ------------------
@pytest.fixture(scope="module", params=BACKBONES, ids=[b.name for b in BACKBONES])
def backbone(request: pytest.FixtureRequest) -> Backbone:
    return request.param


@pytest.fixture(scope="module")
def policy(backbone: Backbone, request: pytest.FixtureRequest) -> SpeechPolicy:
    """In float64, so the reference comparison can be tight."""
    return backbone.build(request).double()


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory: pytest.TempPathFactory) -> list[list[Path]]:
    """The raw audio of every prompt's speech slots (read by policies with a continuous encoder, ignored otherwise)."""
    folder = tmp_path_factory.mktemp("contract_audio")
    return [
        [write_noise(folder / f"p{i}_{k}.wav", 0.5, seed=10 * i + k) for k in range(len(speech))]
        for i, (_, speech) in enumerate(PROMPTS)
    ]


@pytest.fixture(scope="module")
def prompts(policy: SpeechPolicy, audio_files: list[list[Path]]) -> list[Any]:
    return [policy.example_prompt(messages, speech, files) for (messages, speech), files in zip(PROMPTS, audio_files)]


@pytest.fixture(scope="module")
def rollouts(policy: SpeechPolicy, prompts: list[Any]) -> SequenceBatch:
    torch.manual_seed(0)
    return policy.rollout(prompts, GROUP, SAMPLING)


@pytest.fixture(scope="module")
def demos(policy: SpeechPolicy, prompts: list[Any]) -> SequenceBatch:
    """Replies of different lengths (right padding) on prompts of different lengths (left padding)."""
    return policy.make_batch([prompts[0], prompts[1], prompts[0]], demo_replies(policy))


def demo_replies(policy: SpeechPolicy) -> list[Any]:
    return [policy.reply_ids(TEXT_A, CODES_A), policy.reply_ids(TEXT_B, []), policy.reply_ids("", CODES_B)]


# ---- helpers that read both layouts --------------------------------------------------------------------------------
def streams(ids: Tensor) -> int:
    """Streams of a completion batch (N, T) or (N, T, streams)."""
    return 1 if ids.dim() == 2 else ids.shape[2]


def positions(ids: Tensor) -> Tensor:
    """(N, T) ids as they are; (N, T, S) ids as (N, S * T), stream s at columns s*T .. s*T+T-1: the masks' layout."""
    return ids if ids.dim() == 2 else ids.transpose(1, 2).flatten(1)


def unpadded_prompt(batch: SequenceBatch, row: int) -> Tensor:
    return batch.prompt_ids[row][batch.prompt_mask[row].bool()]


def row_features(batch: SequenceBatch, row: int) -> tuple[Tensor, Tensor] | None:
    """(continuous mask over the unpadded prompt, its feature rows) of one row, or None without features."""
    if batch.features is None:
        return None
    counts = [int(c) for c in batch.features.mask.sum(dim=1)]
    values = batch.features.values.split(counts)[row]
    return batch.features.mask[row][batch.prompt_mask[row].bool()].cpu(), values


def reply_steps(batch: SequenceBatch, row: int) -> Tensor:
    """The row's reply without its right padding (the completion mask is a prefix, test_masks_... checks it)."""
    steps = int(batch.masks.completion[row].sum()) // streams(batch.completion_ids)
    return batch.completion_ids[row][:steps]


def in_reply(batch: SequenceBatch, lengths: Sequence[int]) -> Tensor:
    """1 at the positions (masks' layout) of the first lengths[i] steps of row i, 0 on the padding after them."""
    inside = torch.zeros(batch.completion_ids.shape, dtype=torch.float64)
    for i, n in enumerate(lengths):
        inside[i, :n] = 1.0
    return positions(inside)


def id_set(reply: Any) -> set[int]:
    return set(torch.as_tensor(reply).flatten().tolist())


def content_ids(policy: SpeechPolicy) -> tuple[set[int], set[int]]:
    """The token ids of TEXT_A's words and of CODES_A's codes, found through reply_ids alone: what reply_ids adds for
    them over an empty reply, less what it adds for other words / codes (markers, blanks, separators)."""
    empty = id_set(policy.reply_ids("", []))
    words = id_set(policy.reply_ids(TEXT_A, [])) - empty - id_set(policy.reply_ids(TEXT_B, []))
    codes = id_set(policy.reply_ids("", CODES_A)) - empty - id_set(policy.reply_ids("", CODES_B))
    assert words and codes and not words & codes
    return words, codes


def assert_mask_algebra(batch: SequenceBatch) -> None:
    """Binary masks of the positions' shape; completion = text | speech with text & speech empty; and per stream the
    completion is a prefix (the reply, then padding), the same steps in every stream."""
    m = batch.masks
    t = batch.completion_ids.shape[1]
    assert m.completion.shape == m.text.shape == m.speech.shape == (batch.rows, streams(batch.completion_ids) * t)
    for mask in (m.completion, m.text, m.speech):
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(m.text * m.speech, torch.zeros_like(m.text))
    assert torch.equal(m.text + m.speech, m.completion)
    blocks = m.completion.split(t, dim=1)
    for block in blocks:
        assert torch.equal(block, blocks[0])
        assert (block[:, 1:] <= block[:, :-1]).all(), "a completion mask that is not a prefix of the row"
    assert (blocks[0][:, 0] == 1).all(), "a row without a single completion position"


def assert_logprobs_match_reference(backbone: Backbone, policy: SpeechPolicy, batch: SequenceBatch) -> None:
    """token_logprobs at every completion position = the reference (the model's own forward on the row alone); the
    entropies of token_logprobs_and_entropy too; finite everywhere, so the mask really ignores the rest."""
    logp = policy.token_logprobs(batch)
    logp_h, ent = policy.token_logprobs_and_entropy(batch)
    mask = batch.masks.completion.bool()
    assert logp.shape == ent.shape == mask.shape and logp.dtype == torch.float64
    assert logp.isfinite().all() and ent.isfinite().all()
    assert torch.allclose(logp_h[mask], logp[mask], atol=ATOL, rtol=0) and not ent.requires_grad
    assert (logp[mask] <= 0).all()
    for row in range(batch.rows):
        reply = reply_steps(batch, row)
        want, want_ent = backbone.reference(policy, unpadded_prompt(batch, row), reply, row_features(batch, row))
        got = logp[row][mask[row]].detach()
        assert torch.allclose(got, want, atol=ATOL, rtol=0), f"row {row}: log-probs are not the model's own"
        assert torch.allclose(ent[row][mask[row]], want_ent, atol=ATOL, rtol=0), f"row {row}: entropies"


# ---- the contract ------------------------------------------------------------------------------------------------
def test_rollout_rows_are_grouped_per_prompt(policy: SpeechPolicy, prompts: list[Any], rollouts: SequenceBatch):
    """rollout(prompts, G): B * G rows, prompt i owns rows i*G .. i*G+G-1, each holding exactly prompt i (as make_batch
    lays it out, with its features), and every tensor of the batch has the same rows."""
    n = len(prompts) * GROUP
    b = rollouts
    assert b.rows == n and b.prompt_mask.shape == b.prompt_ids.shape[:2] and b.completion_ids.shape[0] == n
    assert b.masks.completion.shape[0] == n and b.completion_ids.dim() == b.prompt_ids.dim()
    for i, prompt in enumerate(prompts):
        alone = policy.make_batch([prompt], [policy.reply_ids(TEXT_B, [])])
        for row in range(i * GROUP, (i + 1) * GROUP):
            assert torch.equal(unpadded_prompt(b, row), unpadded_prompt(alone, 0)), f"row {row} is not prompt {i}'s"
            feats, want = row_features(b, row), row_features(alone, 0)
            assert (feats is None) == (want is None)
            if feats is not None:
                assert torch.equal(feats[0], want[0]) and torch.equal(feats[1], want[1])
    assert not torch.equal(unpadded_prompt(b, 0), unpadded_prompt(b, GROUP))  # the prompts are told apart


def test_greedy_rollout_rows_continue_their_own_prompt(policy: SpeechPolicy, prompts: list[Any]):
    """What a row says comes from its own prompt: greedy rows of group i equal a greedy rollout of prompt i alone
    (random tiny models may well say the same to both prompts; the prompt-ids check above tells the groups apart)."""
    both = policy.rollout(prompts, 2, GREEDY)

    def reply(batch: SequenceBatch, row: int) -> list[int]:
        return positions(batch.completion_ids)[row][batch.masks.completion[row].bool()].tolist()

    for i, prompt in enumerate(prompts):
        alone = reply(policy.rollout([prompt], 1, GREEDY), 0)
        assert reply(both, 2 * i) == reply(both, 2 * i + 1) == alone, f"greedy rows of prompt {i}"


def test_rollouts_sample_with_the_configured_threads(policy: SpeechPolicy, prompts: list[Any]):
    """sampling.threads holds while the model decodes (seen from inside its forward) and is restored after."""
    import dataclasses

    seen: list[int] = []
    hook = policy.model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        policy.rollout(prompts[:1], 1, dataclasses.replace(GREEDY, max_new_tokens=3, threads=1))
        after = torch.get_num_threads()
    finally:
        hook.remove()
        torch.set_num_threads(before)
    assert seen and set(seen) == {1} and after == 2
    with pytest.raises(ValueError, match="threads must be at least 1"):
        SamplingConfig(threads=0)


def test_rollout_masks_and_decode(policy: SpeechPolicy, rollouts: SequenceBatch):
    assert_mask_algebra(rollouts)
    replies = policy.decode(rollouts)
    assert len(replies) == rollouts.rows
    vocab = speech_token_count(policy)
    for r in replies:
        assert isinstance(r, Reply) and isinstance(r.text, str)
        assert all(isinstance(c, int) and 0 <= c < vocab for c in r.speech_codes)


def test_rollout_logprobs_are_the_models_next_token_distribution(
    backbone: Backbone, policy: SpeechPolicy, rollouts: SequenceBatch
):
    assert_logprobs_match_reference(backbone, policy, rollouts)


def test_demonstration_logprobs_are_the_models_next_token_distribution(
    backbone: Backbone, policy: SpeechPolicy, demos: SequenceBatch
):
    """Teacher forcing on reply_ids + make_batch: the same log-probs as the row's own forward, whatever the padding."""
    assert_logprobs_match_reference(backbone, policy, demos)


def test_demonstration_masks_mark_words_text_and_codes_speech(policy: SpeechPolicy, demos: SequenceBatch):
    """make_batch's masks cover each reply exactly (zero on the right padding), text and speech split it, the words
    of the text are text positions and each speech code is one speech position."""
    assert_mask_algebra(demos)
    lengths = [len(torch.as_tensor(r)) for r in demo_replies(policy)]
    assert torch.equal(demos.masks.completion.cpu().double(), in_reply(demos, lengths))
    words, codes = content_ids(policy)
    ids = positions(demos.completion_ids)[0]
    is_word = torch.tensor([int(t) in words for t in ids.tolist()])
    is_code = torch.tensor([int(t) in codes for t in ids.tolist()])
    assert is_word.any() and int(is_code.sum()) == len(CODES_A)
    m = demos.masks
    assert (m.text[0][is_word] == 1).all() and (m.speech[0][is_word] == 0).all()
    assert (m.speech[0][is_code] == 1).all() and (m.text[0][is_code] == 0).all()


def test_the_end_of_the_text_is_a_text_position(policy: SpeechPolicy, prompts: list[Any]):
    """Stopping is a semantic decision: a reply with no words and no speech still has a text position, its EOS
    (ModalitySpec: EOS counts as text; StreamLayout: the text stream's tokens up to and including its EOS)."""
    empty = policy.make_batch(prompts[:1], [policy.reply_ids("", [])])
    assert_mask_algebra(empty)
    assert empty.masks.text.sum() >= 1


def test_decode_gives_back_the_text_and_codes_of_reply_ids(policy: SpeechPolicy, demos: SequenceBatch):
    assert policy.decode(demos) == [Reply(TEXT_A, CODES_A), Reply(TEXT_B, []), Reply("", CODES_B)]


def test_joint_logprobs_equal_one_batch_at_a_time(policy: SpeechPolicy, prompts: list[Any], rollouts: SequenceBatch):
    """However a policy joins batches into one forward, each batch's log-probs (and entropies) are its own. The
    demonstration has a shorter prompt and a longer reply than the rollouts, so joining pads both of its sides."""
    shortest = min(prompts, key=lambda p: int(policy.make_batch([p], [policy.reply_ids("", [])]).prompt_mask.sum()))
    demo = policy.make_batch([shortest], [policy.reply_ids(TEXT_A, CODES_A)])
    assert demo.prompt_ids.shape[1] < rollouts.prompt_ids.shape[1]
    assert demo.completion_ids.shape[1] > rollouts.completion_ids.shape[1]
    joint = policy.joint_logprobs([rollouts, demo])
    joint_h = policy.joint_logprobs([rollouts, demo], with_entropy=True)
    assert len(joint) == len(joint_h) == 2
    for batch, logp, (logp_h, ent) in zip((rollouts, demo), joint, joint_h):
        mask = batch.masks.completion.bool()
        alone, alone_ent = policy.token_logprobs_and_entropy(batch)
        assert logp.shape == logp_h.shape == ent.shape == mask.shape
        assert torch.allclose(logp[mask], alone[mask], atol=ATOL, rtol=0)
        assert torch.allclose(logp_h[mask], alone[mask], atol=ATOL, rtol=0)
        assert torch.allclose(ent[mask], alone_ent[mask], atol=ATOL, rtol=0)


def test_reference_logprobs_are_the_initial_policys(policy: SpeechPolicy, demos: SequenceBatch):
    """setup_reference makes the reference available; before any update it gives the policy's own log-probs,
    without a graph (it is never trained)."""
    policy.setup_reference()
    assert policy.has_reference
    ref = policy.token_logprobs(demos, reference=True)
    mask = demos.masks.completion.bool()
    assert not ref.requires_grad
    assert torch.allclose(ref[mask], policy.token_logprobs(demos)[mask].detach(), atol=ATOL, rtol=0)
