"""Times one WavAlign RL step against TRL's GRPOTrainer on the same tiny Qwen2 policy, interleaved A B A B in one run.

Equal shape: the same random Qwen2 (4 layers, 128 wide), the same tokenizer and text prompts, G samples per prompt,
the same max new tokens, temperature and top-p, float32, beta = 0 (no reference), no gradient checkpointing, an
exact-answer reward. Our step does more work than TRL's: at a fixed lambda = 0.5 it trains the policy-gradient
loss on the rollouts and the SFT loss on the demonstrations. TRL's steps are timed by a TrainerCallback (step begin -> step end); inside that callback, after
each TRL step, one of our steps runs and is timed (rollout -> judge -> forward -> backward -> clip -> AdamW step).
Our rollouts decode on one CPU thread (`--sample-threads`, model.sampling.threads), TRL's on torch's setting (a
user of TRL could set it too; ours is a documented config key). Also prints our step's breakdown, the FLOP floor of the step, and (with --rss) peak RSS with a LoRA-disabled
reference vs no reference, each in a fresh process.

    pip install -e .[bench]
    python scripts/bench_step.py --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from wavalign.callbacks.gating import GateCallback  # noqa: E402
from wavalign.data.schema import DialogueExample, load_jsonl  # noqa: E402
from wavalign.gates import FixedGate  # noqa: E402
from wavalign.judges.base import JudgeRequest  # noqa: E402
from wavalign.judges.rules import AnswerJudge  # noqa: E402
from wavalign.module import WavAlignModule  # noqa: E402
from wavalign.policy.base import SamplingConfig  # noqa: E402
from wavalign.policy.interleaved import InterleavedPolicy  # noqa: E402
from wavalign.policy.lora import LoraSettings  # noqa: E402
from wavalign.policy.tiny import TinyQwen2  # noqa: E402

VOCAB = ROOT / "configs" / "data" / "debug_vocab.txt"
DATA = ROOT / "configs" / "data" / "debug_train.jsonl"


def make_policy(args: argparse.Namespace, decoder: str, lora: bool = False) -> InterleavedPolicy:
    source = TinyQwen2(
        str(VOCAB),
        num_speech_tokens=256,
        hidden_size=128,
        num_layers=4,
        num_heads=4,
        num_kv_heads=2,
        intermediate_size=512,
        seed=0,
    )
    return InterleavedPolicy(
        source, num_speech_tokens=256, decoder=decoder, lora=LoraSettings(r=16, alpha=32) if lora else None
    )


def text_examples(n: int) -> list[DialogueExample]:
    """The debug set's questions as text prompts (TRL's trainer takes text), with their demonstrations."""
    out = []
    for ex in load_jsonl(DATA)[:n]:
        out.append(
            DialogueExample(
                messages=[{"role": "user", "content": ex.question_text}],
                target_text=ex.target_text,
                target_speech=ex.target_speech,
                question_text=ex.question_text,
                reference_answer=ex.reference_answer,
            )
        )
    return out


def make_module(args: argparse.Namespace, decoder: str, lora: bool = False, beta: float = 0.0) -> WavAlignModule:
    module = WavAlignModule(
        make_policy(args, decoder, lora),
        AnswerJudge(),
        group_size=args.group,
        sampling=SamplingConfig(
            temperature=0.9, top_p=0.9, max_new_tokens=args.new_tokens, threads=getattr(args, "sample_threads", None)
        ),
        beta=beta,
    )
    # A fixed mid-training mix: both terms train every step (the dynamic gate would read lambda = 0 off the random
    # policy's all-wrong groups and skip the policy-gradient backward, flattering our time).
    GateCallback(FixedGate(0.5)).setup(None, module, "fit")
    module.setup("fit")
    module.log_dict = lambda *a, **k: None  # no trainer: nothing to log to
    # A step Lightning does not write logs for (9 in 10 at the configs' log_every_n_steps=10) computes no entropy.
    module.log_entropy = False
    return module


class OurStep:
    def __init__(self, module: WavAlignModule, examples: list[DialogueExample], prompts: int) -> None:
        self.module, self.examples, self.prompts = module, examples, prompts
        self.opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-6)
        self.k = 0
        self.breakdown: list[dict[str, float]] = []

    def __call__(self) -> float:
        start = self.k * self.prompts % (len(self.examples) - self.prompts + 1)
        batch = {
            "ids": list(range(self.k * self.prompts, (self.k + 1) * self.prompts)),
            "examples": self.examples[start : start + self.prompts],
        }
        self.k += 1
        t0 = time.perf_counter()
        loss = self.module.training_step(batch, self.k)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.module.parameters(), 1.2)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        phases = dict(self.module.timings)
        phases.update(backward=t2 - t1, optimizer=t3 - t2)
        self.breakdown.append(phases)
        return t3 - t0


def trl_trainer(args: argparse.Namespace, examples: list[DialogueExample], between) -> object:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    policy = make_policy(args, "generate")
    tok = policy.tokenizer
    prompts = [
        policy.tokenizer.decode(policy.prompt_ids(ex.messages, []), skip_special_tokens=False) for ex in examples
    ]
    answers = {p: ex.reference_answer for p, ex in zip(prompts, examples)}
    judge = AnswerJudge()

    def reward(prompts, completions, **kw):
        return [judge.score([JudgeRequest("", c, reference=answers[p])])[0].score for p, c in zip(prompts, completions)]

    class Timer(TrainerCallback):
        times: list[float] = []

        def on_step_begin(self, *a, **k):
            self.t = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.t)
            between()

    out = tempfile.mkdtemp()
    config = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=args.prompts * args.group,
        num_generations=args.group,
        max_completion_length=args.new_tokens,
        temperature=0.9,
        top_p=0.9,
        beta=0.0,
        learning_rate=1e-6,
        max_steps=args.steps + args.warmup,
        use_cpu=True,
        report_to="none",
        logging_steps=10_000,
        save_strategy="no",
        gradient_checkpointing=False,
        bf16=False,
        max_grad_norm=1.2,
        dataloader_num_workers=0,
        seed=0,
        loss_type="grpo",
    )
    timer = Timer()
    dataset = Dataset.from_dict({"prompt": prompts * 50})
    trainer = GRPOTrainer(
        model=policy.model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset,
        processing_class=tok,
        callbacks=[timer],
    )
    return trainer, timer


def matmul_rate() -> float:
    """FLOP/s of a 1024x1024 float32 matmul on this machine (median of 20)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    ts = []
    for _ in range(20):
        t = time.perf_counter()
        a @ b
        ts.append(time.perf_counter() - t)
    return 2 * 1024**3 / statistics.median(ts)


