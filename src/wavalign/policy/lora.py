"""LoRA adapters through peft, from plain config values."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    modules_to_save: list[str] | None = None


def apply_lora(model: PreTrainedModel | torch.nn.Module, settings: LoraSettings, task_type: str | None = "CAUSAL_LM") -> PeftModel:
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
