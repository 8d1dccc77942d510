"""`wavalign predict`: what the model says to each prompt, and how it sounds, as plain records.

predict_replies samples G replies per prompt with the module's evaluation sampling settings (what the benchmarks
measure, not the exploratory rollout settings), scores them with the module's judge and decodes their speech with
its codec; the writer (wavalign.callbacks.predict_writer) turns the records into replies.jsonl, WAVs and a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wavalign.data.schema import DialogueExample


@dataclass
class SpokenReply:
    text: str
    speech_codes: list[int]
    score: float
    reliable: bool
    parts: dict[str, float] = field(default_factory=dict)
    waveform: np.ndarray | None = field(default=None, repr=False)  # decoded speech (None without a codec or codes)
    sample_rate: int | None = None


@dataclass
class PromptReplies:
    """One prompt of the predict file (id = its position in the file) and its G replies."""

    id: int
    source: str  # "file:line"
    question: str
    reference: str | None
    demonstration: str | None
    style: str | None
    question_audio: str | None  # the spoken question, where the row names a file
    replies: list[SpokenReply]

    def record(self) -> dict[str, Any]:
        """The replies.jsonl line, without waveforms (the writer adds each reply's WAV path)."""
        return {
            "id": self.id,
            "source": self.source,
            "question": self.question,
            "reference": self.reference,
            "demonstration": self.demonstration,
            "style": self.style,
            "question_audio": self.question_audio,
            "replies": [
                {
                    "text": r.text,
                    "speech_codes": r.speech_codes,
                    "score": r.score,
                    "reliable": r.reliable,
                    "parts": r.parts,
                }
                for r in self.replies
            ],
        }


def _prompt_fields(index: int, ex: DialogueExample) -> dict[str, Any]:
    return {
        "id": int(index),
        "source": ex.source,
        "question": ex.question_text or " ".join(m["content"] for m in ex.messages if m["role"] == "user"),
        "reference": ex.reference_answer,
        "demonstration": ex.target_text or None,
        "style": ex.style,
        "question_audio": str(ex.audios[0]) if ex.audios else None,
    }


def predict_replies(module: Any, batch: dict, group_size: int) -> list[PromptReplies]:
    """G replies per prompt of the batch (a WavAlignDataModule batch: ids and examples), judged and decoded."""
    if group_size < 1:
        raise ValueError(f"listen.replies_per_prompt must be >= 1, got {group_size}")
    examples: list[DialogueExample] = batch["examples"]
    prompts = module.prompts(examples)
    _, replies, scored = module.sample_and_score(examples, prompts, group_size, module.eval_sampling)
    out = []
    for i, (index, ex) in enumerate(zip(batch["ids"], examples)):
        spoken = []
        for j in range(i * group_size, (i + 1) * group_size):
            reply, score, request = replies[j], scored.scores[j], scored.requests[j]
            wav = request.reply_audio  # decoded by the codec (once: a judge that heard it already did)
            spoken.append(
                SpokenReply(
                    text=reply.text,
                    speech_codes=[int(c) for c in reply.speech_codes],
                    score=float(score.score),
                    reliable=bool(score.reliable),
                    parts={k: float(v) for k, v in score.parts.items()},
                    waveform=None if wav is None else np.asarray(wav, dtype=np.float32),
                    sample_rate=None if wav is None else int(request.sample_rate),
                )
            )
        out.append(PromptReplies(replies=spoken, **_prompt_fields(index, ex)))
    return out


def check_checkpoint_fits(module: nn.Module, checkpoint: str | Path) -> None:
    """Fail before predicting when `checkpoint` was not trained with this config's model: same weight names and
    shapes, or a message naming the file and the first differences (Lightning's own error is a wall of keys)."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt_path {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"--ckpt_path {path} is not a readable PyTorch checkpoint: {e}") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ValueError(f"--ckpt_path {path} is not a Lightning checkpoint (no 'state_dict')")
    theirs = {k: tuple(v.shape) for k, v in state["state_dict"].items() if hasattr(v, "shape")}
    ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing, unexpected = sorted(ours.keys() - theirs.keys()), sorted(theirs.keys() - ours.keys())
    reshaped = [
        f"{k}: checkpoint {theirs[k]} vs model {ours[k]}"
        for k in sorted(ours.keys() & theirs.keys())
        if ours[k] != theirs[k]
    ]
    if missing or unexpected or reshaped:
        raise ValueError(
            f"--ckpt_path {path} does not match this config's model: {len(missing)} weights missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), {len(reshaped)} of another shape (e.g. {reshaped[:2]}); "
            "was it trained with this config's model.policy?"
        )
