"""Rollout time of the world policy per decoder (transformers' `generate`, the static-cache loop plain and compiled,
the fused Qwen2 loop), alternating on the same prompts; docs/performance.md records what it measured.

Each decoder keeps its own sampler (before 2026-12-05 the static arm's uncompiled sampler was reused by the
compiled arm, so "compiled" timed the plain static loop). Per-token times divide by each rollout's own length.

    python scripts/compare_decoders.py [--config .cache/ablate/rl.yaml] [--checkpoint ...] [--reps 6]
    python scripts/compare_decoders.py --decoders generate,fused --eval     # an evaluation batch: 50 x 4 rows
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from wavalign.cli import load_checkpoint  # noqa: E402
from wavalign.data.schema import load_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=".cache/ablate/rl.yaml")
    ap.add_argument("--checkpoint", default=".cache/ablate/checkpoints/warm_start/last.ckpt")
    ap.add_argument("--reps", type=int, default=6, help="rollouts per decoder; the first (compilation) is left out")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--decoders", default="generate,static,compiled,fused", help="comma-separated, in turn")
    ap.add_argument(
        "--eval",
        action="store_true",
        help="the evaluation's shape: 50 validation questions x 4 replies, evaluation sampling (default: a training "
        "step's 4 training prompts x the group, training sampling)",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.config, args.checkpoint, [])
    module, policy = loaded.module, loaded.module.policy
    per, split = (50, "val") if args.eval else (4, "train")
    replies, sampling = (4, module.eval_sampling) if args.eval else (module.group_size, module.sampling)
    examples = load_jsonl(Path(loaded.world.dir) / f"{split}.codes.jsonl")[: per * args.reps]
    decoders = args.decoders.split(",")
    times: dict[str, list[float]] = {d: [] for d in decoders}
    per_token: dict[str, list[float]] = {d: [] for d in decoders}
    samplers: dict[str, object] = {}
    for rep in range(args.reps):
        prompts = module.prompts(examples[per * rep : per * rep + per])
        for decoder in decoders:
            policy.decoder, policy._sampler = decoder, samplers.get(decoder)
            start = time.perf_counter()
            out = policy.rollout(prompts, replies, sampling)
            times[decoder].append(time.perf_counter() - start)
            samplers[decoder] = policy._sampler
            steps = out.completion_ids.shape[1]
            per_token[decoder].append(times[decoder][-1] / steps * 1e3)
            print(f"{decoder} rollout {rep}: {times[decoder][-1]:.2f} s, {tuple(out.completion_ids.shape)}", flush=True)
    for decoder in decoders:
        ts, ms = times[decoder], per_token[decoder]
        print(
            f"{decoder}: median {statistics.median(ts[1:]):.3f} s a rollout, {statistics.median(ms[1:]):.2f} ms a "
            f"decoding step, after the first ({ts[0]:.1f} s)"
        )


if __name__ == "__main__":
    main()
