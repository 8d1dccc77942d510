"""InterleavedPolicy built exactly as configs/vita_audio.yaml builds it, on a local tiny checkpoint (float32, CPU)."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import ROOT

from wavalign.policy.interleaved import InterleavedPolicy
from wavalign.policy.prompting import ChatTemplate
from wavalign.policy.sources import PretrainedCausalLM


def vita_config_policy_args() -> dict:
    args = dict(yaml.safe_load((ROOT / "configs" / "vita_audio.yaml").read_text())["model"]["policy"]["init_args"])
    args.pop("source")
    args["chat"] = ChatTemplate(**args["chat"])
    return args


def vita_policy(checkpoint: Path, tokenizer: Path | None = None, **overrides) -> InterleavedPolicy:
    """tokenizer: its own folder, for stock Qwen2 checkpoints (AutoTokenizer would swap in Qwen2's byte-level one)."""
    source = PretrainedCausalLM(
        str(checkpoint), str(tokenizer) if tokenizer else None, dtype="float32", trust_remote_code=True
    )
    return InterleavedPolicy(source, **{**vita_config_policy_args(), **overrides})
