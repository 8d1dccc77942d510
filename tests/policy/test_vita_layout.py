"""Prompt and reply token streams of configs/vita_audio.yaml, token by token, against layouts written by hand from
upstream's dataset code:
- prompts: MM-Speech/WavAlign trainer/vita_audio_rl_sft_trainer_clean.py (_prepare_s2s_messages: the speech-to-speech
  system prompt when the conversation has speech and no system message; _process_discrete_audio_tokens: codes inline
  as <|begin_of_audio|><|audio_N|>...<|end_of_audio|>) rendered with VITA-Audio's qwen2_chat_template
  (evaluation/get_chat_template.py, add_generation_prompt) and tools/inference_sts.py's user turn "\\n<|audio|>";
- replies: VITA-Audio vita_audio/data/dataset_qwen2.py preprocess (assistant content "text\\n<|audio|>" as in the
  WavAlign trainer's _build_sft_context, cut by text_audio_interval, then <|im_end|> and "\\n", all supervised)."""

from __future__ import annotations

import pytest
import torch
from vita_fixtures import quirky  # noqa: F401 (fixture)
from vita_policy import vita_policy

SYSTEM = [
    "Your",
    "Name:",
    "Luke",
    "\n",
    "Your",
    "Gender:",
    "male",
    "\n",
    "\n",
    "Respond",
    "in",
    "a",
    "text-audio",
    "interleaved",
    "manner.",
]


def tokens(policy, ids: list[int]) -> list[str]:
    return policy.tokenizer.convert_ids_to_tokens(ids)


def test_prompt_stream(quirky):
    policy = vita_policy(quirky)
    got = tokens(policy, policy.prompt_ids([{"role": "user", "content": "\n<|audio|>"}], [[3, 4]]))
    assert got == (
        ["<|im_start|>", "system", "\n", *SYSTEM, "<|im_end|>", "\n"]
        + ["<|im_start|>", "user", "\n", "\n", "<|begin_of_audio|>", "<|audio_3|>", "<|audio_4|>", "<|end_of_audio|>"]
        + ["<|im_end|>", "\n", "<|im_start|>", "assistant", "\n"]
    )
    # a system message of the data's own is kept, and nothing is added to it
    own = [{"role": "system", "content": "Luke"}, {"role": "user", "content": "<|audio|>"}]
    assert tokens(policy, policy.prompt_ids(own, [[5]]))[:6] == [
        "<|im_start|>",
        "system",
        "\n",
        "Luke",
        "<|im_end|>",
        "\n",
    ]
    # a text-only conversation gets no system prompt (upstream's default for Qwen2 is none)
    text_only = tokens(policy, policy.prompt_ids([{"role": "user", "content": "two plus two"}], []))
    assert text_only == [
        "<|im_start|>",
        "user",
        "\n",
        "two",
        "plus",
        "two",
        "<|im_end|>",
        "\n",
        "<|im_start|>",
        "assistant",
        "\n",
    ]


def test_a_bare_audio_user_turn_gets_the_inference_scripts_newline(quirky):
    """VITA-Audio tools/inference_sts.py, S2SInference.run_infer: with an audio file the user content is
    message + "\\n<|audio|>" (message "" for speech-to-speech), <|audio|> then replaced by
    <|begin_of_audio|><|audio_N|>...<|end_of_audio|>, and the chat template wraps it as
    "<|im_start|>user\\n" + content + "<|im_end|>\\n". Data holding the bare placeholder and data holding
    upstream's "\\n<|audio|>" both give that turn; a message before the audio gets message + "\\n<|audio|>" too,
    whether the data wrote "two\\n<|audio|>" or "two <|audio|>"."""
    policy = vita_policy(quirky)
    speech_turn = ["<|begin_of_audio|>", "<|audio_3|>", "<|audio_4|>", "<|end_of_audio|>", "<|im_end|>", "\n"]
    expected = ["<|im_start|>", "user", "\n", "\n", *speech_turn]
    for content in ("<|audio|>", "\n<|audio|>"):
        got = tokens(policy, policy.prompt_ids([{"role": "user", "content": content}], [[3, 4]]))
        assert got[len(SYSTEM) + 5 :][: len(expected)] == expected, content
    for content in ("two\n<|audio|>", "two <|audio|>", "two<|audio|>"):
        asked = tokens(policy, policy.prompt_ids([{"role": "user", "content": content}], [[3, 4]]))
        want = ["<|im_start|>", "user", "\n", "two", "\n", *speech_turn]
        assert asked[len(SYSTEM) + 5 :][: len(expected) + 1] == want, content
    middle = tokens(policy, policy.prompt_ids([{"role": "user", "content": "<|audio|> two"}], [[3, 4]]))
    assert middle[len(SYSTEM) + 5 :][:4] == ["<|im_start|>", "user", "\n", "<|begin_of_audio|>"]  # not at the end


def test_the_default_chat_template_adds_nothing_to_a_bare_audio_turn():
    """Tiny-world templates keep their layout: speech_only_user_prefix is empty unless a config sets it."""
    from wavalign.policy.prompting import ChatTemplate, render_prompt

    def render(template: ChatTemplate) -> list[int]:
        return render_prompt(
            template, [{"role": "user", "content": "<|audio|>"}], [[7]], lambda t: [ord(c) for c in t], lambda c: [-1]
        )

    assert render(ChatTemplate()) == [ord(c) for c in "<|user|> "] + [-1] + [ord(" ")] + [
        ord(c) for c in "<|assistant|>"
    ]
    assert render(ChatTemplate(speech_only_user_prefix="\n")) == (
        [ord(c) for c in "<|user|> \n"] + [-1] + [ord(" ")] + [ord(c) for c in "<|assistant|>"]
    )


def test_reply_stream_and_masks(quirky):
    policy = vita_policy(quirky)
    a = [f"<|audio_{i}|>" for i in range(40)]
    reply = policy.reply_ids("two plus two is four", list(range(40)))
    assert tokens(policy, reply) == (
        ["two", "<|begin_of_audio|>", *a[0:8], "<|end_of_audio|>"]
        + ["plus", "two", "is", "four", "<|begin_of_audio|>", *a[8:16], "<|end_of_audio|>"]
        + ["\n", "<|begin_of_audio|>", *a[16:40], "<|end_of_audio|>"]
        + ["<|im_end|>", "\n"]
    )
    assert tokens(policy, policy.reply_ids("four", [])) == ["four", "<|im_end|>", "\n"]
    assert tokens(policy, policy.reply_ids("", [1, 2])) == [
        "<|begin_of_audio|>",
        "<|audio_1|>",
        "<|audio_2|>",
        "<|end_of_audio|>",
        "<|im_end|>",
        "\n",
    ]

    batch = policy.make_batch([[1], [1]], [reply, policy.reply_ids("four", [])])
    m = batch.masks
    assert m.completion[0].sum() == len(reply) and m.completion[1].tolist()[:4] == [1, 1, 1, 0]
    assert m.text[0].sum() == 5 + 1 + 2  # five words, the separator, "<|im_end|>" and "\n"
    assert m.speech[0].sum() == 40 + 2 * 3
    assert torch.equal(m.text + m.speech, m.completion)
    decoded = policy.decode(batch)[0]
    assert decoded.text == "two plus two is four" and decoded.speech_codes == list(range(40))


def test_an_eos_suffix_that_encodes_to_nothing_is_refused(quirky):
    with pytest.raises(ValueError, match="eos_suffix ' ' encodes to no tokens"):
        vita_policy(quirky, eos_suffix=" ")
