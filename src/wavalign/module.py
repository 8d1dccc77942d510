"""WavAlignModule: one training step = rollouts, judging, gate, L = lambda L_PO(text) + (1 - lambda) L_SFT(all).

The module only wires the parts; each idea lives in its own module (modality, objectives, gating, judges, policy).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from wavalign.audio.codec import SpeechCodec
from wavalign.callbacks.divergence import sampling_guard
from wavalign.callbacks.gating import GateCallback
from wavalign.callbacks.rollout_steps import rollouts_read_now
from wavalign.data.row_limits import check_rows, row_prompt, row_reply
from wavalign.data.schema import DialogueExample
from wavalign.data.speech import SpeechTokenCache
from wavalign.gates.base import TokenInputs
from wavalign.judges.base import Judge
from wavalign.policy.base import (
    Reply,
    SamplingConfig,
    SequenceBatch,
    SpeechPolicy,
    check_codec_fits,
)
from wavalign.predict.replies import PromptReplies, predict_replies
from wavalign.runtime.distributed import GlobalGroups, gather_groups, load_per_rank, process_slot, save_per_rank
from wavalign.runtime.resume import ResumeStateCallback
from wavalign.runtime.sharding import shard_policy
from wavalign.runtime.warm_start import load_policy_weights
from wavalign.step.demonstrations import advantages_with_demos, score_demonstrations
from wavalign.step.logprobs import step_logprobs
from wavalign.step.losses import group_advantages, sft_loss
from wavalign.step.modality_stats import modality_logs
from wavalign.step.preference import PreferenceObjective
from wavalign.step.rollouts import Advantages, JudgedRollouts, RolloutBuffer, RolloutEntry
from wavalign.step.scoring import ScoredGroups, build_requests, score_groups
from wavalign.step.split_po import split_advantages


class WavAlignModule(pl.LightningModule):
    """One training step: sample G spoken replies per prompt, judge them, ask the gate for the batch's plan, and
    train L = po_scale L_PO + sft_scale L_SFT as the plan says (the paper: lambda L_PO(text) + (1 - lambda) L_SFT(all)).

    Args:
        policy: the speech LLM that listens and speaks (`wavalign.policy`: the tiny world policies, VITA-Audio,
            Kimi-Audio, or your own `SpeechPolicy`).
        judge: scores each reply 1-5 (`wavalign.judges`); unreliable scores are left out of advantages and gate.
        codec: decodes speech codes for audio judges and encodes WAV prompts; None for text-only judges and
            pre-tokenized data.
        group_size: G, replies sampled per prompt; advantages are relative within a group, so at least 2.
        sampling: how training rollouts are sampled (temperature, top_p, max_new_tokens).
        eval_sampling: how validation, test and predict replies are sampled (default temperature 0.7, top_p 0.9).
        objective: 'grpo' (group-relative advantages) or 'dpo' (online DPO on each group's best and worst reply).
        po_tokens: which tokens the preference loss trains: 'text' (WavAlign), 'all' (the full-token baseline),
            'speech', or 'split' (text on the judge's semantic advantage, speech on its acoustic one).
        loss_type: the GRPO normaliser: 'grpo' (per-sequence mean), 'dr_grpo' (constant), 'dapo' / 'bnpo' (token
            mean over the batch).
        beta: weight of the KL penalty to the frozen reference (0 skips the reference forward).
        epsilon: the PPO clip's lower width: ratios below 1 - epsilon stop pulling.
        epsilon_high: the clip's upper width (DAPO's clip-higher); None uses epsilon.
        scale_rewards: divide each group's advantages by its reward standard deviation (off: Dr. GRPO).
        dpo_beta: the DPO temperature (objective 'dpo' only).
        ppo_epochs: optimiser updates per rollout batch (the DataModule repeats each batch to match).
        optimizer: the optimiser over the trainable parameters (LoRA adapters or the whole tiny policy).
        scheduler: an optional learning-rate scheduler, stepped every update.
        init_checkpoint: a Lightning checkpoint whose policy weights start the run (e.g. the SFT warm start).
        sample_when_sft_only: with a gate fixed at lambda = 0, still sample and judge rollouts so rewards are logged,
            on the steps whose statistics something reads (logged steps, a rollout callback's steps: the others'
            rollouts would be thrown away unread); off for pure SFT warm starts, where every step is one
            teacher-forced forward.
        log_entropy: log policy/entropy_text and policy/entropy_speech from the training forward (costs a softmax
            over the vocabulary per token, so it is computed only on the steps Lightning writes logs for).
    """

    def __init__(
        self,
        policy: SpeechPolicy,
        judge: Judge,
        codec: SpeechCodec | None = None,
        group_size: int = 4,
        sampling: SamplingConfig | None = None,
        eval_sampling: SamplingConfig | None = None,
        objective: str = "grpo",
        po_tokens: str = "text",
        loss_type: str = "grpo",
        beta: float = 0.0,
        epsilon: float = 0.2,
        epsilon_high: float | None = None,
        scale_rewards: bool = True,
        dpo_beta: float = 0.1,
        ppo_epochs: int = 1,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        init_checkpoint: str | None = None,
        sample_when_sft_only: bool = True,
        log_entropy: bool = True,
    ) -> None:
        super().__init__()
        self.preference = PreferenceObjective(
            group_size, objective, po_tokens, loss_type, beta, epsilon, epsilon_high, dpo_beta
        )  # checks its settings first
        if group_size < 2:
            raise ValueError(
                f"model.group_size must be >= 2 (advantages are relative within a group), got {group_size}"
            )
        self.save_hyperparameters(ignore=["policy", "judge", "codec", "optimizer", "scheduler"])
        self.policy, self.judge, self.codec = policy, judge, codec
        check_codec_fits(policy, codec)
        self.group_size = group_size
        self.sampling = sampling or SamplingConfig()
        self.eval_sampling = eval_sampling or SamplingConfig(
            temperature=0.7, top_p=0.9, max_new_tokens=self.sampling.max_new_tokens
        )
        self.scale_rewards = scale_rewards
        self.buffer = RolloutBuffer(ppo_epochs)
        self.speech = SpeechTokenCache(codec)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.gate: GateCallback | None = None  # the gate's planner, attached by GateCallback.setup
        self.last_entry: RolloutEntry | None = None  # for callbacks (audio logging, gradient geometry)
        self.last_scored: ScoredGroups | None = None  # the last judged batch, training or evaluation
        self.sample_when_sft_only = sample_when_sft_only
        self.log_entropy = log_entropy
        self.timings: dict[str, float] = {}  # seconds per phase of the last step, logged as time/<phase>
        if init_checkpoint:
            load_policy_weights(self, init_checkpoint)

    # ---- setup ---------------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.gate is None:
            raise ValueError(
                "no gate: add wavalign.callbacks.gating.GateCallback to trainer.callbacks (the CLI adds it)"
            )
        if stage != "predict" and self.preference.needs_reference:
            self.policy.setup_reference()
        datamodule = getattr(self._trainer, "datamodule", None)  # every row must fit before step 1 (row_limits)
        check_rows(self.policy, self.speech, datamodule, [self.sampling, self.eval_sampling])

    def configure_model(self) -> None:
        """Sharded strategies wrap the policy here (FSDP2 under ModelParallelStrategy: wavalign.runtime.sharding)."""
        shard_policy(self)

    def configure_callbacks(self) -> list[pl.Callback]:
        """Random states and data position in every checkpoint, so a resumed run continues exactly."""
        return [ResumeStateCallback()]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rollout_buffer"] = save_per_rank(self._trainer, self.buffer.state_dict())  # each rank's own groups

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "rollout_buffer" in checkpoint:
            mine = load_per_rank(checkpoint["rollout_buffer"], *process_slot(self._trainer), "rollout buffer")
            self.buffer.load_state_dict(mine, self.device)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        total = getattr(scheduler, "total_steps", None)  # OneCycleLR: raises when stepped past it, so check up front
        max_steps = self._trainer.max_steps if self._trainer is not None else -1
        if isinstance(total, int) and max_steps > total:
            raise ValueError(
                f"model.scheduler ({type(scheduler).__name__}) has total_steps={total} but trainer.max_steps={max_steps}: "
                f"it would fail at step {total + 1}; set model.scheduler.init_args.total_steps to trainer.max_steps"
            )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - start

    # ---- tokens --------------------------------------------------------------------------------------------------
    def prompts(self, examples: Sequence[DialogueExample]) -> list[list[int]]:
        return [row_prompt(self.policy, self.speech, ex) for ex in examples]  # errors name the row

    def demonstrations(self, examples: Sequence[DialogueExample], prompts: list[list[int]]) -> SequenceBatch:
        replies = [row_reply(self.policy, self.speech, ex) for ex in examples]
        return self.policy.make_batch(prompts, replies)

    def sample_and_score(
        self, examples: Sequence[DialogueExample], prompts: list[list[int]], group_size: int, sampling: SamplingConfig
    ) -> tuple[SequenceBatch, list[Reply], ScoredGroups]:
        with self.timed("rollout"), sampling_guard(self.global_step):  # NaN/inf probabilities: Diverged
            rollouts = self.policy.rollout(prompts, group_size, sampling)
            replies = self.policy.decode(rollouts)
        with self.timed("judge"):
            scored = score_groups(self.judge, build_requests(examples, replies, group_size, self.codec), group_size)
        self.last_scored = scored  # for RunGuards, which also watches the judge during the sanity validation
        return rollouts, replies, scored

    # ---- training ------------------------------------------------------------------------------------------------
    def make_entry(self, key: tuple[int, ...], examples: Sequence[DialogueExample]) -> RolloutEntry:
        """Sample and judge a fresh batch, ask the gate for its plan, and compute what every update of it reuses."""
        prompts = self.prompts(examples)
        rollouts, replies, scored = self.sample_and_score(examples, prompts, self.group_size, self.sampling)
        groups = gather_groups(self, scored.rewards, scored.reliable)  # the gate sees every process's groups
        demo = self.demonstrations(examples, prompts)
        plan = self.gate.plan(groups, demo, self.policy.make_batch)
        adv = Advantages(group_advantages(scored.rewards, scored.reliable, scale=self.scale_rewards).flatten())
        if self.preference.po_tokens == "split":
            adv.parts = split_advantages(scored, self.group_size, self.scale_rewards).to(self.device)
        if plan.demos_in_group:  # each demonstration joins its group as an off-policy sample
            with self.timed("judge"):
                demo_scored = score_demonstrations(self.judge, examples, self.policy.decode(demo), self.codec)
            adv.rollouts, demo_adv = advantages_with_demos(scored, demo_scored, self.scale_rewards)
            adv.demonstrations = demo_adv.to(self.device)
        adv.rollouts = adv.rollouts.to(self.device)
        entry = RolloutEntry(
            key,
            rollouts,
            demo,
            adv,
            plan,
            replies,
            judged=JudgedRollouts(scored.requests, scored.scores, groups.reliable),
        )
        if self.preference.beta > 0 and plan.lam > 0:
            with self.timed("reference"):
                entry.ref_logp = self.reference_logprobs(rollouts)
        self.log_rollout_stats(entry, scored, plan.lam_raw, groups)
        return entry

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        key = tuple(batch["ids"])
        self.timings = {}
        if self.gate.pure_sft and not (self.sample_when_sft_only and rollouts_read_now(self._trainer)):
            self.last_entry = None  # no rollouts this step: callbacks must not read an older step's as this one's
            return self.sft_step(batch["examples"])
        entry = self.buffer.get(key) or self.buffer.put(self.make_entry(key, batch["examples"]))
        self.buffer.mark_used(entry)
        self.last_entry = entry
        plan, demo = entry.plan, entry.sft_batch
        log_entropy = self.logs_entropy_now()
        with self.timed("forward"):
            fwd = step_logprobs(
                self.policy,
                entry.rollouts,
                demo,
                train_po=plan.train_po,
                train_sft=plan.train_sft,
                joint=self.preference.objective == "grpo",
                with_entropy=log_entropy or plan.with_entropy,
            )
            demo_mask = None if demo is None else demo.masks.completion
            inputs = TokenInputs(
                fwd.logp,
                fwd.demo_logp,
                entry.advantages.rollouts,
                entry.rollouts.masks.completion,
                demo_mask,
                fwd.entropy,
                fwd.demo_entropy,
            )
            w = self.gate.loss_weights(plan, self.group_size, inputs)
            po, po_logs = self.preference.loss(
                entry,
                fwd.logp,
                w.po_weights,
                fwd.demo_logp,
                self.gate.demo_ratio,
                self.reference_logprobs,
                self.gate.rule_name,
            )
            if po_logs:  # GRPO's KL and clip ratio, per prompt group
                self.log_dict(po_logs, batch_size=entry.rollouts.rows // self.group_size)
            sft = fwd.logp.new_zeros(()) if demo is None else sft_loss(fwd.demo_logp, demo_mask, w.sft_weights)
            loss = w.po_scale * po + w.sft_scale * sft
        bs = len(key)
        self.log_dict(
            {"loss/total": loss, "loss/po": po, "loss/sft": sft, "gate/lambda": plan.lam}, batch_size=bs, prog_bar=True
        )
        self.log_dict(
            modality_logs(entry.rollouts.masks, fwd.entropy if log_entropy else None, fwd.logp, entry.ref_logp),
            batch_size=bs,
        )
        self.log_dict({f"time/{k}": v for k, v in self.timings.items()}, batch_size=bs)
        return loss

    def logs_entropy_now(self) -> bool:
        """Whether this step's entropies reach a logger: Lightning writes a step's logs only every
        `log_every_n_steps`, and the entropy costs a pass over the vocabulary that nothing else reads. Without a
        trainer (a step run by hand) every step counts as logged."""
        trainer = self._trainer
        return self.log_entropy and (trainer is None or trainer._logger_connector.should_update_logs)

    def reference_logprobs(self, batch: SequenceBatch) -> Tensor:
        """The frozen reference's token log-probs (the base model with the adapter off, or its copy)."""
        return self.policy.token_logprobs(batch, reference=True)

    def sft_step(self, examples: Sequence[DialogueExample]) -> Tensor:
        """A pure SFT step: no rollouts, one teacher-forced forward on the demonstrations."""
        demo = self.demonstrations(examples, self.prompts(examples))
        sft = sft_loss(self.policy.token_logprobs(demo), demo.masks.completion)
        self.log_dict({"loss/total": sft, "loss/sft": sft, "gate/lambda": 0.0}, batch_size=len(examples), prog_bar=True)
        return sft

    def log_rollout_stats(
        self, entry: RolloutEntry, scored: ScoredGroups, lam_raw: float, groups: GlobalGroups
    ) -> None:
        """Gate and reward figures of the global batch (gathered); per-rank figures averaged over ranks."""
        masks = entry.rollouts.masks
        f32 = lambda d: {k: torch.as_tensor(v, dtype=torch.float32) for k, v in d.items()}  # noqa: E731
        self.log_dict(f32({"gate/lambda_raw": lam_raw, **groups.reward_stats()}), batch_size=groups.rewards.shape[0])
        local = {"rollout/len_text": masks.text.sum(dim=1).mean(), "rollout/len_speech": masks.speech.sum(dim=1).mean()}
        local.update({f"judge/{k}": v for k, v in scored.part_means().items()})
        self.log_dict(f32(local), batch_size=scored.rewards.shape[0], sync_dist=True)

    # ---- evaluation ----------------------------------------------------------------------------------------------
    def eval_step(self, batch: dict, prefix: str) -> None:
        examples = batch["examples"]
        prompts = self.prompts(examples)
        _, _, scored = self.sample_and_score(examples, prompts, 1, self.eval_sampling)
        demo = self.demonstrations(examples, prompts)
        sft = sft_loss(self.policy.token_logprobs(demo), demo.masks.completion)
        bs = len(examples)
        metrics = {f"{prefix}/reward": scored.rewards.mean().float(), f"{prefix}/loss_sft": sft}
        metrics.update({f"{prefix}/{k}": torch.tensor(v) for k, v in scored.part_means().items()})
        self.log_dict(metrics, batch_size=bs, on_epoch=True, on_step=False)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.eval_step(batch, "test")

    predict_group_size: int = (
        1  # replies per prompt in `wavalign predict` (set from the CLI's listen.replies_per_prompt)
    )

    def predict_step(self, batch: dict, batch_idx: int) -> list[PromptReplies]:
        """`wavalign predict`: replies sampled with eval_sampling, judged and decoded (wavalign.predict.replies)."""
        return predict_replies(self, batch, self.predict_group_size)

    def on_fit_end(self) -> None:
        self.judge.close()
