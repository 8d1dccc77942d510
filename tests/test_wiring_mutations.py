"""scripts/wiring_mutations.py stays in step with the code: every mutation's text is found exactly once in its file,
so a refactor that moves a line shows up here (in seconds) rather than as a 'stale' row of the 35-minute run."""

import importlib.util
import sys

from conftest import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("wiring_mutations", ROOT / "scripts" / "wiring_mutations.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_every_mutation_applies_to_exactly_one_place():
    script = load_script()
    stale = [
        (m.name, m.path, (ROOT / m.path).read_text().count(m.old))
        for m in script.MUTATIONS
        if (ROOT / m.path).read_text().count(m.old) != 1
    ]
    assert not stale, f"re-derive these mutations (name, file, matches): {stale}"
    assert len(script.MUTATIONS) >= 40
    assert all((ROOT / t.split("::")[0]).exists() for t in script.DEFAULT_TESTS)
