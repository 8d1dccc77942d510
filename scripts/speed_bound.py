"""How far issue 27's targets are from reach with the math unchanged: each phase of an RL step at its best.

Runs `fit` in-process at the ablation's settings as `profile_step.py` does (the same timers, one thread), records
every log-prob forward's shape (rows, prompt and completion lengths, real tokens), then measures on the same
model and shapes, one thread:

- decoding per token: the fused decoder eager (what runs), compiled as shipped (`Qwen2FusedSampler(compile=True)`)
  and a folded one-step graph (`folded_step_per_token`), each timed after its compilation;
- the training forward+backward and the reference forward: transformers' model eager (what runs) and under
  `torch.compile(dynamic=True)` (each shape timed after its first call, whose compilation is reported apart);
- the GEMM floor: the time of a step's matrix products alone, at the real (unpadded) token counts, each timed at its
  own shape. No implementation of the same math can skip them; everything else (norms, rotary, softmax, SiLU,
  sampling, padding) is what a hand-fused kernel could at best remove.

Three figures for a cell (200 RL steps plus its evaluation), against half of the old commit's cell:

- *as a cell pays*: each step phase at its best measured option; padding, the step's other costs and the rest of
  the evaluation as now; each compiled arm's first calls counted once;
- *libraries' best*, generous: the same options with padding removed for free, compilation free, logging, optimizer
  and loop free, and of the evaluation only the ASR (the WER instrument: cheaper searches change WER,
  docs/performance.md) and its rollouts at the decode ratio;
- *GEMM floor*: 200 GEMM-only steps plus the ASR.

With --bench, the same for `bench_step.py`'s step (4 prompts x 4 samples x 64 new tokens, two threads, our
rollouts on one) against TRL's GRPOTrainer step measured in the same process: the libraries' best step against the
targets of half TRL's step and three times the FLOP floor.

    python scripts/speed_bound.py --old-cell 249.0     # the old commit's median cell (docs/performance.md)
    python scripts/speed_bound.py --bench
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))

import profile_step  # noqa: E402
from folded_decode import folded_step_per_token  # noqa: E402

Shape = tuple[int, int, int, int, bool]  # rows, prompt length, completion length, real tokens, with grad


def record_forwards(shapes: list[Shape], models: list) -> None:
    """Wraps the policy's log-prob forward to record each call's shape (and the model, for the measurements)."""
    from wavalign.policy import interleaved

    original = interleaved.InterleavedPolicy._forward_logprobs

    def recorded(self, model, batch, with_entropy=False):
        real = int(batch.prompt_mask.sum() + batch.masks.completion.sum())
        shapes.append(
            (batch.rows, batch.prompt_ids.shape[1], batch.completion_ids.shape[1], real, torch.is_grad_enabled())
        )
        if not models:
            models.append(model)
        return original(self, model, batch, with_entropy)

    interleaved.InterleavedPolicy._forward_logprobs = recorded


def median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def decode_per_token(
    model, rows: int, prompt_len: int, new_tokens: int, compile: bool, reps: int
) -> tuple[float, float]:
    """(seconds per decoded token, seconds of the first call) of the fused decoder, never stopping early."""
    from wavalign.policy.qwen2_decoding import DrawSettings, Qwen2FusedSampler

    sampler = Qwen2FusedSampler(model, compile=compile)
    ids = torch.randint(0, model.config.vocab_size, (rows, prompt_len))
    mask = torch.ones_like(ids)
    settings = DrawSettings(True, 0.9, 50, 0.9)

    def run():
        sampler.sample(ids, mask, settings, new_tokens, -1, 0)

    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    return median_time(run, reps) / new_tokens, first


def fused_cache_length(prompt_len: int, new_tokens: int) -> int:
    """The cache length the fused loop (default unroll) allocates for these rollouts."""
    import inspect

    from wavalign.policy.qwen2_decoding import Qwen2FusedSampler, cache_length

    unroll = inspect.signature(Qwen2FusedSampler).parameters["unroll"].default
    return cache_length(prompt_len, new_tokens, unroll)


def best_decode(eager: float, *compiled: tuple[float, float]) -> tuple[float, float]:
    """(the fastest decode's seconds per token over eager's, its first-call seconds); compiled: (seconds per
    token, first-call seconds) of each compiled arm. Eager wins ties and pays no compilation."""
    seconds, first = min(((eager, 0.0), *compiled), key=lambda arm: arm[0])
    return seconds / eager, first


def batch_of(model, shape: Shape) -> dict:
    rows, p_len, t_len, _, _ = shape
    ids = torch.randint(0, model.config.vocab_size, (rows, p_len + t_len))
    attn = torch.ones_like(ids)
    return {"input_ids": ids, "attention_mask": attn, "position_ids": (attn.cumsum(1) - 1), "logits_to_keep": t_len + 1}


def forward_seconds(model, shapes: list[Shape], grad: bool, reps: int) -> tuple[list[float], list[float]]:
    """Per shape: (median seconds after the first call, first-call seconds) of a forward (+ backward when grad)."""
    times, firsts = [], []
    for shape in shapes:
        inputs = batch_of(model, shape)

        def run():
            with torch.set_grad_enabled(grad):
                logits = model(**inputs).logits
                if grad:
                    logits.float().log_softmax(-1)[..., 0].sum().backward()

        start = time.perf_counter()
        run()
        firsts.append(time.perf_counter() - start)
        times.append(median_time(run, reps))
    model.zero_grad(set_to_none=True)
    return times, firsts


def mm_seconds(m: int, k: int, n: int, reps: int) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    return median_time(lambda: a @ b, reps)


def bmm_seconds(batch: int, m: int, k: int, n: int, reps: int) -> float:
    a, b = torch.randn(batch, m, k), torch.randn(batch, k, n)
    torch.bmm(a, b)
    return median_time(lambda: torch.bmm(a, b), reps)


def linear_shapes(config) -> list[tuple[int, int]]:
    """(in, out) of each layer's projections: q|k|v, o, gate|up, down."""
    h, heads, kv = config.hidden_size, config.num_attention_heads, config.num_key_value_heads
    d = h // heads
    return [(h, (heads + 2 * kv) * d), (heads * d, h), (h, 2 * config.intermediate_size), (config.intermediate_size, h)]