def floor_seconds(module: WavAlignModule, args: argparse.Namespace) -> tuple[float, dict]:
    params = sum(p.numel() for p in module.policy.model.parameters())
    rows = args.prompts * args.group
    entry = module.last_entry
    prompt_len = entry.rollouts.prompt_ids.shape[1]
    generated = rows * args.new_tokens
    trained = (
        rows * (prompt_len + entry.rollouts.completion_ids.shape[1])
        + entry.demonstrations.prompt_ids.numel()
        + entry.demonstrations.completion_ids.numel()
    )
    flops = 2 * params * generated + 6 * params * trained
    rate = matmul_rate()
    return flops / rate, {
        "params": params,
        "generated_tokens": generated,
        "trained_tokens": trained,
        "flops": flops,
        "matmul_flops_per_s": rate,
    }


def rss_child(args: argparse.Namespace, with_reference: bool) -> None:
    module = make_module(args, "static", lora=True, beta=0.04 if with_reference else 0.0)
    step = OurStep(module, text_examples(args.prompts * 4), args.prompts)
    for _ in range(3):
        step()
    assert module.policy.has_reference == with_reference or module.policy.uses_lora
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--decoder", default="compiled", choices=["generate", "static", "compiled", "fused"])
    ap.add_argument(
        "--sample-threads",
        type=int,
        default=1,
        help="our rollouts' CPU threads (model.sampling.threads; default 1: a tiny model decodes faster on one)",
    )
    ap.add_argument("--rss", action="store_true", help="also measure peak RSS with vs without the reference")
    ap.add_argument("--rss-child", choices=["ref", "noref"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.rss_child:
        return rss_child(args, args.rss_child == "ref")

    examples = text_examples(args.prompts * 6)
    ours = OurStep(make_module(args, args.decoder), examples, args.prompts)
    our_times: list[float] = []
    trainer, timer = trl_trainer(args, examples, lambda: our_times.append(ours()))
    trainer.train()
    w = args.warmup
    trl_med, our_med = statistics.median(timer.times[w:]), statistics.median(our_times[w:])
    print(
        f"shape: {args.prompts} prompts x {args.group} samples x {args.new_tokens} new tokens, 4-layer 128-wide Qwen2, "
        f"float32, {torch.get_num_threads()} threads (our rollouts: {args.sample_threads}); {len(our_times) - w} steps "
        f"each after {w} warm-up, A B A B"
    )
    print(f"TRL GRPOTrainer step median: {trl_med:.3f} s")
    print(f"WavAlign step median ({args.decoder} decoder): {our_med:.3f} s")
    print(f"ratio WavAlign / TRL: {our_med / trl_med:.2f}")
    phases = {k: statistics.median(b.get(k, 0.0) for b in ours.breakdown[w:]) for k in ours.breakdown[-1]}
    print("WavAlign breakdown (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in phases.items()))
    floor, info = floor_seconds(ours.module, args)
    print(
        f"FLOP floor: {floor:.4f} s ({info['flops'] / 1e9:.2f} GFLOP at {info['matmul_flops_per_s'] / 1e9:.1f} "
        f"GFLOP/s measured; {info['params'] / 1e6:.2f} M params, {info['generated_tokens']} generated, "
        f"{info['trained_tokens']} trained tokens); our step is {our_med / floor:.0f}x the floor"
    )
    if args.rss:
        rss = {}
        for mode in ("ref", "noref"):
            cmd = [
                sys.executable,
                __file__,
                "--rss-child",
                mode,
                "--decoder",
                "static",
                "--prompts",
                str(args.prompts),
                "--group",
                str(args.group),
                "--new-tokens",
                str(args.new_tokens),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=dict(os.environ)).stdout
            rss[mode] = json.loads(out.strip().splitlines()[-1])["peak_rss_mb"]
        print(
            f"peak RSS (LoRA): with adapter-disabled reference {rss['ref']:.0f} MB, without reference "
            f"{rss['noref']:.0f} MB, ratio {rss['ref'] / rss['noref']:.3f}"
        )


if __name__ == "__main__":
    main()
