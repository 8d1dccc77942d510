"""Reads VoiceBench's rule tables and judge prompts from the user's own checkout of its repository, at run time.

The tables (bbh's phrase chains, the multiple-choice templates, the refusal strings, the GPT judge's prompts, IFEval's
constrained-response options) are upstream's text, so they are not shipped here:
`git clone https://github.com/MatthewCYM/VoiceBench` and point `voicebench_dir` (or the environment variable
WAVALIGN_VOICEBENCH_DIR) at the clone. Its evaluator files are parsed
with `ast`, never run, and the literals are taken by the names upstream gives them:
- src/evaluator/bbh.py, class BBHEvaluator: the if/elif chains of extract_answer_{hyperbaton,yn,lies,navigate,sports};
  each branch becomes [test, text, answer], test one of in ("..." in response), eq (response == "..."),
  re (re.search("...", response)), start / end (response.startswith / endswith("...")); the final else gives
  "otherwise": None (return None) or "random" (random.choice); "yes_no_first": the method consults extract_answer_yn.
- src/evaluator/mcq.py, MCQEvaluator.extract_answer: the list its `for template in [...]` loop walks, and the trailing
  if/elif chain of phrases that answer a letter ("specials").
- src/evaluator/harm.py, HarmEvaluator.__init__: the list assigned to self.refusal_string (adjacent literals joined
  as Python joins them, so upstream's missing-comma string is kept).
- api_judge.py: meta_prompt_open, meta_prompt_qa (with its .strip()), and the system message's content.
- src/evaluator/instruction_following_eval/instructions.py: _CONSTRAINED_RESPONSE_OPTIONS (IFEval's fixed answers).
Anything of another shape is refused with the file and line, so a changed upstream layout cannot silently change
scores.
"""

from __future__ import annotations

import ast
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

ENV_VAR = "WAVALIGN_VOICEBENCH_DIR"
BBH_METHODS = {
    "hyperbaton": "extract_answer_hyperbaton",
    "yes_no": "extract_answer_yn",
    "web_of_lies": "extract_answer_lies",
    "navigate": "extract_answer_navigate",
    "sports_understanding": "extract_answer_sports",
}
FILES = (
    "src/evaluator/bbh.py",
    "src/evaluator/mcq.py",
    "src/evaluator/harm.py",
    "api_judge.py",
    "src/evaluator/instruction_following_eval/instructions.py",
)
HOW = (
    "clone https://github.com/MatthewCYM/VoiceBench (git clone https://github.com/MatthewCYM/VoiceBench) and set "
    f"voicebench_dir to the clone, or export {ENV_VAR}=<the clone>"
)


class VoiceBenchSourceError(ValueError):
    """The checkout is missing, incomplete, or laid out differently from the one these readers know."""


def resolve_dir(voicebench_dir: str | os.PathLike[str] | None, needed_for: str) -> Path:
    """The checkout folder: `voicebench_dir`, else $WAVALIGN_VOICEBENCH_DIR; an error saying what to fetch otherwise."""
    given = voicebench_dir if voicebench_dir not in (None, "") else os.environ.get(ENV_VAR) or None
    if given is None:
        raise VoiceBenchSourceError(
            f"{needed_for} needs VoiceBench's own rule tables, which are not shipped with wavalign: {HOW}"
        )
    folder = Path(given).expanduser()
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise VoiceBenchSourceError(f"voicebench_dir {str(folder)!r} lacks {missing}; {HOW}")
    return folder.resolve()


def read_tables(
    voicebench_dir: str | os.PathLike[str] | None, needed_for: str = "VoiceBench scoring"
) -> dict[str, Any]:
    """{"bbh": {task: {"rules", "otherwise", "yes_no_first"}}, "mcq_templates", "mcq_specials", "refusal_strings",
    "judge": {"system", "open", "qa"}, "constrained_options"} from the checkout (parsed once per folder)."""
    return _read(resolve_dir(voicebench_dir, needed_for))


@lru_cache(maxsize=4)
def _read(folder: Path) -> dict[str, Any]:
    bbh = _parse(folder / FILES[0])
    mcq = _method(_parse(folder / FILES[1]), "MCQEvaluator", "extract_answer", folder / FILES[1])
    return {
        "bbh": {task: _bbh_chain(bbh, name, folder / FILES[0]) for task, name in BBH_METHODS.items()},
        "mcq_templates": _template_list(mcq, folder / FILES[1]),
        "mcq_specials": _specials(mcq, folder / FILES[1]),
        "refusal_strings": _refusals(_parse(folder / FILES[2]), folder / FILES[2]),
        "judge": _judge(_parse(folder / FILES[3]), folder / FILES[3]),
        "constrained_options": _constrained_options(_parse(folder / FILES[4]), folder / FILES[4]),
    }


# ---- helpers --------------------------------------------------------------------------------------------------------
def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as e:
        raise VoiceBenchSourceError(f"{path}: not parseable Python ({e})") from e


def _fail(path: Path, node: ast.AST | None, what: str) -> VoiceBenchSourceError:
    line = f":{node.lineno}" if node is not None and hasattr(node, "lineno") else ""
    return VoiceBenchSourceError(f"{path}{line}: {what} (the layout of VoiceBench commit 5338154 is expected)")


def _method(tree: ast.Module, cls: str, name: str, path: Path) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == name:
                    return item
    raise _fail(path, None, f"no method {cls}.{name}")


