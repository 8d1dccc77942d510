"""How far Kimi's text-id-0 rule moves rollout log-probs from the teacher-forced forward (tiny random checkpoint):
sampled rollouts at temperature 1 with configs/kimi_audio.yaml's settings (the rule on); at every completion position,
|rollout log-prob - teacher-forced log-prob|, which is non-zero only after a text id 0.

    .venv/bin/python scripts/kimi_zero_text_effect.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from wavalign.policy.base import SamplingConfig, SequenceBatch

ROOT = Path(__file__).resolve().parents[1]


def main(rounds: int = 20, steps: int = 24) -> None:
    sys.path[:0] = [str(ROOT / "tests" / "policy"), str(ROOT / "tests")]  # the tests' tiny checkpoint builders
    from kimi_tiny import kimi_policy, write_tiny_kimi

    folder = Path(tempfile.mkdtemp()) / "Kimi-Audio-tiny"
    write_tiny_kimi(folder)
    policy = kimi_policy(folder, whisper_features=False).double()
    torch.manual_seed(0)
    prompts = [policy.prompt_ids([{"role": "user", "content": w}], []) for w in ("one plus one", "two", "three four")]
    diffs = []
    with torch.no_grad():
        for _ in range(rounds):
            ids, mask, _ = policy._pad_prompts(prompts)
            completion, cached = policy.generate(
                ids, mask, SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=steps)
            )
            masks = policy.layout.masks(completion)
            full = policy.token_logprobs(SequenceBatch(ids, mask, completion, masks))
            diffs.append((cached - full).abs()[masks.completion.bool()])
    d = torch.cat(diffs)
    moved = d > 1e-9
    print(
        f"positions {d.numel()}, differing (>1e-9): {int(moved.sum())} ({moved.double().mean().item():.3%}), "
        f"max {d.max().item():.3f} nats, mean over differing {d[moved].mean().item() if moved.any() else 0.0:.3f}"
    )


if __name__ == "__main__":
    main()
