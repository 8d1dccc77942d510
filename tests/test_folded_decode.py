"""The folded decode step (scripts/folded_decode.py: norm scales and rotate_half folded into the weights), which
speed_bound.py times, computes transformers' Qwen2 logits: its timing stands for the same math."""

import importlib.util
import sys

import torch
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "policy"))
from test_qwen2_decoding import qwen2  # noqa: E402


def load_folded_decode():
    spec = importlib.util.spec_from_file_location("folded_decode", ROOT / "scripts" / "folded_decode.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_folded_step_gives_transformers_logits_token_by_token():
    bound = load_folded_decode()
    model = qwen2()  # float64, grouped-query attention, random biases and norm weights
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])
    rows, n, length = ids.shape[0], ids.shape[1], 8
    logits, mask = bound.folded_decoder(model, rows, length)
    mask.fill_(float("-inf"))
    ours = []
    with torch.no_grad():
        for t in range(n):
            mask[:, :, t] = 0.0  # slots 0..t are attended
            ours.append(logits(ids[:, t : t + 1], torch.full((rows, 1), t), t))
        full = model(input_ids=ids).logits
    gap = (torch.stack(ours, dim=1) - full).abs().max().item()
    assert gap < 1e-6, gap  # float32 rotary angles, as transformers computes them; the rest float64
