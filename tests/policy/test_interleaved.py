import torch
from conftest import tiny_policy

from wavalign.policy.base import SamplingConfig
from wavalign.policy.lora import LoraSettings

MESSAGES = [{"role": "system", "content": "style: calm"}, {"role": "user", "content": "<|audio|>"}]


def test_prompt_and_reply_layout():
    policy = tiny_policy()
    tok = policy.tokenizer
    ids = policy.prompt_ids(MESSAGES, [[0, 5]])
    expected = (
        tok.convert_tokens_to_ids(["<|system|>"])
        + tok.encode(" style: calm ", add_special_tokens=False)
        + tok.convert_tokens_to_ids(["<|user|>", "<|begin_audio|>"])
        + [policy.speech_offset, policy.speech_offset + 5]
        + tok.convert_tokens_to_ids(["<|end_audio|>", "<|assistant|>"])
    )
    assert ids == expected
    reply = policy.reply_ids("two plus two is four", list(range(10)))
    m = policy.spec.masks(torch.tensor([reply]))
    assert m.text.sum() == 5 + 1  # five words and EOS
    assert m.speech.sum() == 10 + 2 * 2  # codes plus begin/end markers of two chunks
    text_ids, codes = policy.spec.split_reply(reply, policy.speech_offset)
    assert tok.decode(text_ids) == "two plus two is four" and codes == list(range(10))


def test_rollout_groups_and_masks():
    policy = tiny_policy()
    prompts = [policy.prompt_ids(MESSAGES, [[1, 2, 3]]), policy.prompt_ids(MESSAGES[1:], [[4]])]
    torch.manual_seed(0)
    batch = policy.rollout(prompts, group_size=3, sampling=SamplingConfig(max_new_tokens=12))
    assert batch.prompt_ids.shape[0] == 6 and batch.completion_ids.shape[1] <= 12
    # rows of a group share the (left-padded) prompt
    assert (
        torch.equal(batch.prompt_ids[0], batch.prompt_ids[2])
        and batch.prompt_mask[3].sum() < batch.prompt_mask[0].sum()
    )
    assert torch.equal(batch.masks.text + batch.masks.speech, batch.masks.completion)
    logp = policy.token_logprobs(batch)
    assert logp.shape == batch.masks.completion.shape and (logp <= 0).all()
    assert len(policy.decode(batch)) == 6


def test_left_padding_does_not_change_logprobs():
    policy = tiny_policy()
    p = policy.prompt_ids(MESSAGES, [[1, 2, 3]])
    r = policy.reply_ids("one plus one is two", [7, 8, 9])
    alone = policy.token_logprobs(policy.make_batch([p], [r]))
    padded = policy.token_logprobs(policy.make_batch([p, p + p], [r, r]))
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_joint_logprobs_equal_separate_forwards_values_and_gradients():
    policy = tiny_policy().double()
    torch.manual_seed(0)
    rollouts = policy.rollout(
        [policy.prompt_ids(MESSAGES[1:], [[4]])], group_size=3, sampling=SamplingConfig(max_new_tokens=6)
    )
    demo = policy.make_batch(
        [policy.prompt_ids(MESSAGES, [[1, 2, 3]])], [policy.reply_ids("one plus one is two", [7, 8, 9])]
    )
    assert (
        demo.prompt_ids.shape[1] > rollouts.prompt_ids.shape[1]
        and demo.completion_ids.shape[1] > rollouts.completion_ids.shape[1]
    )

    def grads(parts: list[torch.Tensor]) -> list[torch.Tensor]:
        policy.zero_grad()
        sum((p * torch.linspace(0.5, 1.5, p.numel(), dtype=p.dtype).view_as(p)).sum() for p in parts).backward()
        return [q.grad.clone() for q in policy.parameters() if q.grad is not None]

    separate = [policy.token_logprobs(rollouts), policy.token_logprobs(demo)]
    joint = policy.joint_logprobs([rollouts, demo])
    for a, b, batch in zip(separate, joint, (rollouts, demo)):
        assert b.shape == batch.masks.completion.shape
        m = batch.masks.completion.bool()
        assert torch.allclose(a[m], b[m], atol=1e-10)
    for ga, gb in zip(grads(separate), grads(policy.joint_logprobs([rollouts, demo]))):
        assert torch.allclose(ga, gb, atol=1e-9)


def test_lora_reference_equals_base_model_logprobs():
    base = tiny_policy(seed=3)
    lora = tiny_policy(seed=3, lora=LoraSettings(r=4, alpha=8))
    batch = base.make_batch([base.prompt_ids(MESSAGES, [[1, 2]])], [base.reply_ids("five is five", [3, 4, 5])])
    # make the adapters non-trivial, as after training
    with torch.no_grad():
        for name, p in lora.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
    base_logp = base.token_logprobs(batch)
    assert not torch.allclose(lora.token_logprobs(batch), base_logp, atol=1e-4)
    assert torch.allclose(lora.token_logprobs(batch, reference=True), base_logp, atol=1e-6)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_full_finetune_reference_is_a_frozen_copy():
    policy = tiny_policy()
    policy.setup_reference()
    batch = policy.make_batch([policy.prompt_ids(MESSAGES, [[1]])], [policy.reply_ids("six", [2])])
    before = policy.token_logprobs(batch, reference=True)
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(0.01)
    assert torch.equal(policy.token_logprobs(batch, reference=True), before)
    assert not any("_frozen_reference" in k for k in policy.state_dict())
