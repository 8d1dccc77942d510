"""A blind pairwise rating session built from two or more `wavalign predict` folders that answered the same prompts.

Each trial puts the replies of two systems to one prompt in a random order (drawn once, recorded in session.json,
never shown). The folders' audio is copied under opaque random names, so nothing the server sends (page, JSON,
audio URLs) can name a model; session.json, which maps trials back to systems, stays on disk and is never served.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from functools import cached_property
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

from wavalign.predict.listening_page import load_run

FORMAT = "wavalign-listening-session/1"
DEFAULT_CRITERIA = ("helpfulness", "naturalness", "overall")  # the paper's human-preference criteria
_CRITERION = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass
class Side:
    """One reply of a trial as the rater gets it: `audio` is an opaque file name under the session's audio/."""

    system: int  # index into Session.systems (session.json only; never served)
    audio: str | None
    text: str


@dataclass
class Trial:
    id: str
    prompt_id: int
    question: str
    question_audio: str | None
    a: Side  # played first
    b: Side


@dataclass
class Session:
    id: str
    criteria: list[str]
    systems: list[dict[str, Any]]  # name, folder and checkpoint of each predict folder, in the order given
    trials: list[Trial]
    seed: int
    show_text: bool
    reply_index: int
    root: Path = field(default=Path("."), compare=False)
    format: str = FORMAT

    @property
    def audio_dir(self) -> Path:
        return self.root / "audio"

    @cached_property
    def _by_id(self) -> dict[str, Trial]:
        return {t.id: t for t in self.trials}

    def trial(self, trial_id: str) -> Trial:
        return self._by_id[trial_id]

    def has_trial(self, trial_id: str) -> bool:
        return trial_id in self._by_id

    def save(self) -> Path:
        data = {k: v for k, v in asdict(self).items() if k != "root"}
        path = self.root / "session.json"
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def load_session(session_dir: str | Path) -> Session:
    """The session saved by build_session in `session_dir`; a missing or foreign file names itself."""
    root = Path(session_dir)
    path = root / "session.json"
    if not path.is_file():
        raise FileNotFoundError(f"{root} holds no session.json: build one with `wavalign listening build`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, expected {FORMAT!r}")
        trials = [
            Trial(**{**t, "a": Side(**t["a"]), "b": Side(**t["b"])})  # type: ignore[arg-type]
            for t in data.pop("trials")
        ]
        return Session(**data, trials=trials, root=root)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{path} is not a listening session ({e})") from None


def check_criteria(criteria: Sequence[str]) -> list[str]:
    names = [c.strip() for c in criteria]
    bad = [c for c in names if not _CRITERION.match(c)]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(
            f"criteria must be distinct lower-case names (letters, digits, _), got {list(criteria)}; bad: {bad}"
        )
    return names


def _system_names(run_dirs: Sequence[Path]) -> list[str]:
    names = [d.resolve().name or str(d) for d in run_dirs]
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def _check_same_prompts(runs: list[tuple[Path, dict[int, dict[str, Any]]]]) -> list[int]:
    first_dir, first = runs[0]
    for run_dir, rows in runs[1:]:
        if rows.keys() != first.keys():
            only = sorted(rows.keys() ^ first.keys())[:5]
            raise ValueError(
                f"{run_dir} and {first_dir} answered different prompts (prompt ids {only} are in only one of "
                "them): run predict on the same data.predict_file"
            )
        for pid in sorted(first):
            if rows[pid]["question"] != first[pid]["question"]:
                raise ValueError(
                    f"{run_dir} and {first_dir} answered different prompts (prompt {pid}: "
                    f"{rows[pid]['question']!r} vs {first[pid]['question']!r}): run predict on the same data.predict_file"
                )
    return sorted(first)


def build_session(
    out_dir: str | Path,
    run_dirs: Sequence[str | Path],
    criteria: Sequence[str] = DEFAULT_CRITERIA,
    seed: int = 0,
    reply_index: int = 0,
    show_text: bool = False,
) -> Session:
    """One trial per prompt and pair of folders, sides in a seeded random order, audio copied under opaque names.

    reply_index picks which of each prompt's replies is rated (predict writes G per prompt); show_text also shows
    each reply's transcript (replies without audio always show it, or there would be nothing to rate)."""
    if len(run_dirs) < 2:
        raise ValueError("a pairwise session needs at least two predict folders")
    criteria = check_criteria(criteria)
    root = Path(out_dir)
    if (root / "session.json").exists():
        raise FileExistsError(
            f"{root / 'session.json'} exists: a rebuilt session would orphan its votes; pick a new folder"
        )
    dirs = [Path(d) for d in run_dirs]
    loaded = [load_run(d) for d in dirs]
    prompt_ids = _check_same_prompts([(d, rows) for d, (_, rows) in zip(dirs, loaded)])
    for d, (_, rows) in zip(dirs, loaded):
        short = [pid for pid in prompt_ids if len(rows[pid]["replies"]) <= reply_index]
        if short:
            raise ValueError(f"{d}/replies.jsonl: prompt {short[0]} has no reply #{reply_index} (--reply_index)")
    for d, (_, rows) in zip(dirs, loaded):  # every WAV first, so that a missing one leaves no half-built session
        for pid in prompt_ids:
            audio = rows[pid]["replies"][reply_index].get("audio")
            if audio and not (d / audio).is_file():
                raise FileNotFoundError(f"{d / audio} (prompt {pid} of {d}/replies.jsonl) does not exist")
    rng = random.Random(seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)

    def opaque_copy(source: Path | None) -> str | None:
        """Copy `source` under a random name that says nothing of where it came from (not from the seed either:
        the seed is no secret)."""
        if source is None:
            return None
        name = f"{secrets.token_hex(8)}{source.suffix.lower()}"
        shutil.copyfile(source, root / "audio" / name)
        return name

    systems = [
        {"name": n, "folder": str(d.resolve()), "checkpoint": meta.get("checkpoint")}
        for n, d, (meta, _) in zip(_system_names(dirs), dirs, loaded)
    ]
    question_audio: dict[int, str | None] = {}
    trials = []
    for i, j in combinations(range(len(dirs)), 2):
        for pid in prompt_ids:
            row = loaded[i][1][pid]
            if pid not in question_audio:
                qa = row.get("question_audio")
                question_audio[pid] = opaque_copy(Path(qa)) if qa and Path(qa).is_file() else None
            sides = []
            for s in (i, j):
                reply = loaded[s][1][pid]["replies"][reply_index]
                audio = opaque_copy(dirs[s] / reply["audio"]) if reply.get("audio") else None
                sides.append(Side(system=s, audio=audio, text=reply["text"]))
            rng.shuffle(sides)
            trials.append(Trial("", pid, row["question"], question_audio[pid], sides[0], sides[1]))
    rng.shuffle(trials)  # trial ids carry no pair or prompt order either
    for k, t in enumerate(trials):
        t.id = f"t{k + 1:04d}"
    session = Session(
        id=uuid.uuid4().hex,
        criteria=criteria,
        systems=systems,
        trials=sorted(trials, key=lambda t: t.id),
        seed=seed,
        show_text=bool(show_text),
        reply_index=int(reply_index),
        root=root,
    )
    session.save()
    return session


def rater_order(session: Session, rater: str) -> list[Trial]:
    """The session's trials in an order of this rater's own (stable across reloads), so that no trial is always
    heard first or last by everyone."""
    order = list(session.trials)
    random.Random(f"{session.id}/{rater}").shuffle(order)
    return order
