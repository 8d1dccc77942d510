"""Where a policy's transformer and tokenizer come from: a local checkpoint, or a tiny random model built from config.

Both are YAML-reachable classes with one method, build(); nothing here downloads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch
import transformers
from packaging.version import Version
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def dtype_keyword(transformers_version: str) -> str:
    """from_pretrained's dtype keyword: `dtype` since transformers 4.56, `torch_dtype` before (VITA-Audio's remote
    code needs 4.48.3, where `dtype` reaches the model's __init__ and raises TypeError: measured)."""
    return "dtype" if Version(transformers_version).release >= (4, 56) else "torch_dtype"


class ModelSource(ABC):
    """Where a policy's transformer and tokenizer come from (the policy's `source`); build() makes both."""

    @abstractmethod
    def build(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]: ...


class PretrainedCausalLM(ModelSource):
    """A transformers causal LM from a local folder (from_pretrained); remote code only when asked for.

    Args:
        path: Local folder of the checkpoint (config.json, weights, tokenizer files); nothing is downloaded.
        tokenizer_path: Folder of the tokenizer when it is not in `path`; None uses `path`.
        dtype: Weight dtype: "float32", "bfloat16", "float16" or "auto" (the checkpoint's own); bfloat16 halves
            memory on GPUs that support it.
        trust_remote_code: Run the checkpoint's own modelling and tokenizer code (VITA-Audio needs it); only for
            checkpoints you trust.
        device_map: transformers' device_map (e.g. "auto" to spread a large model over devices); None leaves
            placement to Lightning, the usual choice.
        attn_implementation: Attention kernel, e.g. "sdpa", "eager" or "flash_attention_2" (needs flash-attn);
            None uses transformers' default.
    """

    def __init__(
        self,
        path: str,
        tokenizer_path: str | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        device_map: str | None = None,
        attn_implementation: str | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        self.path, self.tokenizer_path = path, tokenizer_path or path
        self.dtype, self.trust_remote_code = dtype, trust_remote_code
        self.device_map, self.attn_implementation = device_map, attn_implementation

    def build(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        for p in {self.path, self.tokenizer_path}:
            if not Path(p).exists():
                raise FileNotFoundError(
                    f"model path {p!r} does not exist: download the checkpoint and set its folder in the config"
                )
        kwargs = {
            dtype_keyword(transformers.__version__): DTYPES[self.dtype],
            "trust_remote_code": self.trust_remote_code,
        }
        if self.device_map:
            kwargs["device_map"] = self.device_map
        if self.attn_implementation:
            kwargs["attn_implementation"] = self.attn_implementation
        try:
            model = AutoModelForCausalLM.from_pretrained(self.path, **kwargs)
        except ImportError as error:
            if not self.trust_remote_code:
                raise
            raise ImportError(
                f"the remote code of {self.path} does not import under transformers {transformers.__version__}: "
                f"{error}. VITA-Audio's needs 4.48.3: pip install -e '.[vita-audio]'"
            ) from error
        tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path, trust_remote_code=self.trust_remote_code)
        return model, tokenizer
