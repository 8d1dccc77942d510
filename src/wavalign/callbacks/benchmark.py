"""BenchmarkCallback: the paper's IQ / EQ / WER on benchmark suites, at validate and test time and every N steps.

For each item the policy samples one reply (the module's `eval_sampling`) to the item's prompt: its spoken question
encoded by the module's codec, or its text when it has no audio; `iq_samples` > 1 samples more replies per item for
the rule-checked IQ only (a sampled 150-item accuracy moves by several points from sampling noise alone; extra samples
cost generation time, not ASR or judge calls). Then:
- IQ (0-100), generic suites: items with references are checked by rule (`benchmarks.correctness`: the reference's
  words appear in the reply, or the right multiple-choice letter); items without references count only when
  `iq_judge` is set, as (score - 1) / 4 of its reliable scores.
- EQ (1-5): the mean reliable score of `eq_judge` (default: the module's judge). It measures expressiveness only as
  far as that judge does (an audio HttpJudge with the acoustic prompt, StyleJudge); with a text rule judge it is
  that judge's score. Unreliable scores (fallbacks) are left out; their fraction is logged as eval/eq_unreliable.
- WER, by `wer`: 'speech_text' (the paper's consistency measure: ASR transcript of the reply's decoded speech vs the
  reply's text; needs an ASR, `asr` or `asr_sentences_file` for the offline TaskASR, and the module's codec; without
  them nothing is logged and a warning says why), 'reference'
  (the reply's text vs the item's first reference answer: a content WER for text-only setups), or 'off'.
Logged as eval/iq, eval/eq, eval/wer (pooled over the generic suites' items) and eval/<suite>/iq ... per suite,
plus eval/<suite>/<category>/... with by_category; each IQ comes with iq_se, its standard error over items.
VoiceBench and VStyle suites are scored only as their official evaluators score them (`benchmarks.tally`, on the
first reply): eval/voicebench/<subset>, eval/voicebench/overall, eval/vstyle/<category>[/<sub>], eval/vstyle/overall
(their LLM judges: `voicebench_judge`, `vstyle_judge`; VoiceBench's bbh / openbookqa / mmsu / advbench rule tables
and IFEval's constrained-response options are read from the user's VoiceBench checkout, `voicebench_dir` or
$WAVALIGN_VOICEBENCH_DIR, at setup); they add EQ and WER under eval/<suite>/ only. Sampling runs under a forked RNG seeded with `seed`: every evaluation of a run sees the same noise, and the training RNG
stream is left exactly as it would be without the callback.
"""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass
from typing import Protocol, Sequence

import lightning.pytorch as pl
import numpy as np
import torch

from wavalign.audio.io import read_wav
from wavalign.benchmarks import BenchmarkItem, correctness, load_benchmark
from wavalign.benchmarks.ifeval import needs_options
from wavalign.benchmarks.tally import LLM_SUBSETS, OfficialTally
from wavalign.benchmarks.voicebench_rules import RULE_SUBSETS, VoiceBenchRules
from wavalign.judges.base import Judge, JudgeRequest
from wavalign.judges.official import VoiceBenchJudge, VStyleJudge
from wavalign.benchmarks.metrics import EQ, IQ, SpeechTextWER
from wavalign.runtime.progress import ProgressLines
from wavalign.policy.base import Reply
from wavalign.step.scoring import build_requests

WER_MODES = ("speech_text", "reference", "off")


@dataclass
class BenchmarkSuite:
    """One benchmark file. kind: generic | voicebench | vstyle; subset: the VoiceBench subset (required for
    voicebench: it picks the official scorer); language: VStyle rows to keep; max_items: the first N items only."""

    name: str
    path: str
    kind: str = "generic"
    max_items: int | None = None
    subset: str | None = None
    language: str | None = None
    skip_unsupported: bool = False  # VoiceBench ifeval: drop rows we cannot check (logged as ifeval_partial)


class Transcriber(Protocol):
    """An ASR: mono float waveform -> text (wavalign.audio.asr.TaskASR fits)."""

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str: ...


@dataclass
class _Scores:
    iq: IQ
    eq: EQ
    wer: SpeechTextWER
    eq_unreliable: int = 0
    eq_total: int = 0


