"""Can the world's tiny Qwen2 learn the comparison answer at all? A text-only probe, no speech.

Trains a text-only causal LM of the world policy's size on the demonstration replies of the training questions
("the bigger of four and eight is eight", ...), then, on the comparison questions of a split, feeds the reply up to
the answer (teacher-forced restatement) and classes the greedy next word: the right option, the other option, or a
word outside the pair. The spoken warm start answers outside the pair after a right restatement a third of the time;
this tells whether that is the model size or the training length.

    python scripts/text_comparison_probe.py --steps 6000 --every 1500
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from wavalign.world.diagnose import diagnose
from wavalign.world.tasks import Question, split_questions, vocabulary, words

PAD, BOS, EOS = 0, 1, 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--every", type=int, default=1500, help="evaluate every N steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    splits = split_questions(0)
    vocab = ["<pad>", "<bos>", "<eos>", *vocabulary()]
    index = {w: i for i, w in enumerate(vocab)}
    encode = lambda text: [BOS, *(index[w] for w in words(text)), EOS]  # noqa: E731
    train = [encode(q.reply) for q in splits["train"]]
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(vocab),
            hidden_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=256,
            max_position_embeddings=64,
            tie_word_embeddings=True,
        )
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)

    @torch.no_grad()
    def answer_kinds(questions: list[Question]) -> dict[str, float]:
        model.eval()
        kinds: Counter[str] = Counter()
        for q in questions:
            prefix = encode(q.reply)[: -1 - len(words(q.answer))]  # the reply up to its answer
            guess = vocab[int(model(torch.tensor([prefix])).logits[0, -1].argmax())]
            kinds[diagnose(q, " ".join(words(q.reply)[: -len(words(q.answer))] + [guess])).answer_kind or ""] += 1
        model.train()
        return {k: round(100 * v / len(questions), 1) for k, v in sorted(kinds.items())}

    comparisons = {s: [q for q in splits[s] if q.family == "comparison"] for s in ("train", "val")}
    for step in range(1, args.steps + 1):
        batch = rng.sample(train, args.batch_size)
        width = max(map(len, batch))
        ids = torch.tensor([s + [PAD] * (width - len(s)) for s in batch])
        labels = ids.masked_fill(ids == PAD, -100)
        loss = model(input_ids=ids, attention_mask=(ids != PAD).long(), labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % args.every == 0:
            print(
                f"step {step}: loss {loss.item():.3f}  train {answer_kinds(comparisons['train'])}  "
                f"val {answer_kinds(comparisons['val'])}",
                flush=True,
            )


if __name__ == "__main__":
    main()
