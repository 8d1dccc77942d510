"""docs/distributed.md says exactly what is equal across process counts, and nothing claims more: λ equals a
one-process run's only when rewards depend on the prompts alone, because each rank samples from its own stream
(checked here on the real stream seeding; the 2-process runs of tests/test_distributed.py check the rest)."""

from __future__ import annotations

import re

import torch
from conftest import ROOT

from wavalign.runtime.distributed import rank_seed

SECTION = "## What is equal across process counts"


def test_the_docs_state_what_is_equal_and_what_is_not():
    doc = (ROOT / "docs" / "distributed.md").read_text(encoding="utf-8")
    section = doc.split(SECTION, 1)[1].split("\n## ", 1)[0]
    flat = " ".join(section.split())
    assert "**Equal:** the prompts of every global batch, in the same order" in flat
    assert "**Not equal:** the rollouts." in flat
    assert "λ equals the one-process run's only when the rewards depend on the prompts alone" in flat


def test_nothing_claims_lambda_equals_a_one_process_run_unconditionally():
    claim = re.compile(r"(λ|lambda)[^.]{0,40}equals? (to )?a one-process run", re.IGNORECASE)
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "src").rglob("*.py"))]
    found = [str(p) for p in files if claim.search(" ".join(p.read_text(encoding="utf-8").split()))]
    assert found == []


def test_ranks_sample_from_different_streams():
    """Rank 0 keeps the seeded stream and rank 1 is reseeded from (seed, rank): their first draws differ, so their
    rollouts (and reply-dependent rewards) differ from a one-process run's."""
    torch.manual_seed(0)
    rank0 = torch.rand(4)
    torch.manual_seed(rank_seed(0, 1))
    assert not torch.equal(torch.rand(4), rank0)