def _str(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_response(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "response"


def _condition(test: ast.AST) -> tuple[str, str] | None:
    """[test, text] for the condition shapes upstream's chains use, None for any other."""
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.In) and _str(left) is not None and _is_response(right):
            return "in", _str(left)  # type: ignore[return-value]
        if isinstance(op, ast.Eq) and _is_response(left) and _str(right) is not None:
            return "eq", _str(right)  # type: ignore[return-value]
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and len(test.args) in (1, 2):
        func, args = test.func, test.args
        if func.attr == "search" and isinstance(func.value, ast.Name) and func.value.id == "re" and len(args) == 2:
            if _str(args[0]) is not None and _is_response(args[1]):
                return "re", _str(args[0])  # type: ignore[return-value]
        if func.attr in ("startswith", "endswith") and _is_response(func.value) and len(args) == 1:
            if _str(args[0]) is not None:
                return ("start" if func.attr == "startswith" else "end"), _str(args[0])  # type: ignore[return-value]
    return None


def _returned(body: list[ast.stmt]) -> ast.AST | None:
    last = body[-1] if body else None
    return last.value if isinstance(last, ast.Return) else None


def _chain(first: ast.If, path: Path, answer_type: type) -> tuple[list[list[Any]], list[ast.stmt]]:
    """The branches of an if/elif chain as [test, text, answer], and the statements of its final else."""
    rules: list[list[Any]] = []
    node: ast.If | None = first
    rest: list[ast.stmt] = []
    while node is not None:
        cond, value = _condition(node.test), _returned(node.body)
        answer = value.value if isinstance(value, ast.Constant) else None
        if cond is None or len(node.body) != 1 or not isinstance(answer, answer_type) or isinstance(answer, bool):
            raise _fail(path, node, "a branch that is not `if <text test on response>: return <constant>`")
        rules.append([cond[0], cond[1], answer])
        if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
            node = node.orelse[0]
        else:
            node, rest = None, node.orelse
    return rules, rest


def _bbh_chain(tree: ast.Module, name: str, path: Path) -> dict[str, Any]:
    fn = _method(tree, "BBHEvaluator", name, path)
    chains = [s for s in fn.body if isinstance(s, ast.If) and _condition(s.test) is not None]
    if len(chains) != 1:
        raise _fail(path, fn, f"{name} should hold exactly one if/elif chain over the response")
    rules, rest = _chain(chains[0], path, int)
    final = _returned(rest)
    if isinstance(final, ast.Constant) and final.value is None:
        otherwise = None
    elif isinstance(final, ast.Call) and isinstance(final.func, ast.Attribute) and final.func.attr == "choice":
        otherwise = "random"
    else:
        raise _fail(path, chains[0], f"{name}'s final else should return None or random.choice([0, 1])")
    calls = {n.func.attr for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    return {"rules": rules, "otherwise": otherwise, "yes_no_first": BBH_METHODS["yes_no"] in calls}


def _literal_strings(node: ast.AST, path: Path, what: str) -> list[str]:
    if not isinstance(node, ast.List) or any(_str(e) is None for e in node.elts):
        raise _fail(path, node, f"{what} should be a list of string literals")
    return [_str(e) for e in node.elts]  # type: ignore[misc]


def _template_list(fn: ast.FunctionDef, path: Path) -> list[str]:
    loops = [
        n
        for n in ast.walk(fn)
        if isinstance(n, ast.For) and isinstance(n.target, ast.Name) and n.target.id == "template"
    ]
    if len(loops) != 1:
        raise _fail(path, fn, "extract_answer should loop once over `for template in [...]`")
    return _literal_strings(loops[0].iter, path, "the template list")


def _specials(fn: ast.FunctionDef, path: Path) -> list[list[Any]]:
    chains = [s for s in fn.body if isinstance(s, ast.If) and _condition(s.test) is not None]
    if len(chains) != 1:
        raise _fail(path, fn, "extract_answer should end in one if/elif chain of phrases")
    rules, rest = _chain(chains[0], path, str)
    final = _returned(rest)
    if not (isinstance(final, ast.Constant) and final.value is None):
        raise _fail(path, chains[0], "the phrase chain's final else should return None")
    return rules


def _refusals(tree: ast.Module, path: Path) -> list[str]:
    init = _method(tree, "HarmEvaluator", "__init__", path)
    for node in init.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.List):
            target = node.targets[0]
            if isinstance(target, ast.Attribute) and target.attr == "refusal_string":
                return _literal_strings(node.value, path, "self.refusal_string")
    raise _fail(path, init, "no `self.refusal_string = [...]` in HarmEvaluator.__init__")


def _judge(tree: ast.Module, path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
            if name not in ("meta_prompt_open", "meta_prompt_qa"):
                continue
            strip = isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "strip"
            text = _str(value.func.value) if strip else _str(value)  # type: ignore[union-attr]
            if text is None or (strip and value.args):  # type: ignore[union-attr]
                raise _fail(path, node, f"{name} should be a string literal, optionally .strip()ped")
            out[name.removeprefix("meta_prompt_")] = text.strip() if strip else text
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and len(node.keys) == 2:
            fields = {_str(k): _str(v) for k, v in zip(node.keys, node.values) if k is not None}
            if fields.get("role") == "system" and fields.get("content") is not None:
                out["system"] = fields["content"]  # type: ignore[assignment]
    missing = {"open", "qa", "system"} - set(out)
    if missing:
        raise _fail(path, None, f"no {sorted(missing)} (meta_prompt_open, meta_prompt_qa, the system message)")
    return out


def _constrained_options(tree: ast.Module, path: Path) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "_CONSTRAINED_RESPONSE_OPTIONS":
                value = ast.List(elts=node.value.elts) if isinstance(node.value, ast.Tuple) else node.value
                return _literal_strings(value, path, "_CONSTRAINED_RESPONSE_OPTIONS")
    raise _fail(path, None, "no module-level _CONSTRAINED_RESPONSE_OPTIONS")
