"""Apply known wrong wirings one at a time to a copy of the tree and check that the test suite catches each.

    python scripts/wiring_mutations.py [--only NAME] [--tests PATH ...]

Each mutation is one edit that a reviewer found the suite used to miss (issue 20): a sign, an alignment, a grouping
or an option that silently does nothing. For each, the script copies the tracked files to a temporary folder, applies
the edit, runs pytest there and prints which tests failed. A mutation that no test notices is a hole in the suite;
the script exits 1 if there is one. An edit whose text is no longer in the code is reported as stale (update it).
It takes a few minutes: it is a maintenance tool, not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TESTS = (
    "tests/test_module_wiring.py",
    "tests/test_module.py",
    "tests/policy",
    "tests/judges/test_http.py",
    "tests/test_reference_run.py",
    "tests/data",
    "tests/step/test_losses.py",
    "tests/gates/test_paper_rules.py",
    "tests/runtime/test_resume.py",
    "tests/step/test_plan.py",
    "tests/callbacks/test_gating.py",
    "tests/gates/test_hpt.py",
    "tests/gates/test_chord.py",
    "tests/gates/test_srft.py",
    "tests/gates/test_luffy.py",
    "tests/gates/test_relift.py",
    "tests/step/test_split_po.py",
    "tests/step/test_modality_stats.py",
    "tests/test_distributed.py",
    "tests/test_sft_step.py",
)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str


MUTATIONS = (
    Mutation(
        "advantages negated in the module",
        "src/wavalign/module.py",
        "adv = Advantages(group_advantages(",
        "adv = Advantages(-group_advantages(",
    ),
    Mutation(
        "log-prob gather shifted by one position (kept logits)",
        "src/wavalign/policy/forward.py",
        "return logits[:, :-1, :]",
        "return logits[:, 1:, :]",
    ),
    Mutation(
        "log-prob gather shifted by one position (full logits)",
        "src/wavalign/policy/forward.py",
        "return logits[:, prompt_len - 1 : total - 1, :]",
        "return logits[:, prompt_len: total, :]",
    ),
    Mutation(
        "interleaved rollout rows tiled, not grouped",
        "src/wavalign/policy/interleaved.py",
        "ids = base.prompt_ids.repeat_interleave(group_size, dim=0)\n        attn = base.prompt_mask.repeat_interleave(group_size, dim=0)",
        "ids = base.prompt_ids.repeat(group_size, 1)\n        attn = base.prompt_mask.repeat(group_size, 1)",
    ),
    Mutation(
        "parallel rollout rows tiled, not grouped",
        "src/wavalign/policy/parallel.py",
        "ids, mask = ids.repeat_interleave(group_size, dim=0), mask.repeat_interleave(group_size, dim=0)",
        "ids, mask = ids.repeat(group_size, 1, 1), mask.repeat(group_size, 1)",
    ),
    Mutation(
        "judge requests paired with the wrong example",
        "src/wavalign/step/scoring.py",
        "ex = examples[i // group_size]",
        "ex = examples[i % len(examples)]",
    ),
    Mutation(
        "PPO old log-probs reset at every epoch",
        "src/wavalign/step/preference.py",
        "if entry.old_logp is None:\n            entry.old_logp = logp.detach()",
        "entry.old_logp = logp.detach()",
    ),
    Mutation("loss_type ignored", "src/wavalign/step/preference.py", "loss_type=self.loss_type,", 'loss_type="grpo",'),
    Mutation(
        "epsilon_high ignored",
        "src/wavalign/step/preference.py",
        "epsilon_high=self.epsilon_high,",
        "epsilon_high=None,",
    ),
    Mutation("scale_rewards ignored", "src/wavalign/module.py", "scale=self.scale_rewards", "scale=True"),
    Mutation(
        "reference log-probs dropped (KL off)",
        "src/wavalign/step/preference.py",
        "ref_logp=entry.ref_logp,",
        "ref_logp=None,",
    ),
    Mutation(
        "DPO chosen and rejected swapped",
        "src/wavalign/step/preference.py",
        "dpo_loss(logp[best], logp[worst], ref[best], ref[worst], mask[best], mask[worst]",
        "dpo_loss(logp[worst], logp[best], ref[worst], ref[best], mask[worst], mask[best]",
    ),
    Mutation(
        "reliability flags dropped before the gate",
        "src/wavalign/callbacks/gating.py",
        "out = self.rule.update(groups.rewards, groups.reliable)",
        "out = self.rule.update(groups.rewards)",
    ),
    Mutation(
        "the gate sees only this process's groups",
        "src/wavalign/module.py",
        "groups = gather_groups(self, scored.rewards, scored.reliable)",
        "groups = GlobalGroups(scored.rewards, scored.reliable.bool(), 0, scored.rewards.shape[0])",
    ),
    Mutation(
        "reliability flags dropped before the advantages",
        "src/wavalign/module.py",
        "group_advantages(scored.rewards, scored.reliable,",
        "group_advantages(scored.rewards, None,",
    ),
    Mutation(
        "sft_target_codes of the reference schema ignored",
        "src/wavalign/data/schema.py",
        "target_speech=None if target_codes is None else",
        "target_speech=None if True else",
    ),
    Mutation(
        "Retry-After ignored",
        "src/wavalign/judges/http.py",
        'retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)',
        "retry_after = None",
    ),
    Mutation(
        "the gate's lambda ignored in the mix",
        "src/wavalign/module.py",
        "loss = w.po_scale * po + w.sft_scale * sft",
        "loss = 0.5 * po + 0.5 * sft",
    ),
    Mutation(
        "a rule's lambda per group dropped",
        "src/wavalign/callbacks/gating.py",
        "group_lam=group_lam,",
        "group_lam=None,",
    ),
    Mutation(
        "a rule's lambda per group on tiled rows, not grouped",
        "src/wavalign/step/plan.py",
        "group_lam.repeat_interleave(group_size)",
        "group_lam.repeat(group_size)",
    ),
    Mutation(
        "a rule's per-token weights dropped",
        "src/wavalign/callbacks/gating.py",
        "po_weights, sft_weights = self.rule.token_weights(inputs)",
        "po_weights, sft_weights = None, None",
    ),
    Mutation(
        "hybrid SRFT: positive rollouts weighted by exp(-H), not exp(H)",
        "src/wavalign/gates/srft.py",
        "self.rl_coef * torch.exp(h_rollout)",
        "self.rl_coef * torch.exp(-h_rollout)",
    ),
    Mutation(
        "hybrid SRFT: the weight on the negative rollouts, not the positive ones",
        "src/wavalign/gates/srft.py",
        "torch.where(positive,",
        "torch.where(~positive,",
    ),
    Mutation(
        "hybrid SRFT: SFT and rollout coefficients swapped",
        "src/wavalign/gates/srft.py",
        "self.sft_coef, self.rl_coef = float(sft_coef), float(rl_coef)",
        "self.rl_coef, self.sft_coef = float(sft_coef), float(rl_coef)",
    ),
    Mutation(
        "hybrid SRFT: entropies not passed to the rule",
        "src/wavalign/module.py",
        "fwd.entropy,\n                fwd.demo_entropy,\n            )",
        "fwd.entropy,\n                fwd.entropy,\n            )",
    ),
    Mutation(
        "hybrid LUFFY: shaping ignored (plain p)",
        "src/wavalign/gates/luffy.py",
        "return luffy_shaping(demo_logp, self.gamma)",
        "return demo_logp.exp()",
    ),
    Mutation(
        "hybrid LUFFY: the demonstration left out of its group's statistics",
        "src/wavalign/step/demonstrations.py",
        "torch.cat([scored.reliable, demos.reliable], dim=1)",
        "torch.cat([scored.reliable, demos.reliable & False], dim=1)",
    ),
    Mutation(
        "hybrid LUFFY: off-policy rows dropped by the objective",
        "src/wavalign/step/losses.py",
        "    if off_policy is not None:\n",
        "    if False:\n",
    ),
    Mutation(
        "hybrid ReLIFT: buffer oldest first",
        "src/wavalign/gates/relift.py",
        "self.buffer = [rows[b] for b in range(len(rows)) if bool(self.failed[b])] + self.buffer",
        "self.buffer = self.buffer + [rows[b] for b in range(len(rows)) if bool(self.failed[b])]",
    ),
    Mutation(
        "hybrid ReLIFT: the replayed demonstrations ignored by the module",
        "src/wavalign/step/plan.py",
        'return demonstrations if self.sft_source == "batch" else self.replay',
        "return demonstrations",
    ),
    Mutation(
        "hybrid split: semantic and acoustic parts swapped",
        "src/wavalign/step/split_po.py",
        'SPLIT_PARTS = ("semantic", "acoustic")',
        'SPLIT_PARTS = ("acoustic", "semantic")',
    ),
    Mutation(
        "hybrid split: per-token advantages dropped in the preference term",
        "src/wavalign/step/preference.py",
        "self.grpo(entry, logp, mask, token_weights, advantages, off)",
        "self.grpo(entry, logp, mask, token_weights, None, off)",
    ),
    Mutation(
        "hybrid modality logs: text and speech masks swapped",
        "src/wavalign/step/modality_stats.py",
        '(("text", masks.text), ("speech", masks.speech))',
        '(("text", masks.speech), ("speech", masks.text))',
    ),
    Mutation(
        "po_tokens ignored (always all tokens)",
        "src/wavalign/step/preference.py",
        "mask = rollouts.masks.select(self.po_tokens)",
        'mask = rollouts.masks.select("all")',
    ),
    Mutation(
        "random states not restored on resume",
        "src/wavalign/runtime/resume.py",
        "set_rng_states(self._pending)",
        "pass",
    ),
    Mutation(
        "validation draws from the training random stream",
        "src/wavalign/runtime/resume.py",
        "set_rng_states(self._outside_validation)",
        "pass",
    ),
    Mutation(
        "data position not restored on resume",
        "src/wavalign/data/datamodule.py",
        "sampler.skip(self._resume_after)",
        "pass",
    ),
    Mutation(
        "PPO rollout buffer not restored on resume",
        "src/wavalign/module.py",
        "self.buffer.load_state_dict(mine, self.device)",
        "pass",
    ),
    # sft_step's line (eval_step has the same sft_loss line: the demo line before it makes the text unique)
    Mutation(
        "pure-SFT step trained on the text tokens only",
        "src/wavalign/module.py",
        "demo = self.demonstrations(examples, self.prompts(examples))\n"
        "        sft = sft_loss(self.policy.token_logprobs(demo), demo.masks.completion)",
        "demo = self.demonstrations(examples, self.prompts(examples))\n"
        "        sft = sft_loss(self.policy.token_logprobs(demo), demo.masks.text)",
    ),
    Mutation(
        "PPO clip's lower bound from epsilon_high",
        "src/wavalign/step/losses.py",
        "torch.clamp(ratio, 1.0 - epsilon, 1.0 + eps_high)",
        "torch.clamp(ratio, 1.0 - eps_high, 1.0 + eps_high)",
    ),
    Mutation(
        "fused decoder: query heads grouped in the wrong order (repeat, not repeat_interleave)",
        "src/wavalign/policy/qwen2_decoding.py",
        "grouped = qk[:, : shape.heads].reshape(rows, shape.kv_heads, groups, dim)",
        "grouped = qk[:, : shape.heads].reshape(rows, groups, shape.kv_heads, dim).transpose(1, 2)",
    ),
    Mutation(
        "fused decoder: rotary half-rotation with the wrong sign",
        "src/wavalign/policy/qwen2_decoding.py",
        "torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin",
        "torch.cat((x[..., half:], -x[..., :half]), dim=-1) * sin",
    ),
    Mutation(
        "fused decoder: decode positions off by one",
        "src/wavalign/policy/qwen2_decoding.py",
        "layers, parts, self.shape, token, position + i, attention, keys, values, where + i, span",
        "layers, parts, self.shape, token, position + i + 1, attention, keys, values, where + i, span",
    ),
    Mutation(
        "fused decoder: top-p on the descending cumulative softmax",
        "src/wavalign/policy/qwen2_decoding.py",
        "ascending = kept.flip(-1)\n        removed = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - settings.top_p)\n        removed[:, -1] = False",
        "ascending = kept\n        removed = ascending.softmax(dim=-1).cumsum(dim=-1) <= (1 - settings.top_p)\n        removed[:, 0] = False",
    ),
    Mutation(
        "fused decoder: temperature not applied",
        "src/wavalign/policy/qwen2_decoding.py",
        "scores = logits / settings.temperature if settings.temperature != 1.0 else logits",
        "scores = logits",
    ),
    Mutation(
        "fused decoder: generate's default top-k (50) not applied to unset fields",
        "src/wavalign/policy/qwen2_decoding.py",
        'top_k=int(read("top_k") or 0),',
        'top_k=int(getattr(config, "top_k", None) or 0),',
    ),
    Mutation(
        "fused decoder: rows past their stop token keep sampling instead of padding",
        "src/wavalign/policy/qwen2_decoding.py",
        "token = draw(logits, settings).masked_fill(done, pad_id)",
        "token = draw(logits, settings)",
    ),
)


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [f for f in out.stdout.splitlines() if (ROOT / f).is_file()]


def run_one(m: Mutation, files: list[str], tests: list[str]) -> tuple[str, list[str]]:
    """('caught' | 'MISSED' | 'stale', failing test ids) for one mutation applied to a fresh copy of the tree."""
    with tempfile.TemporaryDirectory(prefix="wavalign-mutant-") as tmp:
        for f in files:
            (Path(tmp) / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, Path(tmp) / f)
        target = Path(tmp) / m.path
        text = target.read_text()
        if text.count(m.old) != 1:
            return "stale", []
        target.write_text(text.replace(m.old, m.new))
        env = dict(os.environ, PYTHONPATH=str(Path(tmp) / "src"))
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
        )
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, flags=re.MULTILINE)
        return ("caught" if proc.returncode != 0 else "MISSED"), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the mutations whose name contains this text")
    parser.add_argument("--tests", nargs="+", default=list(DEFAULT_TESTS), help="test paths to run per mutation")
    args = parser.parse_args()
    files = tracked_files()
    holes = 0
    for m in MUTATIONS:
        if args.only and args.only not in m.name:
            continue
        verdict, failed = run_one(m, files, args.tests)
        holes += verdict != "caught"
        print(f"{verdict:7s} {m.name}: {', '.join(failed) or '-'}", flush=True)
    return 1 if holes else 0


if __name__ == "__main__":
    raise SystemExit(main())