class BenchmarkCallback(pl.Callback):
    """every_n_steps > 0 also evaluates after every N-th optimiser step of `fit`, written straight to the loggers at
    step N - 1, 2N - 1, ... (where a validation run after N steps lands too). at_start also evaluates before the first
    update of a fresh `fit` (logged at step 0): the starting point of the curves, e.g. a warm start's IQ before RL."""

    def __init__(
        self,
        suites: list[BenchmarkSuite],
        every_n_steps: int = 0,
        batch_size: int = 8,
        eq_judge: Judge | None = None,
        iq_judge: Judge | None = None,
        wer: str = "speech_text",
        asr: Transcriber | None = None,
        asr_sentences_file: str | None = None,
        by_category: bool = False,
        seed: int = 0,
        at_start: bool = False,
        iq_samples: int = 1,
        voicebench_judge: VoiceBenchJudge | None = None,
        vstyle_judge: VStyleJudge | None = None,
        voicebench_dir: str | None = None,
    ) -> None:
        if not suites:
            raise ValueError("BenchmarkCallback needs at least one suite")
        names = [s.name for s in suites]
        if len(set(names)) != len(names) or any(not n or "/" in n for n in names):
            raise ValueError(f"benchmark suite names must be unique, non-empty and without '/', got {names}")
        if wer not in WER_MODES:
            raise ValueError(f"BenchmarkCallback wer must be one of {WER_MODES}, got {wer!r}")
        if asr is not None and asr_sentences_file is not None:
            raise ValueError("BenchmarkCallback: give asr or asr_sentences_file, not both")
        if every_n_steps < 0 or batch_size < 1 or iq_samples < 1:
            raise ValueError(
                f"every_n_steps must be >= 0, batch_size and iq_samples >= 1, got {every_n_steps}, {batch_size}, {iq_samples}"
            )
        self.suites, self.every_n_steps, self.batch_size = suites, every_n_steps, batch_size
        self.eq_judge, self.iq_judge, self.wer, self.asr = eq_judge, iq_judge, wer, asr
        self.asr_sentences_file, self.by_category, self.seed = asr_sentences_file, by_category, seed
        self.at_start, self.iq_samples = at_start, iq_samples
        self.voicebench_judge, self.vstyle_judge = voicebench_judge, vstyle_judge
        self.voicebench_dir = voicebench_dir  # a VoiceBench checkout (else $WAVALIGN_VOICEBENCH_DIR): its rule tables
        self.voicebench_rules: VoiceBenchRules | None = None
        self.items: dict[str, list[BenchmarkItem]] = {}
        self.last: dict[str, float] = {}  # the latest evaluation's values, for inspection and tests
        self._last_step = -1
        self._warned = False

    # ---- hooks ---------------------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Read every suite (and the ASR's sentences) up front, so a broken file fails the run before any training."""
        for s in self.suites:
            if s.name not in self.items:
                self.items[s.name] = load_benchmark(
                    s.kind, s.path, s.name, s.max_items, s.subset, s.language, s.skip_unsupported
                )
            if s.kind == "voicebench" and s.subset in LLM_SUBSETS and self.voicebench_judge is None:
                raise ValueError(f"benchmark suite {s.name!r}: VoiceBench's {s.subset} is scored by an LLM judge; "
                                 "set BenchmarkCallback voicebench_judge (wavalign.judges.official.VoiceBenchJudge)")
            needs_tables = s.subset in RULE_SUBSETS or any(needs_options(it.instructions) for it in self.items[s.name])
            if s.kind == "voicebench" and needs_tables and self.voicebench_rules is None:
                self.voicebench_rules = VoiceBenchRules.from_checkout(
                    self.voicebench_dir, f"benchmark suite {s.name!r} (VoiceBench {s.subset})")
            if s.kind == "vstyle" and self.vstyle_judge is None:
                raise ValueError(f"benchmark suite {s.name!r}: VStyle is scored by its LALM judge; set "
                                 "BenchmarkCallback vstyle_judge (wavalign.judges.official.VStyleJudge)")
        if self.asr is None and self.asr_sentences_file is not None:
            from wavalign.audio.asr import TaskASR

            with open(self.asr_sentences_file, encoding="utf-8") as f:  # a missing file raises here, naming it
                self.asr = TaskASR([line.strip() for line in f if line.strip()])

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            pl_module.log_dict(self.evaluate(trainer, pl_module), on_step=False, on_epoch=True, batch_size=1)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pl_module.log_dict(self.evaluate(trainer, pl_module), on_step=False, on_epoch=True, batch_size=1)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at_start and trainer.global_step == 0:  # not on resume: that run's start was logged already
            values = self.evaluate(trainer, pl_module)
            for logger in trainer.loggers:
                logger.log_metrics(values, step=0)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int) -> None:
        done = trainer.global_step  # optimiser steps taken so far
        if self.every_n_steps <= 0 or done == 0 or done % self.every_n_steps or done == self._last_step:
            return
        self._last_step = done
        values = self.evaluate(trainer, pl_module)
        for logger in trainer.loggers:  # at the last finished step's index, where Lightning puts validation metrics
            logger.log_metrics(values, step=done - 1)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for judge in (self.eq_judge, self.iq_judge):  # the official judges hold no connections to close
            if judge is not None:
                judge.close()

    # ---- evaluation ----------------------------------------------------------------------------------------------
    def scopes(self, item: BenchmarkItem) -> list[str]:
        out = ["eval"] if item.kind == "generic" else []  # official suites log in their own units instead
        out.append(f"eval/{item.benchmark}")
        if self.by_category and item.category:
            out.append(f"eval/{item.benchmark}/{item.category}")
        return out

    @torch.no_grad()
    def evaluate(self, trainer: pl.Trainer | None, pl_module: pl.LightningModule) -> dict[str, float]:
        """Sample, score and reduce every suite; returns the finite values by logged name. Each process scores its
        share of the items (rank::world_size) and torchmetrics sums the counts across processes."""
        if not self.items:
            self.setup(trainer, pl_module, "validate")
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        all_items = [it for s in self.suites for it in self.items[s.name]]
        scores = {k: self._new_scores(pl_module.device) for it in all_items for k in self.scopes(it)}
        tally = OfficialTally([it for it in all_items if it.kind != "generic"])
        guesses = random.Random(self.seed)  # VoiceBench's random answers where no rule matches, repeatable
        devices = [pl_module.device.index or 0] if pl_module.device.type == "cuda" else []
        mine = all_items[rank::world]
        quiet = trainer is not None and not trainer.is_global_zero  # one process reports progress
        progress = ProgressLines("eval: scored items", len(mine), say=(lambda line: None) if quiet else None)
        # Every process runs as many rollout rounds as the one with the largest share: under sharded weights a
        # rollout is a collective, so a process that stopped early would leave the others waiting for ever.
        rounds = math.ceil(math.ceil(len(all_items) / world) / self.batch_size)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            for start in range(0, rounds * self.batch_size, self.batch_size):
                chunk = mine[start : start + self.batch_size]
                if not chunk:  # this process's share is used up: a rollout whose replies are dropped
                    pl_module.policy.rollout(pl_module.prompts([all_items[0].as_example()]), 1, pl_module.eval_sampling)
                    continue
                self._score_chunk(pl_module, chunk, scores, tally, guesses)
                progress.advance(len(chunk))  # a line every 10 s: a 150-item evaluation takes minutes on a busy CPU
        values: dict[str, float] = {}
        with warnings.catch_warnings():  # a scope without e.g. references is NaN by design, not a misuse
            warnings.filterwarnings("ignore", message=".*was called before the ``update`` method")
            for scope, s in scores.items():
                for name, metric in (("iq", s.iq), ("eq", s.eq), ("wer", s.wer)):
                    v = float(metric.compute())
                    if math.isfinite(v):
                        values[f"{scope}/{name}"] = v
                se = float(s.iq.standard_error())
                if math.isfinite(se):
                    values[f"{scope}/iq_se"] = se
        pooled = scores.get("eval") or _Scores(IQ(), EQ(), SpeechTextWER())
        counts = [pooled.eq_unreliable, pooled.eq_total] + tally.vector()
        totals = torch.tensor(counts, dtype=torch.float64)
        totals = pl_module.all_gather(totals).reshape(-1, len(counts)).sum(0) if world > 1 else totals
        if totals[1] > 0:
            values["eval/eq_unreliable"] = float(totals[0] / totals[1])
        tally.load(totals[2:].tolist())
        values.update(tally.values())
        self.last = values
        return values

    @staticmethod
    def _new_scores(device: torch.device) -> _Scores:
        return _Scores(IQ().to(device), EQ().to(device), SpeechTextWER().to(device))

    def _score_chunk(
        self, pl_module: pl.LightningModule, items: Sequence[BenchmarkItem], scores: dict[str, _Scores],
        tally: OfficialTally, guesses: random.Random,
    ) -> None:
        examples, k = [it.as_example() for it in items], self.iq_samples
        rollouts = pl_module.policy.rollout(pl_module.prompts(examples), k, pl_module.eval_sampling)
        all_replies = pl_module.policy.decode(rollouts)  # item i owns replies i*k .. i*k+k-1
        replies = all_replies[::k]
        requests = build_requests(examples, replies, 1, pl_module.codec)
        eq_scores = (self.eq_judge or pl_module.judge).score(requests)
        correct = self._correctness(items, all_replies, requests)
        wer_pairs = self._wer_pairs(items, replies, requests, pl_module)
        self._score_official(items, replies, requests, tally, guesses)
        for i, item in enumerate(items):
            for scope in self.scopes(item):
                s = scores[scope]
                if correct[i] is not None and item.kind == "generic":
                    s.iq.update([correct[i]])
                s.eq_total += 1
                if eq_scores[i].reliable:
                    s.eq.update([eq_scores[i].score])
                else:
                    s.eq_unreliable += 1
                if wer_pairs[i] is not None:
                    s.wer.update([wer_pairs[i][0]], [wer_pairs[i][1]])

    def _score_official(
        self, items: Sequence[BenchmarkItem], replies: Sequence[Reply], requests: Sequence[JudgeRequest],
        tally: OfficialTally, guesses: random.Random,
    ) -> None:
        """VoiceBench and VStyle items of a chunk, scored by their official rules and judges on the first reply."""
        vb = [i for i, it in enumerate(items) if it.kind == "voicebench"]
        if vb:
            tally.add_voicebench([items[i] for i in vb], [replies[i].text for i in vb], self.voicebench_judge, guesses,
                                 self.voicebench_rules)
        vs = [i for i, it in enumerate(items) if it.kind == "vstyle"]
        if vs:
            jobs = []
            for i in vs:
                instruction = read_wav(items[i].audio) if self.vstyle_judge.send_instruction_audio else (None, 0)
                jobs.append({"ability": items[i].category, "instruction": items[i].question,
                             "reply_audio": requests[i].reply_audio, "sample_rate": requests[i].sample_rate,
                             "instruction_audio": instruction[0], "instruction_rate": instruction[1]})  # fmt: skip
            tally.add_vstyle([items[i] for i in vs], self.vstyle_judge.scores(jobs))

    def _correctness(
        self, items: Sequence[BenchmarkItem], all_replies: Sequence[Reply], requests: Sequence[JudgeRequest]
    ) -> list[float | None]:
        """Per item: the mean rule correctness over its iq_samples replies, or the iq_judge's verdict on its first
        reply (`requests`) when it has no references."""
        k = self.iq_samples
        out: list[float | None] = []
        for i, it in enumerate(items):
            checks = [correctness(it, r.text) for r in all_replies[i * k : (i + 1) * k]]
            out.append(None if checks[0] is None else sum(checks) / k)
        open_ended = [i for i, it in enumerate(items) if not it.references and it.kind == "generic"]
        if self.iq_judge is not None and open_ended:
            judged = self.iq_judge.score([requests[i] for i in open_ended])
            for i, s in zip(open_ended, judged):
                out[i] = (s.score - 1.0) / 4.0 if s.reliable else None
        return out

    def _wer_pairs(
        self, items: Sequence[BenchmarkItem], replies: Sequence[Reply], requests: Sequence[JudgeRequest], pl_module
    ) -> list[tuple[str, str] | None]:
        """(reference, hypothesis) per item, or None where this WER is undefined for it."""
        if self.wer == "reference":
            return [(it.references[0], r.text) if it.references and it.answer_type != "choice" else None
                    for it, r in zip(items, replies)]  # fmt: skip
        if self.wer == "off":
            return [None] * len(items)
        if self.asr is None or pl_module.codec is None:
            if not self._warned:
                missing = "an ASR (asr)" if self.asr is None else "a codec (model.codec) to decode the reply speech"
                warnings.warn(f"BenchmarkCallback: speech-text WER needs {missing}; eval/wer is not logged", stacklevel=2)
                self._warned = True
            return [None] * len(items)
        out: list[tuple[str, str] | None] = []
        for reply, req in zip(replies, requests):
            if not reply.text.strip():
                out.append(None)  # nothing said in text: speech-text consistency is undefined
            elif req.reply_audio is None or len(req.reply_audio) == 0:
                out.append((reply.text, ""))  # text without speech: every word is missing from the audio
            else:
                out.append((reply.text, self.asr.transcribe(req.reply_audio, req.sample_rate)))
        return out
