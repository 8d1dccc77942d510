"""configs/kimi_audio.yaml's policy on a tiny random Kimi-Audio checkpoint on disk (kimi_tiny.py): prompt streams,
stop rule and per-stream sampling as Kimi-Audio's own inference code (MoonshotAI/Kimi-Audio, kimia_infer/) runs them.
The Whisper input path is pinned in test_kimi_whisper.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kimi_tiny import NUM_CODES, kimi_policy, write_tiny_kimi

from wavalign.policy.base import SamplingConfig, StreamSampling
from wavalign.policy.parallel import ParallelPolicy
from wavalign.policy.parallel_layout import AUDIO, TEXT


@pytest.fixture(scope="module")
def kimi_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("kimi") / "Kimi-Audio-tiny"
    write_tiny_kimi(folder)
    return folder


@pytest.fixture(scope="module")
def discrete(kimi_folder) -> ParallelPolicy:
    return kimi_policy(kimi_folder, whisper_features=False)


def special(policy: ParallelPolicy, name: str) -> int:
    return policy.tokenizer.special_tokens[name]


def test_the_custom_tokenizer_is_used_through_kimis_interface(discrete):
    tok = discrete.tokenizer
    assert type(tok).__name__ == "KimiStandInTokenizer"  # loaded as remote code from the checkpoint folder
    assert discrete.encode_text("one plus one") == tok.encode("one plus one", bos=False, eos=False)
    assert discrete.layout.text_eos_id == tok.special_tokens["<|im_kimia_text_eos|>"]
    reply = discrete.reply_ids("two is two", [3, 4])
    batch = discrete.make_batch([discrete.prompt_ids([{"role": "user", "content": "two"}], [])], [reply])
    assert discrete.decode(batch)[0].text == "two is two"


def layouts(policy: ParallelPolicy) -> dict[str, int]:
    names = {
        "U": "<|im_kimia_user_msg_start|>",
        "A": "<|im_kimia_assistant_msg_start|>",
        "MB": "<|im_media_begin|>",
        "ME": "<|im_media_end|>",
        "CTD": "<|im_kimia_speech_ctd_id|>",
        "END": "<|im_msg_end|>",
        "B": "<|im_kimia_text_blank|>",
    }
    return {k: special(policy, v) for k, v in names.items()}


def test_prompt_streams_match_kimis_prompt_manager(discrete):
    """Hand-written from kimia_infer/api/prompt_manager.py (get_prompt, tokenize_message): one role marker per run of
    same-role messages; media_begin, codes, media_end per audio message; the speech-continue token (ctd with speech
    output) and msg_end only on a run's last message, the former only when that message is audio; text on the text
    stream against audio-stream blanks; then the assistant marker (with a text blank) opens the reply."""
    t = layouts(discrete)
    U, A, MB, ME, CTD, END, B = (t[k] for k in ("U", "A", "MB", "ME", "CTD", "END", "B"))
    one, plus, two = discrete.tokenizer.encode("one plus two", bos=False, eos=False)
    s = lambda c: 64 + c  # noqa: E731  kimia_token_offset + code
    cases = [
        (  # infer.py's ASR example: a text instruction, then the audio, both from the user
            [{"role": "user", "content": "one plus one"}, {"role": "user", "content": "<|audio|>"}],
            [[0, 1, 2]],
            [U, B, B, B, MB, s(0), s(1), s(2), ME, CTD, END, A],
            [B, one, plus, one, B, B, B, B, B, B, B, B],
        ),
        (  # audio then text in one message: the run ends in text, so no speech-continue token
            [{"role": "user", "content": "<|audio|> one plus one"}],
            [[5]],
            [U, MB, s(5), ME, B, B, B, END, A],
            [B, B, B, B, one, plus, one, B, B],
        ),
        (  # system (mapped to the user marker) merges with the next user message; a multi-turn history
            [
                {"role": "system", "content": "one"},
                {"role": "user", "content": "<|audio|>"},
                {"role": "assistant", "content": "two"},
                {"role": "user", "content": "<|audio|>"},
            ],
            [[7, 8], [9]],
            [U, B, MB, s(7), s(8), ME, CTD, END, A, B, END, U, MB, s(9), ME, CTD, END, A],
            [B, one, B, B, B, B, B, B, B, two, B, B, B, B, B, B, B, B],
        ),
    ]
    for messages, speech, audio, text in cases:
        prompt = discrete.build_prompt(messages, speech)
        assert prompt.ids[:, AUDIO].tolist() == audio
        assert prompt.ids[:, TEXT].tolist() == text
        assert prompt.continuous.tolist() == [64 <= a < 64 + NUM_CODES for a in audio]  # is_continuous_mask


def test_rollout_stops_as_soon_as_the_audio_stream_ends(discrete):
    """kimia_infer/api/kimia.py _generate_loop with output_type="both": it returns at the step whose audio token is
    msg_end or media_end, the first possible one being step kimia_text_audiodelaytokens (6); the text stream may not
    have ended. Here the audio head may only emit msg_end and the text head never its EOS."""
    lay = discrete.layout
    saved = discrete.text_bias.clone(), discrete.audio_bias.clone()
    try:
        discrete.audio_bias.fill_(float("-inf"))
        discrete.audio_bias[special(discrete, "<|im_msg_end|>")] = 0.0
        discrete.text_bias[lay.text_eos_id] = float("-inf")
        prompt = discrete.prompt_ids([{"role": "user", "content": "one plus one"}], [])
        out = discrete.rollout([prompt], 2, SamplingConfig(max_new_tokens=20))
        assert out.completion_ids.shape == (2, lay.audio_delay + 1, 2)
        assert out.completion_ids[:, : lay.audio_delay, AUDIO].eq(lay.audio_filler_id).all()
        assert out.completion_ids[:, -1, AUDIO].eq(special(discrete, "<|im_msg_end|>")).all()
        assert not out.completion_ids[..., TEXT].eq(lay.text_eos_id).any()
        assert out.masks.completion.eq(1).all()
        discrete.layout = type(lay)(**{**lay.__dict__, "stop_on": "both"})  # the old rule runs on to the limit
        assert discrete.rollout([prompt], 2, SamplingConfig(max_new_tokens=20)).completion_ids.shape[1] == 20
    finally:
        discrete.layout = lay
        discrete.text_bias.copy_(saved[0])
        discrete.audio_bias.copy_(saved[1])


def test_demonstrations_end_on_the_audio_end_step(discrete):
    """Under the audio stop rule a demonstration whose text outlasts its speech keeps the audio stream open with
    blanks, so its end marker is the last step and no text is cut."""
    lay = discrete.layout
    words = discrete.encode_text("one plus one is two")
    reply = discrete.reply_ids("one plus one is two", [1])  # 5 words + EOS = 6 steps; audio: 6 blanks, 1 code, end
    assert reply[:, TEXT].tolist() == words + [lay.text_eos_id] + [lay.filler_id] * 2
    assert reply[:, AUDIO].tolist() == [lay.audio_filler_id] * 6 + [64 + 1, lay.end_audio_ids[0]]
    long_text = discrete.reply_ids("one plus one is two two two two", [1])
    assert long_text[-1].tolist() == [lay.text_eos_id, lay.end_audio_ids[0]]  # both end on the last step
    assert lay.split(long_text, discrete.skip_ids) == (discrete.encode_text("one plus one is two two two two"), [1])


def test_stream_sampling_settings_default_to_the_shared_ones():
    shared = SamplingConfig(temperature=0.9, top_p=0.9, max_new_tokens=7)
    assert shared.stream("audio") is shared
    kimi = SamplingConfig(max_new_tokens=7, audio=StreamSampling(0.8, top_k=10), text=StreamSampling(0.0, top_k=5))
    audio, text = kimi.stream("audio"), kimi.stream("text")
    assert (audio.temperature, audio.top_k, audio.top_p, audio.do_sample, audio.max_new_tokens) == (
        0.8,
        10,
        1.0,
        True,
        7,
    )
    assert not text.do_sample  # temperature 0: greedy, as KimiASampler
    with pytest.raises(ValueError, match="invalid stream sampling"):
        StreamSampling(-1.0)


def test_each_stream_samples_with_its_own_settings(discrete):
    """KimiASampler (kimia_infer/utils/sampler.py) samples text and audio logits separately; with greedy text and
    top-1 audio every freely chosen token is its head's argmax, while a hot text stream is not (audio steps after a
    text id 0 left out: the one-call forward here adds embed(0), the decode loop does not)."""
    lay = discrete.layout
    prompt = discrete.prompt_ids([{"role": "user", "content": "one plus one"}], [])

    def free_choices_are_argmax(sampling: SamplingConfig) -> tuple[bool, bool]:
        torch.manual_seed(0)
        out = discrete.rollout([prompt], 3, sampling)
        ids = torch.cat([out.prompt_ids, out.completion_ids], dim=1)
        attention = torch.cat(
            [out.prompt_mask, out.masks.completion[:, : ids.shape[1] - out.prompt_ids.shape[1]].long()], dim=1
        )
        position = (attention.cumsum(1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = discrete.model(
                text_ids=ids[..., TEXT], audio_ids=ids[..., AUDIO], attention_mask=attention, position_ids=position
            )
        t = out.completion_ids.shape[1]
        text_lp, audio_lp = discrete._head_logprobs(logits[0][:, -t - 1 : -1], logits[1][:, -t - 1 : -1])
        text_end, audio_end, _ = lay.ends(out.completion_ids)
        steps = torch.arange(t).unsqueeze(0)
        text_free = steps <= text_end.unsqueeze(1)
        audio_free = (steps >= lay.audio_delay) & (steps <= audio_end.clamp(max=t - 1).unsqueeze(1))
        # a step after a text id 0 was sampled without embed(0) (zero_text_skips_embedding), unlike this forward
        zeros = out.completion_ids[..., TEXT].eq(0).long()
        audio_free &= (zeros.cumsum(1) - zeros) == 0
        text_ok = (text_lp.argmax(-1) == out.completion_ids[..., TEXT])[text_free].all()
        audio_ok = (audio_lp.argmax(-1) == out.completion_ids[..., AUDIO])[audio_free].all()
        return bool(text_ok), bool(audio_ok)

    greedy = SamplingConfig(max_new_tokens=16, text=StreamSampling(0.0, top_k=5), audio=StreamSampling(0.8, top_k=1))
    assert free_choices_are_argmax(greedy) == (True, True)
    hot_text = SamplingConfig(max_new_tokens=16, text=StreamSampling(5.0), audio=StreamSampling(0.8, top_k=1))
    assert free_choices_are_argmax(hot_text) == (False, True)


def test_a_missing_tiktoken_names_the_extra_that_installs_it(tmp_path, monkeypatch):
    """Kimi-Audio's tokenizer code (tokenization_kimia.py in its checkpoint folder) imports tiktoken, which Kimi-Audio's
    own pyproject.toml lists as a dependency and transformers does not install. A stand-in tokenizer that imports it,
    with tiktoken made unimportable, fails at load with the kimi-audio extra named."""
    import shutil
    import sys

    from wavalign.policy.kimi_checkpoint import KimiAudioCheckpoint

    folder = tmp_path / "Kimi-Audio-tiny-tiktoken"
    write_tiny_kimi(folder)
    code = folder / "tokenization_standin.py"
    code.write_text("import tiktoken  # noqa: F401\n" + code.read_text())
    shutil.rmtree(folder / "whisper-large-v3")  # not read with whisper_features off
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # `import tiktoken` raises ImportError, installed or not
    source = KimiAudioCheckpoint(str(folder), dtype="float32", trust_remote_code=True, whisper_features=False)
    with pytest.raises(ImportError, match=r"needs tiktoken.*pip install -e '\.\[kimi-audio\]'"):
        source.build()


def _upstream_step_logprobs(policy: ParallelPolicy, prompt: torch.Tensor, reply: torch.Tensor, rule: bool):
    """The two heads' log-probs after prompt + reply, recomputed from scratch with the inputs written out by hand:
    every step gets embed(audio) + embed(text), except, with `rule`, a reply step whose text id is 0, which gets
    embed(audio) alone. That is what kimia_infer's _generate_loop feeds: it calls MoonshotKimiaModel.forward once
    for the prompt (text ids summing to non-zero: text embedding added) and then once per step with that step's
    (1, 1) text id, where `text_input_ids.sum() != 0` is false exactly when the id is 0."""
    core = policy.core
    table = core.backbone.embed_tokens
    ids = torch.cat([prompt, reply]) if len(reply) else prompt
    keep_text = torch.ones(len(ids), dtype=torch.bool)
    if rule:
        keep_text[len(prompt) :] = ids[len(prompt) :, TEXT] != 0
    x = table(ids[:, AUDIO]) + table(ids[:, TEXT]) * keep_text[:, None].float()
    steps = torch.arange(len(ids))[None]
    ones = torch.ones_like(steps)
    h = core.backbone(inputs_embeds=x[None], attention_mask=ones, position_ids=steps).last_hidden_state
    h_text = core.text_branch(inputs_embeds=h, attention_mask=ones, position_ids=steps).last_hidden_state
    h_audio = core.audio_branch(inputs_embeds=h, attention_mask=ones, position_ids=steps).last_hidden_state
    text = torch.log_softmax(core.text_head(core.text_norm(h_text[0, -1])) + policy.text_bias, -1)
    audio = torch.log_softmax(core.audio_head(core.audio_norm(h_audio[0, -1])) + policy.audio_bias, -1)
    return text, audio


@torch.no_grad()
def test_a_decode_step_with_text_id_0_feeds_no_text_embedding(discrete):
    """kimia_infer/api/kimia.py, KimiAudio._generate_loop, feeds each sampled (text, audio) pair back as (1, 1) ids;
    the checkpoint's modeling_kimia.py, MoonshotKimiaModel.forward, adds embed_tokens(text_input_ids) to the audio
    embedding only `if text_input_ids.sum() != 0`. So a step whose text token is id 0 enters the model (and its KV
    cache) as its audio embedding alone. Here the text head may only emit id 0 and the audio head no end marker;
    a greedy rollout equals the hand-written greedy loop under that rule (audio blank for the first 6 steps), and,
    with zero_text_skips_embedding off, the same loop with embed(0) added. Teacher-forced log-probs read the whole
    sequence in one call, whose text ids sum to non-zero: they add embed(0), as upstream's training forward does."""
    lay = discrete.layout
    saved = discrete.text_bias.clone(), discrete.audio_bias.clone()
    steps = 10
    try:
        discrete.text_bias.fill_(float("-inf"))
        discrete.text_bias[0] = 0.0
        discrete.audio_bias[list(lay.end_audio_ids)] = float("-inf")
        prompt = discrete.prompt_ids([{"role": "user", "content": "one plus one"}], [])
        greedy = SamplingConfig(max_new_tokens=steps, do_sample=False)
        results = {}
        for rule in (True, False):
            discrete.zero_text_skips_embedding = rule
            reply, logps = [], []
            for step in range(steps):
                text_lp, audio_lp = _upstream_step_logprobs(discrete, prompt, torch.tensor(reply).view(-1, 2), rule)
                audio = lay.audio_filler_id if step < lay.audio_delay else int(audio_lp.argmax())
                text = int(text_lp.argmax())
                reply.append([text, audio])
                logps.append((float(text_lp[text]), float(audio_lp[audio])))
            expected = torch.tensor(reply)
            assert expected[:, TEXT].eq(0).all()
            got, got_lp = discrete.generate(prompt[None], torch.ones(1, len(prompt), dtype=torch.long), greedy)
            assert torch.equal(got[0], expected)
            want_lp = torch.tensor([lp[TEXT] for lp in logps] + [lp[AUDIO] for lp in logps])
            torch.testing.assert_close(got_lp[0], want_lp, atol=1e-5, rtol=1e-5)
            results[rule] = expected, want_lp
            batch = discrete.make_batch([prompt], [expected])
            forced = discrete._forward_logprobs(discrete.model, batch)[0]
            always_added = [_upstream_step_logprobs(discrete, prompt, expected[:i], False) for i in range(steps)]
            want_forced = torch.tensor(
                [float(t[0]) for t, _ in always_added]
                + [float(a[e]) for (_, a), e in zip(always_added, expected[:, 1])]
            )
            torch.testing.assert_close(forced, want_forced, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(results[True][1], results[False][1], atol=1e-4)  # the rule changes the rollout
    finally:
        discrete.zero_text_skips_embedding = True
        discrete.text_bias.copy_(saved[0])
        discrete.audio_bias.copy_(saved[1])
