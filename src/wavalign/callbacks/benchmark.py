"""BenchmarkCallback: the paper's IQ / EQ / WER on benchmark suites, at validate and test time and every N steps.

Each suite is a class (`benchmarks.suite.Suite`: GenericSuite, VoiceBenchSuite, VStyleSuite, or your own) that reads
its items, scores its share of the sampled replies with the judges and rule tables it owns, and reports its own
figures; the callback does what every suite shares. For each item the policy samples one reply (the module's
`eval_sampling`) to the item's prompt: its spoken question encoded by the module's codec, or its text when it has
no audio; `iq_samples` > 1 samples more replies per item for the suites' IQ only (a sampled 150-item accuracy moves
by several points from sampling noise alone; extra samples cost generation time, not ASR or judge calls). Then:
- IQ (0-100): the mean of the per-item correctness the suites return (generic suites: rule-checked against the
  references, or their iq_judge for open-ended items; the official suites return none: they log in their units).
- EQ (1-5): the mean reliable score of `eq_judge` (default: the module's judge). It measures expressiveness only as
  far as that judge does (an audio HttpJudge with the acoustic prompt, StyleJudge); with a text rule judge it is
  that judge's score. Unreliable scores (fallbacks) are left out; their fraction is logged as eval/eq_unreliable.
- WER, by `wer`: 'speech_text' (the paper's consistency measure: ASR transcript of the reply's decoded speech vs the
  reply's text; needs an ASR, `asr` or `asr_sentences_file` for the offline TaskASR, and the module's codec; without
  them nothing is logged and a warning says why), 'reference'
  (the reply's text vs the item's first reference answer: a content WER for text-only setups), or 'off'.
Logged as eval/iq, eval/eq, eval/wer (pooled over the items of `pooled` suites: the generic ones) and
eval/<suite>/iq ... per suite, plus eval/<suite>/<category>/... with by_category; each IQ comes with iq_se, its
standard error over items; then each suite class's own figures (VoiceBench: eval/voicebench/<subset>, .../overall;
VStyle: eval/vstyle/<category>[/<sub>], .../overall). Sampling runs under a forked RNG seeded with `seed`: every
evaluation of a run sees the same noise, and the training RNG stream is left exactly as it would be without the
callback.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import lightning.pytorch as pl
import numpy as np
import torch

from wavalign.benchmarks.base import BenchmarkItem
from wavalign.benchmarks.metrics import EQ, IQ, SpeechTextWER
from wavalign.benchmarks.suite import Chunk, Suite, Tally
from wavalign.callbacks.eval_items import ItemLog
from wavalign.data.check import code_problems
from wavalign.judges.base import Judge, JudgeRequest
from wavalign.policy.base import Reply, speech_token_count
from wavalign.runtime.progress import ProgressLines
from wavalign.step.scoring import build_requests

WER_MODES = ("speech_text", "reference", "off")


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


def check_item_codes(items: dict[str, list[BenchmarkItem]], tokens: int | None) -> None:
    """Pre-tokenized question audio must hold codes the policy reads (else a rollout fails mid-evaluation)."""
    if tokens is None:
        return
    coded = [it for suite_items in items.values() for it in suite_items if it.audio_codes is not None]
    problems = [p for it in coded for p in code_problems(it.as_example(), tokens)]  # the training rows' own check
    if problems:
        raise ValueError(
            f"{len(problems)} benchmark item(s) hold codes the policy cannot read:\n" + "\n".join(problems[:20])
        )


class BenchmarkCallback(pl.Callback):
    """Samples replies to every suite's items and logs the IQ / EQ / WER they share and each suite's own figures.

    Args:
        suites: the benchmarks, each a `wavalign.benchmarks.suite.Suite` class (class_path / init_args), e.g.
            wavalign.benchmarks.generic.GenericSuite; their names must be unique.
        every_n_steps: > 0 also evaluates after every N-th optimiser step of `fit`, written straight to the loggers
            at step N - 1, 2N - 1, ... (where a validation run after N steps lands too).
        batch_size: items sampled per rollout.
        eq_judge: scores every first reply for EQ (default: the module's judge).
        wer: 'speech_text' (ASR transcript of the reply's speech vs its text), 'reference' (the reply's text vs the
            item's first reference answer) or 'off'.
        asr: the ASR for wer 'speech_text'.
        asr_sentences_file: instead of `asr`, the sentences of the offline TaskASR (one a line).
        by_category: also logs eval/<suite>/<category>/... for items with a category.
        seed: seeds the forked RNG evaluation samples under (and the suites' scoring randomness), so every
            evaluation of a run sees the same noise and training's RNG stream is untouched.
        at_start: also evaluates before the first update of a fresh `fit` (logged at step 0): the starting point of
            the curves, e.g. a warm start's IQ before RL.
        iq_samples: replies sampled per item for IQ (the suites average their correctness over them); EQ, WER and
            the official scorers read the first.
        save_items: also write each evaluation's per-item results to <log_dir>/eval_items/step<N>.jsonl
            (`callbacks.eval_items`), for paired comparisons of runs evaluated on the same items and seed.
    """

    def __init__(
        self,
        suites: list[Suite],
        every_n_steps: int = 0,
        batch_size: int = 8,
        eq_judge: Judge | None = None,
        wer: str = "speech_text",
        asr: Transcriber | None = None,
        asr_sentences_file: str | None = None,
        by_category: bool = False,
        seed: int = 0,
        at_start: bool = False,
        iq_samples: int = 1,
        save_items: bool = False,
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
                f"every_n_steps must be >= 0, batch_size and iq_samples >= 1, got {every_n_steps}, "
                f"{batch_size}, {iq_samples}"
            )
        self.suites, self.every_n_steps, self.batch_size = suites, every_n_steps, batch_size
        self.eq_judge, self.wer, self.asr = eq_judge, wer, asr
        self.asr_sentences_file, self.by_category, self.seed = asr_sentences_file, by_category, seed
        self.at_start, self.iq_samples, self.save_items = at_start, iq_samples, save_items
        self.item_log: ItemLog | None = None  # the latest evaluation's per-item results (save_items)
        self.by_name = {s.name: s for s in suites}
        self.items: dict[str, list[BenchmarkItem]] = {}
        self.last: dict[str, float] = {}  # the latest evaluation's values, for inspection and tests
        self._last_step = -1
        self._warned = False

    # ---- hooks ---------------------------------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Load every suite (and the ASR's sentences) up front, so a broken file or a missing judge fails the run
        before any training."""
        for s in self.suites:
            if s.name not in self.items:
                items = s.load()
                strays = sorted({it.benchmark for it in items} - {s.name})
                if strays:  # items find their suite (scoring, eval/<name>/...) by this name
                    raise ValueError(
                        f"benchmark suite {s.name!r} ({type(s).__name__}) loaded items named {strays}; "
                        "a suite's items must have benchmark=<its name>"
                    )
                self.items[s.name] = items
        check_item_codes(self.items, speech_token_count(getattr(pl_module, "policy", None)))
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

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        done = trainer.global_step  # optimiser steps taken so far
        if self.every_n_steps <= 0 or done == 0 or done % self.every_n_steps or done == self._last_step:
            return
        self._last_step = done
        values = self.evaluate(trainer, pl_module)
        for logger in trainer.loggers:  # at the last finished step's index, where Lightning puts validation metrics
            logger.log_metrics(values, step=done - 1)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.eq_judge is not None:
            self.eq_judge.close()
        for s in self.suites:
            s.close()

    # ---- evaluation ----------------------------------------------------------------------------------------------
    def scopes(self, item: BenchmarkItem) -> list[str]:
        out = ["eval"] if self.by_name[item.benchmark].pooled else []  # the others log in their own units instead
        out.append(f"eval/{item.benchmark}")
        if self.by_category and item.category:
            out.append(f"eval/{item.benchmark}/{item.category}")
        return out

    def _leaders(self) -> dict[type, Suite]:
        """The first suite of each suite class: it opens and reports the tally all suites of its class share."""
        leaders: dict[type, Suite] = {}
        for s in self.suites:
            leaders.setdefault(type(s), s)
        return leaders

    def _new_tallies(self, items: Sequence[BenchmarkItem]) -> dict[type, Tally]:
        """One tally per suite class over the items of all its suites (every process registers the same counts, so
        their vectors line up)."""
        return {
            cls: first.new_tally([it for it in items if type(self.by_name[it.benchmark]) is cls], self.seed)
            for cls, first in self._leaders().items()
        }

    @torch.no_grad()
    def evaluate(self, trainer: pl.Trainer | None, pl_module: pl.LightningModule) -> dict[str, float]:
        """Sample, score and reduce every suite; returns the finite values by logged name. Each process scores its
        share of the items (rank::world_size); torchmetrics and the suites' tallies sum the counts across processes."""
        if not self.items:
            self.setup(trainer, pl_module, "validate")
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        all_items = [it for s in self.suites for it in self.items[s.name]]
        scores = {k: self._new_scores(pl_module.device) for it in all_items for k in self.scopes(it)}
        tallies = self._new_tallies(all_items)
        self.item_log = ItemLog() if self.save_items else None
        devices = [pl_module.device.index or 0] if pl_module.device.type == "cuda" else []
        mine = all_items[rank::world_size]
        quiet = trainer is not None and not trainer.is_global_zero  # one process reports progress
        progress = ProgressLines("eval: scored items", len(mine), say=(lambda line: None) if quiet else None)
        # Every process runs as many rollout rounds as the one with the largest share: under sharded weights a
        # rollout is a collective, so a process that stopped early would leave the others waiting for ever.
        rounds = math.ceil(math.ceil(len(all_items) / world_size) / self.batch_size)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            for start in range(0, rounds * self.batch_size, self.batch_size):
                chunk = mine[start : start + self.batch_size]
                if not chunk:  # this process's share is used up: a rollout whose replies are dropped
                    pl_module.policy.rollout(pl_module.prompts([all_items[0].as_example()]), 1, pl_module.eval_sampling)
                    continue
                self._score_chunk(pl_module, chunk, scores, tallies)
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
        vectors = [t.vector() for t in tallies.values()]
        counts = [pooled.eq_unreliable, pooled.eq_total] + [x for v in vectors for x in v]
        totals = torch.tensor(counts, dtype=torch.float64)
        totals = pl_module.all_gather(totals).reshape(-1, len(counts)).sum(0) if world_size > 1 else totals
        if totals[1] > 0:
            values["eval/eq_unreliable"] = float(totals[0] / totals[1])
        offset, leaders = 2, self._leaders()
        for (cls, tally), vector in zip(tallies.items(), vectors):
            tally.load(totals[offset : offset + len(vector)].tolist())
            offset += len(vector)
            values.update(leaders[cls].report(tally))
        self.last = values
        if self.item_log is not None and trainer is not None and trainer.log_dir is not None:
            self.item_log.write(trainer.log_dir, trainer.global_step, rank, world_size)
        return values

    @staticmethod
    def _new_scores(device: torch.device) -> _Scores:
        return _Scores(IQ().to(device), EQ().to(device), SpeechTextWER().to(device))

    def _score_chunk(
        self,
        pl_module: pl.LightningModule,
        items: Sequence[BenchmarkItem],
        scores: dict[str, _Scores],
        tallies: dict[type, Tally],
    ) -> None:
        examples, k = [it.as_example() for it in items], self.iq_samples
        rollouts = pl_module.policy.rollout(pl_module.prompts(examples), k, pl_module.eval_sampling)
        all_replies = pl_module.policy.decode(rollouts)  # item i owns replies i*k .. i*k+k-1
        samples = [all_replies[i * k : (i + 1) * k] for i in range(len(items))]
        replies = [s[0] for s in samples]
        requests = build_requests(examples, replies, 1, pl_module.codec)
        eq_scores = (self.eq_judge or pl_module.judge).score(requests)
        correct = self._suite_scores(items, samples, requests, tallies)
        wer_pairs = self._wer_pairs(items, replies, requests, pl_module)
        for i, item in enumerate(items):
            for scope in self.scopes(item):
                s = scores[scope]
                if correct[i] is not None:
                    s.iq.update([correct[i]])
                s.eq_total += 1
                if eq_scores[i].reliable:
                    s.eq.update([eq_scores[i].score])
                else:
                    s.eq_unreliable += 1
                if wer_pairs[i] is not None:
                    s.wer.update([wer_pairs[i][0]], [wer_pairs[i][1]])
            if self.item_log is not None:
                eq = eq_scores[i].score if eq_scores[i].reliable else None
                heard = wer_pairs[i][1] if wer_pairs[i] is not None and self.wer == "speech_text" else None
                self.item_log.add(item, correct[i], eq, replies[i].text, heard)

    def _suite_scores(
        self,
        items: Sequence[BenchmarkItem],
        samples: Sequence[Sequence[Reply]],
        requests: Sequence[JudgeRequest],
        tallies: dict[type, Tally],
    ) -> list[float | None]:
        """Hands each suite its items of the chunk (in order, so scoring randomness is drawn in item order) and
        collects their per-item IQ correctness."""
        out: list[float | None] = [None] * len(items)
        for suite in self.suites:
            idx = [i for i, it in enumerate(items) if it.benchmark == suite.name]
            if not idx:
                continue
            chunk = Chunk([items[i] for i in idx], [samples[i] for i in idx], [requests[i] for i in idx])
            for i, c in zip(idx, suite.score(chunk, tallies[type(suite)])):
                out[i] = c
        return out

    def _wer_pairs(
        self,
        items: Sequence[BenchmarkItem],
        replies: Sequence[Reply],
        requests: Sequence[JudgeRequest],
        pl_module: pl.LightningModule,
    ) -> list[tuple[str, str] | None]:
        """(reference, hypothesis) per item, or None where this WER is undefined for it."""
        if self.wer == "reference":
            return [
                (it.references[0], r.text) if it.references and it.answer_type != "choice" else None
                for it, r in zip(items, replies)
            ]
        if self.wer == "off":
            return [None] * len(items)
        if self.asr is None or pl_module.codec is None:
            if not self._warned:
                missing = "an ASR (asr)" if self.asr is None else "a codec (model.codec) to decode the reply speech"
                warnings.warn(
                    f"BenchmarkCallback: speech-text WER needs {missing}; eval/wer is not logged", stacklevel=2
                )
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
