"""What VITA-Audio checkpoints need checked before training: MCTP heads, and which ones take discrete user speech.

VITA-Audio (VITA-MLLM/VITA-Audio) ships checkpoints with MCTP layers (`num_nextn_predict_layers` in their config)
whose generation schedule is `mtp_inference_mode`, and two front ends for the user's speech: Boost and Balance
read GLM-4-Voice codes (discrete, the same <|audio_N|> tokens as the reply), while the Plus checkpoints
(model_type `qwen2_mtp_sensevoice`) read continuous SenseVoice features through their own audio encoder at
<|context_of_audio|> placeholders. This policy feeds discrete codes only, so it refuses the Plus checkpoints
rather than feed them inputs they were never trained on.
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

MAIN_HEAD_ONLY = (8192, 0)  # VITA-Audio's "Vanilla" schedule: main-head tokens only
CONTINUOUS_USER_AUDIO = ("sensevoice",)  # model_type fragments of checkpoints whose user speech is continuous


def mctp_layers(model: nn.Module) -> int:
    """How many MCTP (multiple cross-modal token prediction) layers the model's config declares; 0 for most."""
    return int(getattr(getattr(model, "config", None), "num_nextn_predict_layers", 0) or 0)


def check_mtp_inference_mode(mode: Sequence[int]) -> list[int]:
    """VITA-Audio's schedule: pairs (main-head tokens, MCTP tokens), the last pair repeating."""
    mode = list(mode)
    if len(mode) < 2 or len(mode) % 2 or any(not isinstance(n, int) or n < 0 for n in mode) or mode[0] < 1:
        raise ValueError(
            f"mtp_inference_mode must be pairs of non-negative ints (main-head tokens, MCTP tokens), starting with "
            f"at least one main-head token, e.g. [8192, 0]; got {mode}"
        )
    return mode


def check_discrete_user_audio(model: nn.Module) -> None:
    """Raise for checkpoints whose user speech is continuous features (VITA-Audio-Plus-*), not discrete codes."""
    model_type = str(getattr(getattr(model, "config", None), "model_type", "") or "")
    if any(fragment in model_type.lower() for fragment in CONTINUOUS_USER_AUDIO):
        raise ValueError(
            f"this checkpoint (model_type {model_type!r}) reads the user's speech as continuous SenseVoice features "
            "at <|context_of_audio|> placeholders (VITA-Audio-Plus-Vanilla / Plus-Boost); this policy feeds discrete "
            "GLM-4-Voice codes, which only VITA-Audio-Boost and VITA-Audio-Balance take: point the config at one of those"
        )
