"""Where one world rollout's decoding time goes: torch.profiler's op table for one decoder, after two warm-up rollouts.

docs/performance.md keeps what it printed. `--kernel-profile` names inductor's generated kernels in the table
(compiled decoder only; set TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 so they are generated, not read from the cache).

    python scripts/profile_decode.py --decoder generate
    TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 python scripts/profile_decode.py --decoder compiled --kernel-profile
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from wavalign.cli import load_checkpoint  # noqa: E402
from wavalign.data.schema import load_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=".cache/ablate/rl.yaml")
    ap.add_argument("--checkpoint", default=".cache/ablate/checkpoints/warm_start/last.ckpt")
    ap.add_argument("--decoder", default="generate", choices=["generate", "static", "compiled"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rows", type=int, default=40, help="ops shown")
    ap.add_argument("--kernel-profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.kernel_profile:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True
    loaded = load_checkpoint(args.config, args.checkpoint, [])
    module, policy = loaded.module, loaded.module.policy
    prompts = module.prompts(load_jsonl(Path(loaded.world.dir) / "train.codes.jsonl")[:4])
    policy.decoder = args.decoder
    for rep in range(2):
        start = time.perf_counter()
        out = policy.rollout(prompts, module.group_size, module.sampling)
        print(f"warm-up {rep}: {time.perf_counter() - start:.3f} s, {tuple(out.completion_ids.shape)}")
    with profile() as prof:
        start = time.perf_counter()
        out = policy.rollout(prompts, module.group_size, module.sampling)
        print(f"profiled: {time.perf_counter() - start:.3f} s, {tuple(out.completion_ids.shape)}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
