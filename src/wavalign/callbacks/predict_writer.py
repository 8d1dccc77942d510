"""ReplyWriter: what `wavalign predict` leaves on disk, under the config's `listen:` key.

output_dir/replies.jsonl (one line per prompt: id, question, reference, each reply's text, speech codes, judge score
and parts, WAV path), output_dir/audio/<id>_<k>.wav when the config has a codec, meta.json (checkpoint, sampling,
mean score) and index.html, the listening page; with compare_with, the page puts those earlier predict folders
(e.g. the warm start's) beside this one. The CLI adds it to every run; it acts only in predict.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

from wavalign.audio.io import write_wav
from wavalign.predict.listening_page import write_page
from wavalign.predict.replies import PromptReplies


class ReplyWriter(pl.Callback):
    """Writes what `wavalign predict` produces: replies.jsonl, one WAV per reply, meta.json and the listening page.

    Args:
        output_dir: The predict output folder; its old WAVs are removed at the start of a run.
        replies_per_prompt: Replies sampled per prompt (G), with model.eval_sampling, >= 1; more than one lets you
            compare samples of the same prompt by ear.
        compare_with: Earlier predict folders (of the same predict_file, e.g. the warm start's) shown beside this
            one on the listening page; None shows this run only.
    """

    def __init__(
        self, output_dir: str = "runs/predict", replies_per_prompt: int = 1, compare_with: list[str] | None = None
    ) -> None:
        if replies_per_prompt < 1:
            raise ValueError(f"listen.replies_per_prompt must be >= 1, got {replies_per_prompt}")
        self.output_dir = Path(output_dir)
        self.replies_per_prompt = replies_per_prompt
        self.compare_with = [Path(d) for d in compare_with or []]
        self._file = None
        self._scores: list[float] = []
        self.summary = ""

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size > 1:
            raise ValueError("wavalign predict writes one folder from one process: run it with trainer.devices=1")
        for d in self.compare_with:
            if not (d / "replies.jsonl").is_file():
                raise FileNotFoundError(f"listen.compare_with: {d} holds no replies.jsonl (run predict there first)")
        pl_module.predict_group_size = self.replies_per_prompt
        audio = self.output_dir / "audio"
        if audio.is_dir():  # a rerun must not leave WAVs of an earlier, longer prompt file behind
            for old in audio.glob("*.wav"):
                old.unlink()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._scores = []
        self._file = (self.output_dir / "replies.jsonl").open("w", encoding="utf-8")

    def on_predict_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for prompt in outputs:
            self._file.write(json.dumps(self._write_prompt(prompt), ensure_ascii=False) + "\n")
        self._file.flush()

    def _write_prompt(self, prompt: PromptReplies) -> dict[str, Any]:
        record = prompt.record()
        for k, (reply, row) in enumerate(zip(prompt.replies, record["replies"])):
            row["audio"] = None
            if reply.waveform is not None:
                rel = f"audio/{prompt.id:05d}_{k}.wav"
                write_wav(self.output_dir / rel, reply.waveform, reply.sample_rate)
                row["audio"], row["duration_s"] = rel, round(len(reply.waveform) / reply.sample_rate, 4)
                prompt.replies[k] = dataclasses.replace(reply, waveform=None)  # on disk now: not kept in memory
            self._scores.append(reply.score)
        return record

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._file.close()
        checkpoint = (
            trainer.ckpt_path or getattr(pl_module, "hparams", {}).get("init_checkpoint") or "(untrained weights)"
        )
        meta = {
            "checkpoint": str(checkpoint),
            "replies_per_prompt": self.replies_per_prompt,
            "sampling": dataclasses.asdict(pl_module.eval_sampling),
            "mean_score": float(np.mean(self._scores)) if self._scores else None,
        }
        (self.output_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        page = write_page(self.output_dir, [self.output_dir, *self.compare_with])
        pl_module.judge.close()
        n = len(self._scores) // self.replies_per_prompt
        self.summary = (
            f"predict: {n} prompts x {self.replies_per_prompt} replies (mean score {meta['mean_score']:.3f}) "
            f"in {self.output_dir}; listen: {page}"
        )  # the CLI prints it last