def gemm_seconds(config, rows: int, p_len: int, t_len: int, real: int, grad: bool, reps: int) -> float:
    """The matrix products of one forward (and backward) of Qwen2 at `real` tokens, each timed at its shape
    (attention's at the padded length, scaled by the real share; the LM head over the completions only)."""
    heads, d, length = config.num_attention_heads, config.hidden_size // config.num_attention_heads, p_len + t_len
    share = real / (rows * length)
    attention = bmm_seconds(rows * heads, length, d, length, reps) + bmm_seconds(rows * heads, length, length, d, reps)
    layer = sum(mm_seconds(real, k, n, reps) for k, n in linear_shapes(config)) + share * attention
    if grad:  # each linear's input and weight gradients; attention's four backward products
        layer += sum(mm_seconds(real, n, k, reps) + mm_seconds(k, real, n, reps) for k, n in linear_shapes(config))
        layer += share * 2 * attention
    completions = max(1, real * t_len // length)
    head = mm_seconds(completions, config.hidden_size, config.vocab_size, reps)
    return config.num_hidden_layers * layer + head * (3 if grad else 1)


def decode_gemm_per_token(config, rows: int, span: int, reps: int) -> float:
    """The matrix products of one decode step over `span` cached slots, each timed at its shape."""
    heads, kv = config.num_attention_heads, config.num_key_value_heads
    d = config.hidden_size // heads
    layer = sum(mm_seconds(rows, k, n, reps) for k, n in linear_shapes(config))
    layer += bmm_seconds(rows * kv, heads // kv, d, span, reps) + bmm_seconds(rows * kv, heads // kv, span, d, reps)
    return config.num_hidden_layers * layer + mm_seconds(rows, config.hidden_size, config.vocab_size, reps)


def bench_bound(args: argparse.Namespace) -> None:
    import bench_step

    shape = argparse.Namespace(prompts=4, group=4, new_tokens=64, sample_threads=1, steps=args.steps, warmup=3)
    torch.manual_seed(0)
    ours = bench_step.OurStep(bench_step.make_module(shape, "fused"), bench_step.text_examples(24), 4)
    shapes: list[Shape] = []
    models: list = []
    record_forwards(shapes, models)
    trainer, timer = bench_step.trl_trainer(shape, bench_step.text_examples(24), ours)
    trainer.train()
    trl = statistics.median(timer.times[3:])
    phases = {k: statistics.median(b[k] for b in ours.breakdown[3:]) for k in ours.breakdown[-1]}
    step = statistics.median(sum(b.values()) for b in ours.breakdown[3:])
    plain = copy.deepcopy(ours.module.policy.model).float().requires_grad_(True)
    rollout = ours.module.last_entry.rollouts
    p_len, new_tokens = rollout.prompt_ids.shape[1], 64
    with_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # our rollouts' setting
    eager_tok, _ = decode_per_token(plain.eval(), 16, p_len, new_tokens, False, args.reps * 4)
    compiled_tok, first = decode_per_token(plain.eval(), 16, p_len, new_tokens, True, args.reps * 4)
    folded_tok, folded_first = folded_step_per_token(plain.eval(), 16, fused_cache_length(p_len, new_tokens), 200)
    torch.set_num_threads(with_threads)
    plain.train()
    train = [s for s in shapes if s[4]][-4:]
    eager_fb, _ = forward_seconds(plain, train, True, args.reps * 4)
    comp_fb, _ = forward_seconds(torch.compile(plain, dynamic=True), train, True, args.reps * 4)
    real_share = sum(s[3] for s in train) / sum(s[0] * (s[1] + s[2]) for s in train)
    r_dec, _ = best_decode(eager_tok, (compiled_tok, first), (folded_tok, folded_first))
    r_fb = min(1.0, sum(comp_fb) / sum(eager_fb))
    best = phases["rollout"] * r_dec + (phases["forward"] + phases["backward"]) * r_fb * real_share
    paid = step - phases["rollout"] * (1 - r_dec) - (phases["forward"] + phases["backward"]) * (1 - r_fb)
    floor, _ = bench_step.floor_seconds(ours.module, shape)
    print(f"\nTRL step {trl:.3f} s; ours {step:.3f} s (" + ", ".join(f"{k} {v:.3f}" for k, v in phases.items()) + ")")
    print(
        f"decoding per token: eager {eager_tok * 1e3:.2f} ms, compiled {compiled_tok * 1e3:.2f} ms (first call "
        f"{first:.0f} s), folded one-step graph {folded_tok * 1e3:.2f} ms (first call {folded_first:.0f} s); best "
        f"ratio {r_dec:.2f}"
    )
    print(
        f"forward+backward: eager {statistics.mean(eager_fb):.3f} s, compiled {statistics.mean(comp_fb):.3f} s, "
        f"ratio {r_fb:.2f}; real-token share {real_share:.3f}"
    )
    print(
        f"The best options with padding, judge and optimizer as now (compiled in the warm-up): {paid:.3f} s, "
        f"{paid / trl:.2f} of TRL's step, {paid / floor:.1f}x the floor"
    )
    print(
        f"Libraries' best step (compile free, padding free, judge and optimizer free): {best:.3f} s, "
        f"{best / trl:.2f} of TRL's step (target 0.5), {best / floor:.1f}x the FLOP floor {floor:.4f} s (target 3)"
    )


def cell_bound(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    configs = args.config or [".cache/ablate_9seed/rl.yaml", "configs/ablations/wavalign.yaml"]
    shapes: list[Shape] = []
    models: list = []
    record_forwards(shapes, models)
    clock, windows = profile_step.profiled_fit(configs, args.steps, args.warmup, True, [], "/tmp/wavalign-bound")
    step = {k[1]: v / windows.steps for k, v in clock.total.items() if k[0] == "step"}
    evaluation = {k[1]: v for k, v in clock.total.items() if k[0] == "eval"}
    # per step: the reference forward (no grad) and the joint training forward (grad, rollouts + demonstrations);
    # the gradient geometry callback's own forwards (grad, rollouts only) are left out
    ref = [s for s in shapes if not s[4]][:4]
    train = [s for s in shapes if s[4] and s[0] == max(s[0] for s in shapes if s[4])]
    real_share = sum(s[3] for s in train) / sum(s[0] * (s[1] + s[2]) for s in train)
    train = train[:4]
    p_len, new_tokens = round(statistics.mean(s[1] for s in ref)), round(statistics.mean(s[2] for s in ref))
    plain = copy.deepcopy(models[0]).float().requires_grad_(True)  # the first model seen may be the frozen reference

    eager_tok, _ = decode_per_token(plain.eval(), 16, p_len, new_tokens, False, args.reps)
    compiled_tok, compiled_first = decode_per_token(plain.eval(), 16, p_len, new_tokens, True, args.reps)
    folded_tok, folded_first = folded_step_per_token(plain.eval(), 16, fused_cache_length(p_len, new_tokens), 100)
    decode_gemm = decode_gemm_per_token(plain.config, 16, p_len + new_tokens // 2, 50)
    plain.train()
    eager_fb, _ = forward_seconds(plain, train, True, args.reps)
    eager_ref, _ = forward_seconds(plain, ref, False, args.reps)
    compiled = torch.compile(plain, dynamic=True)
    comp_fb, comp_fb_first = forward_seconds(compiled, train, True, args.reps)
    comp_ref, comp_ref_first = forward_seconds(compiled, ref, False, args.reps)
    r_dec, dec_compile = best_decode(eager_tok, (compiled_tok, compiled_first), (folded_tok, folded_first))
    r_fb, r_ref = min(1.0, sum(comp_fb) / sum(eager_fb)), min(1.0, sum(comp_ref) / sum(eager_ref))
    compiling = dec_compile + (sum(comp_fb_first) if r_fb < 1 else 0.0) + (sum(comp_ref_first) if r_ref < 1 else 0.0)
    if args.op_table:  # where one eager forward+backward goes, by op
        from torch.profiler import profile

        with profile() as prof:
            forward_seconds(plain, train[:1], True, 3)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    gemm_fb = statistics.mean(gemm_seconds(plain.config, *s[:4], True, 20) for s in train)
    gemm_ref = statistics.mean(gemm_seconds(plain.config, *s[:4], False, 20) for s in ref)

    rollout, reference = step.get("rollout decoding", 0.0), step.get("reference forward", 0.0)
    fb = step.get("training forward (log-probs)", 0.0) + step.get("backward", 0.0)
    asr, eval_rollouts = evaluation.get("ASR (transcribe)", 0.0), evaluation.get("rollout decoding", 0.0)
    best_step = rollout * r_dec + (fb * r_fb + reference * r_ref) * real_share
    libraries = args.rl_steps * best_step + asr + eval_rollouts * r_dec
    floor = args.rl_steps * (decode_gemm * new_tokens + gemm_fb + gemm_ref) + asr
    step_wall, eval_wall = windows.wall / windows.steps, sum(evaluation.values())
    # the same options as a cell pays for them: padding, the step's other costs and the rest of the evaluation as
    # now, and each compiled arm's first calls once
    paid_step = step_wall - rollout * (1 - r_dec) - fb * (1 - r_fb) - reference * (1 - r_ref)
    paid = args.rl_steps * paid_step + eval_wall - eval_rollouts * (1 - r_dec) + compiling

    print(f"\nconfigs: {' + '.join(configs)}; one thread; {windows.steps} timed steps after {args.warmup}")
    print(f"training forwards: real-token share {real_share:.3f}; rollouts of {new_tokens} tokens after {p_len}")
    print("\n| phase | measured now | best option | its ratio | GEMMs alone |\n|---|---|---|---|---|")
    print(
        f"| decoding, per token (16 rows) | {eager_tok * 1e3:.2f} ms (fused, eager) | compiled "
        f"{compiled_tok * 1e3:.2f} ms (first call {compiled_first:.0f} s); folded one-step graph {folded_tok * 1e3:.2f}"
        f" ms (first call {folded_first:.0f} s) | {r_dec:.2f} | {decode_gemm * 1e3:.2f} ms |"
    )
    for name, eager, comp, first, ratio, gemm in (
        ("training forward+backward", eager_fb, comp_fb, comp_fb_first, r_fb, gemm_fb),
        ("reference forward", eager_ref, comp_ref, comp_ref_first, r_ref, gemm_ref),
    ):
        print(
            f"| {name} | {statistics.mean(eager):.3f} s (eager) | {statistics.mean(comp):.3f} s (compiled; first "
            f"calls {min(first):.0f}-{max(first):.0f} s) | {ratio:.2f} | {gemm:.3f} s |"
        )
    print(
        f"\nOne RL step now: {step_wall:.3f} s (rollout {rollout:.3f}, forward+backward {fb:.3f}, reference "
        f"{reference:.3f}); evaluation pass now: {eval_wall:.1f} s (ASR {asr:.1f}, rollouts {eval_rollouts:.1f})"
    )
    print(f"A cell now, by these figures: {args.rl_steps * step_wall + eval_wall:.0f} s")
    print(f"\nTarget: half of the old commit's {args.old_cell:.1f} s = {args.old_cell / 2:.1f} s")
    print(
        f"The best options as a cell pays for them (padding, other costs as now; compiling {compiling:.0f} s): "
        f"{paid:.0f} s ({paid / args.old_cell:.2f} of old)"
    )
    print(
        f"Libraries' best (compile free, padding free, everything but these phases free): {libraries:.0f} s "
        f"({libraries / args.old_cell:.2f} of old)"
    )
    print(f"GEMM floor ({args.rl_steps} GEMM-only steps + the ASR): {floor:.0f} s ({floor / args.old_cell:.2f} of old)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", help="fit configs (default: the 9-seed ablation's rl.yaml + wavalign)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--old-cell", type=float, help="the old commit's median cell, seconds (the cell bound)")
    ap.add_argument("--bench", action="store_true", help="the bound of bench_step.py's step instead of a cell's")
    ap.add_argument("--rl-steps", type=int, default=200, help="RL steps of a cell")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--op-table", action="store_true", help="also torch.profiler's table of a training forward+backward"
    )
    args = ap.parse_args()
    if args.bench:
        return bench_bound(args)
    if args.old_cell is None:
        ap.error("--old-cell is required for the cell bound")
    cell_bound(args)


if __name__ == "__main__":
    main()
