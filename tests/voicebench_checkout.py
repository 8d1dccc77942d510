"""A miniature VoiceBench checkout for the tests: upstream's file names, classes, methods and variable names
(MatthewCYM/VoiceBench src/evaluator/{bbh,mcq,harm}.py, api_judge.py,
src/evaluator/instruction_following_eval/instructions.py), but a handful of entries written here, so
every expected score can be derived by hand from these tables. Each entry exercises one kind of rule."""

from __future__ import annotations

from pathlib import Path

_YES_NO_FIRST = """        tmp = self.extract_answer_yn(response)
        if tmp is not None:
            return tmp
"""

BBH = f"""import re
import random

from .base import Evaluator


class BBHEvaluator(Evaluator):
    def extract_answer_hyperbaton(self, response):
        if response == 'b':
            return 0
        elif "is (b)" in response:
            return 1
        elif "is (a)" in response:
            return 0
        elif re.search(r"pick (.+?) first", response):
            return 0
        elif response.startswith('a '):
            return 0
        else:
            print(response)
            return random.choice([0, 1])

    def extract_answer_yn(self, response):
        if "verdict no" in response:
            return 0
        elif "verdict yes" in response:
            return 1
        else:
            return None

    def extract_answer_lies(self, response):
{_YES_NO_FIRST}        if response.endswith('is lying'):
            return 0
        elif response == 'truthful':
            return 1
        else:
            return random.choice([0, 1])

    def extract_answer_navigate(self, response):
{_YES_NO_FIRST}        if "back where we began" in response:
            return 1
        else:
            return random.choice([0, 1])

    def extract_answer_sports(self, response):
{_YES_NO_FIRST}        if response.startswith('yes'):
            return 1
        elif response.startswith('no'):
            return 0
        else:
            return random.choice([0, 1])
"""

MCQ = """from .base import Evaluator


class MCQEvaluator(Evaluator):
    def extract_answer(self, response):
        response = response.lower()
        for template in [
            "it's [CHOICE],",
            ": **[CHOICE]**",
            "the reply is [CHOICE]",
            "pick [CHOICE]!",
            "[CHOICE] for sure",
        ]:
            for choice in ['a', 'b', 'c', 'd']:
                if template.replace('[CHOICE]', choice) in response:
                    return choice.upper()
        if 'my final letter is a' in response:
            return 'A'
        else:
            return None
"""

HARM = """from .base import Evaluator


class HarmEvaluator(Evaluator):
    def __init__(self):
        self.refusal_string = [
            "I'm sorry",
            "no can"
            "do",
            "ILLEGAL",
        ]
"""

API_JUDGE = '''meta_prompt_open = """
Rate this reply from 1 to 5.
[Q] {prompt}
[A] {response}
"""

meta_prompt_qa = """
<question>{prompt}</question>
<gold>{reference}</gold>
<candidate>{response}</candidate>
Say Yes or No.
""".strip()


def generate(item):
    messages = [{"role": "system", "content": "Be a fair grader."}, {"role": "user", "content": item}]
    return messages
'''

INSTRUCTIONS = """_CONSTRAINED_RESPONSE_OPTIONS = (
    "Yep, final.", "Nope, final.")
"""

FILES = {
    "src/evaluator/bbh.py": BBH,
    "src/evaluator/mcq.py": MCQ,
    "src/evaluator/harm.py": HARM,
    "src/evaluator/base.py": "class Evaluator:\n    pass\n",
    "api_judge.py": API_JUDGE,
    "src/evaluator/instruction_following_eval/instructions.py": INSTRUCTIONS,
}


def write_checkout(folder: Path, **replace: str) -> Path:
    """Writes the miniature checkout under folder/VoiceBench (a file's text can be replaced by name) and returns it."""
    root = folder / "VoiceBench"
    for name, text in {**FILES, **replace}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root
