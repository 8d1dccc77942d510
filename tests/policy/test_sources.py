"""policy/sources.py: the from_pretrained dtype keyword of the installed transformers, and VITA-Audio's pinned one."""

from __future__ import annotations

import pytest
import torch
from vita_fixtures import quirky, stock  # noqa: F401 (fixtures)

from wavalign.policy.sources import PretrainedCausalLM, dtype_keyword


def test_dtype_keyword_follows_the_transformers_version():
    assert dtype_keyword("4.48.3") == "torch_dtype"  # the vita-audio extra's pin
    assert dtype_keyword("4.55.4") == "torch_dtype"
    assert dtype_keyword("4.56.0") == "dtype"
    assert dtype_keyword("5.24.0") == "dtype"


def test_a_local_checkpoint_loads_in_the_asked_dtype(stock):
    model, _ = PretrainedCausalLM(str(stock), str(stock / "tokenizer"), dtype="bfloat16").build()
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(FileNotFoundError, match="does not exist"):
        PretrainedCausalLM(str(stock / "missing")).build()


def test_remote_code_that_does_not_import_names_the_version_and_the_extra(quirky, tmp_path):
    """VITA-Audio's model files import transformers.modeling_attn_mask_utils, which transformers 5 removed."""
    import shutil

    folder = tmp_path / "old-remote-code"
    shutil.copytree(quirky, folder)
    modeling = folder / "modeling_quirky.py"
    modeling.write_text("from transformers.a_module_that_is_gone import Something\n" + modeling.read_text())
    with pytest.raises(ImportError, match=r"does not import under transformers .*pip install -e '\.\[vita-audio\]'"):
        PretrainedCausalLM(str(folder), trust_remote_code=True).build()
