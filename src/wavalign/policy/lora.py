"""LoRA adapters through peft, from plain config values."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel


@dataclass
class LoraSettings:
    """LoRA adapters (peft) on the policy's transformer: only the adapters train, and the reference policy is the
    same weights with the adapters disabled (no frozen copy in memory).

    Args:
        r: Rank of each adapter's low-rank update, >= 1; higher trains more parameters and can fit more.
        alpha: LoRA scaling numerator: the update is scaled by alpha / r, so raise it with r to keep the same scale.
        dropout: Dropout probability on the adapters' input, in [0, 1); 0 turns it off.
        target_modules: Names (or name suffixes) of the linear layers that get adapters, e.g. the attention
            projections; add MLP projections ("gate_proj", "up_proj", "down_proj") for more capacity.
        modules_to_save: Modules trained in full and saved beside the adapters (e.g. an embedding or output head
            that must learn new speech tokens); None trains adapters only.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    modules_to_save: list[str] | None = None


def apply_lora(
    model: PreTrainedModel | torch.nn.Module, settings: LoraSettings, task_type: str | None = "CAUSAL_LM"
) -> PeftModel:
    """peft LoRA adapters on `model`; task_type None for a module that is not a transformers causal LM."""
    config = LoraConfig(
        task_type=task_type,
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        modules_to_save=settings.modules_to_save,
    )
    return get_peft_model(model, config)
