"""The ablation report's paired section and machine-readable record, on hand-made results."""

import json
import math

import pytest

from wavalign.ablate.plan import AblationSettings
from wavalign.ablate.report import contrast_lines, contrasts, paired_lines, paired_summary, summary_json

T975_DF2 = 0.95 * math.sqrt(2 / (1 - 0.95**2))  # closed form of the t quantile with 2 df (test_paired.py)


def run(row: str, seed: int, iq: float, eq: float) -> dict:
    metrics = {"eval/world_val/iq": iq, "eval/eq": eq, "gate/lambda:mean": 0.3, "gate/lambda:sd": 0.1}
    return {"row": row, "seed": seed, "steps": 10, "wall_s": 5.0, "command": "c", "metrics": metrics}


RESULTS = [
    *(run("sft_only", s, iq, 3.0) for s, iq in enumerate([20.0, 22.0, 21.0])),
    *(run("wavalign", s, iq, 3.5) for s, iq in enumerate([23.0, 24.0, 25.0])),  # differences 3, 2, 4
    *(run("fixed", s, iq, 2.0) for s, iq in enumerate([21.0, 23.0, 20.0])),  # differences 1, 1, -1
]


def test_paired_summary_by_hand():
    s = paired_summary(RESULTS)
    w = s["rows"]["wavalign"]["eval/world_val/iq"]
    assert w["diffs"] == [3.0, 2.0, 4.0] and w["mean"] == 3.0
    assert w["half"] == pytest.approx(T975_DF2 / math.sqrt(3))
    assert s["rows"]["fixed"]["eval/eq"]["mean"] == -1.0 and "sft_only" not in s["rows"]
    # pooled: (3,2,4) ss 2; (1,1,-1) mean 1/3, ss 4/9+4/9+16/9 = 8/3; sd = sqrt((2 + 8/3) / 4)
    assert s["sd_df"] == 4 and s["iq_val_sd_of_differences"] == pytest.approx(math.sqrt((2 + 8 / 3) / 4))
    assert s["seeds"] == 3 and s["min_detectable_iq"] > 0
    text = "\n".join(paired_lines(s))
    assert "| wavalign | +3.0 [+0.5, +5.5] (p 0.04) |" in text and "**" in text


def test_the_record_is_plain_json_with_per_seed_values():
    record = summary_json(AblationSettings(), {"metrics": {"eval/world_val/iq": 18.0}}, RESULTS[:4])
    text = json.dumps(record)  # one seed of wavalign: no interval, written as null rather than NaN
    assert "NaN" not in text
    row = record["rows"]["wavalign"]
    assert row["per_seed"]["0"]["eval/world_val/iq"] == 23.0 and row["per_seed"]["0"]["gate/lambda:sd"] == 0.1
    assert row["paired_vs_sft_only"]["eval/world_val/iq"]["half"] is None
    assert record["warm_start"]["eval/world_val/iq"] == 18.0 and record["min_detectable_iq_val"] is None


def test_wavalign_minus_each_row_by_hand():
    table = contrasts(RESULTS)
    assert list(table) == ["sft_only", "fixed"]
    # wavalign - fixed: 23-21, 24-23, 25-20 = 2, 1, 5: mean 8/3, sd sqrt(((2-8/3)^2 + (1-8/3)^2 + (5-8/3)^2) / 2)
    c = table["fixed"]["eval/world_val/iq"]
    sd = math.sqrt(((2 - 8 / 3) ** 2 + (1 - 8 / 3) ** 2 + (5 - 8 / 3) ** 2) / 2)
    assert c["diffs"] == [2.0, 1.0, 5.0] and c["mean"] == pytest.approx(8 / 3)
    assert c["half"] == pytest.approx(T975_DF2 * sd / math.sqrt(3))
    assert "eval/world_heard/iq" not in table["fixed"]  # no heard figures in these results: no cell, a dash
    text = "\n".join(contrast_lines(table))
    lo, hi = 8 / 3 - c["half"], 8 / 3 + c["half"]
    assert f"| fixed | +2.7 [{lo:+.1f}, {hi:+.1f}] (p {c['p']:.2f}) | - |" in text
    assert contrasts([r for r in RESULTS if r["row"] != "wavalign"]) == {}
    record = summary_json(AblationSettings(), {"metrics": {}}, RESULTS)
    assert record["rows"]["wavalign"]["minus_each_row"]["fixed"]["eval/world_val/iq"]["diffs"] == [2.0, 1.0, 5.0]
