"""RolloutAudioLogger: hear what the policy says, and read it, in TensorBoard as training goes.

Every N steps the first `max_samples` rollouts of the step (samples of the batch's first prompt, so their different
advantages can be compared by ear) are decoded with the module's codec and written with the TensorBoard logger's
add_audio under audio/sample_<i>, with the question, the reply text and its advantage as add_text under
audio/sample_<i>_text. Without a codec only the text is written (there is no waveform to hear).
"""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from wavalign.callbacks.rollout_steps import rollouts_due


class RolloutAudioLogger(pl.Callback):
    """Writes a few of a step's rollouts (audio, question, reply text, advantage) to TensorBoard every N steps.

    Args:
        every_n_steps: Log every N optimiser steps (steps 0, N, 2N, ...), >= 1; each logging decodes max_samples
            replies, so lower it for more frequent listening at more cost.
        max_samples: How many of the step's first rollouts (samples of the batch's first prompt) to log, >= 1;
            raise it up to model.group_size to hear a whole group.
    """

    def __init__(self, every_n_steps: int = 50, max_samples: int = 2) -> None:
        if every_n_steps < 1 or max_samples < 1:
            raise ValueError(
                f"RolloutAudioLogger needs every_n_steps >= 1 and max_samples >= 1, got {every_n_steps}, {max_samples}"
            )
        self.every_n_steps, self.max_samples = every_n_steps, max_samples
        self._last_step = -1
        self._warned = False

    def reads_rollouts_at(self, step: int) -> bool:
        """Whether the rollouts of the step that optimiser step `step` trains on are read (rollout_steps)."""
        return step % self.every_n_steps == 0

    def _writer(self, trainer: pl.Trainer):
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        if not self._warned:
            warnings.warn(
                "RolloutAudioLogger: no TensorBoardLogger among trainer.loggers; nothing is logged", stacklevel=2
            )
            self._warned = True
        return None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        due = rollouts_due(trainer, pl_module, self.every_n_steps, self._last_step)
        if due is None:
            return
        step, entry = due
        self._last_step = step
        writer = self._writer(trainer)
        if writer is None:
            return
        codec = getattr(pl_module, "codec", None)
        examples = batch.get("examples", []) if isinstance(batch, dict) else []
        group_size = getattr(pl_module, "group_size", 1)
        for i, reply in enumerate(entry.replies[: self.max_samples]):
            tag = f"audio/sample_{i}"
            if codec is not None and reply.speech_codes:
                wav = codec.decode(np.asarray(reply.speech_codes, dtype=np.int64))
                audio = torch.from_numpy(np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)).unsqueeze(0)
                writer.add_audio(tag, audio, global_step=step, sample_rate=int(codec.sample_rate))
            question = examples[i // group_size].question_text if i // group_size < len(examples) else ""
            text = (
                f"**question:** {question}  \n**reply:** {reply.text or '(no text)'}  \n"
                f"**advantage:** {float(entry.advantages.rollouts[i]):+.3f}  \n**speech codes:** {len(reply.speech_codes)}"
            )
            writer.add_text(f"{tag}_text", text, global_step=step)
        writer.flush()
