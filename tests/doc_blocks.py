"""The named code blocks of docs/extending.md (a fenced block whose first line is `# <file name>`), so the tests run
the worked examples exactly as the doc shows them, with no second copy to drift."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


def named_blocks(doc: Path = DOC) -> dict[str, str]:
    """{file name: text} of every python or yaml block of a doc (docs/extending.md unless given) that starts with a
    `# <file name>` line."""
    out = {}
    for body in re.findall(r"```(?:python|yaml)\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S):
        first = body.splitlines()[0]
        if re.fullmatch(r"# [\w.]+\.(py|yaml)", first):
            out[first[2:]] = body
    return out


def bash_blocks(doc: Path) -> list[str]:
    """Every bash block of a doc, in order: the commands a reader runs."""
    return re.findall(r"```bash\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.S)


def doc_module(name: str) -> types.ModuleType:
    """The doc's `<name>.py` block as an importable module (registered in sys.modules, so class paths resolve)."""
    if name in sys.modules and getattr(sys.modules[name], "__file__", "").startswith(str(DOC)):
        return sys.modules[name]
    module = types.ModuleType(name)
    module.__file__ = f"{DOC}#{name}.py"
    exec(compile(named_blocks()[f"{name}.py"], module.__file__, "exec"), module.__dict__)
    sys.modules[name] = module
    return module
