"""Offline task ASR (pocketsphinx 5 + a task language model) and word error rate (jiwer).

Why a task LM: pocketsphinx's bundled general LM mis-hears espeak-ng speech (WER ~0.9); a trigram LM over the task's
own sentences (ArpaBoLM, add_start=True) and a dictionary cut to the task's words make recognition a closed-set
problem. Two input fixes, measured on espeak-ng speech (60 sentences, three styles), matter as much as the LM:
- espeak-ng emits exact digital silence, which the acoustic model (trained on real recordings) never heard; its
  log-energy floor skews cepstral mean normalisation (CMN). A faint deterministic noise floor (1e-3 after peak
  normalisation to 0.5) fixes it: WER 0.40 -> 0.04.
- pocketsphinx's live CMN carries over from one utterance to the next, so a transcript depended on what the worker
  had decoded before (WER 0.12 vs 0.22 on the same clips). Each utterance now starts from the same initial CMN, a
  cheap first pass estimates its own mean, then the LM pass decodes: deterministic per clip, and WER 0.10 -> 0.06
  over resetting to the initial CMN alone.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from wavalign.audio.io import resample

ASR_SAMPLE_RATE = 16000
PEAK_LEVEL = 0.5
NOISE_LEVEL = 1e-3
_WORD = re.compile(r"[a-z0-9']+")
_CMN_SEARCH = "wavalign-cmn-pass"


def words(text: str) -> list[str]:
    """Lower-case word tokens; punctuation dropped (what both LM building and WER scoring compare)."""
    return _WORD.findall(text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER over lower-cased, punctuation-free words. Empty reference: 0.0 if the hypothesis is empty too, else 1.0."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    if not hyp:
        return 1.0
    import jiwer

    return float(jiwer.wer(" ".join(ref), " ".join(hyp)))


@lru_cache(maxsize=1)
def cmn_grammar(word: str) -> str:
    """The CMN pass's search: a grammar of one word. The pass only runs the front end over the utterance so that live
    CMN ends at the utterance's own mean; its search result is thrown away. The CMN depends on the features alone,
    not the search, so any search gives the same value, and this one keeps the fewest HMMs active (a keyphrase
    search gave the same CMN at 7x the time; a no_search pass would still run the LM search at end_utt)."""
    return f"#JSGF V1.0;\ngrammar cmn;\npublic <cmn> = {word};\n"


def _bundled_dictionary() -> dict[str, list[str]]:
    """Bundled CMU dictionary: word -> its lines (pronunciation variants "word(2) ..." included)."""
    from pocketsphinx import get_model_path

    entries: dict[str, list[str]] = {}
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            head = line.split(maxsplit=1)
            if len(head) == 2:
                entries.setdefault(head[0].split("(")[0], []).append(line.rstrip("\n"))
    return entries


class TaskASR:
    """English ASR restricted to a task's sentences; transcribe() -> lower-case words.

    Picklable: only the sentences and settings travel; each process builds its decoder on first use (LM and
    dictionary files are cached in `cache_dir`, or a per-process temporary folder when it is None).

    Args:
        sentences: The task's possible sentences, from which the language model is built; sentences with a word
            missing from pocketsphinx's English dictionary are skipped, with a warning.
        cache_dir: Folder where the language-model and dictionary files are kept between runs; None uses a
            per-process temporary folder.
        decoder_options: Extra pocketsphinx Decoder options over these defaults, e.g. {"fwdflat": False}, the
            one-pass search `scripts/asr_settings_probe.py` measured: 0.65 of the time, but it mis-hears more words
            (docs/testbed.md), so no config uses it.
    """

    def __init__(
        self, sentences: Sequence[str], cache_dir: str | None = None, decoder_options: Mapping[str, Any] | None = None
    ) -> None:
        self.sentences = [" ".join(words(s)) for s in sentences if words(s)]
        if not self.sentences:
            raise ValueError("TaskASR needs at least one non-empty sentence for its language model")
        self.cache_dir = cache_dir
        self.decoder_options = dict(decoder_options or {})
        fixed = {"hmm", "lm", "dict", "samprate"} & set(self.decoder_options)
        if fixed:
            raise ValueError(f"TaskASR: decoder_options cannot set {sorted(fixed)}: the task model sets them")
        if self.decoder_options:
            from pocketsphinx import Config

            options = Config()
            unknown = [k for k in self.decoder_options if k not in options]
            if unknown:
                raise ValueError(f"TaskASR: decoder_options {unknown} are not pocketsphinx Decoder options")
        vocab = sorted({w for s in self.sentences for w in s.split()})
        known = _bundled_dictionary()
        self.missing_words = [w for w in vocab if w not in known]
        if self.missing_words:
            kept = [s for s in self.sentences if not set(s.split()) & set(self.missing_words)]
            warnings.warn(
                f"TaskASR: {len(self.missing_words)} word(s) are not in pocketsphinx's dictionary and cannot be "
                f"recognised: {self.missing_words[:20]}; skipping the {len(self.sentences) - len(kept)} sentence(s) "
                "that use them in the language model",
                stacklevel=2,
            )
            if not kept:
                raise ValueError("TaskASR: every sentence uses a word missing from pocketsphinx's dictionary")
            self.sentences = kept
        self._dict_lines = [line for w in vocab if w in known for line in known[w]]
        self._decoder: Any = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_decoder"] = None  # the decoder is a C object; rebuilt lazily where it is unpickled
        state["_tmp"] = None
        return state

    def _files(self) -> tuple[Path, Path]:
        """Write (or reuse) the task LM and dictionary; names carry a content hash so caches never go stale."""
        from pocketsphinx.lm import ArpaBoLM

        digest = hashlib.sha256(("\n".join(self.sentences) + "\0" + "\n".join(self._dict_lines)).encode()).hexdigest()
        if self.cache_dir is not None:
            root = Path(self.cache_dir)
            root.mkdir(parents=True, exist_ok=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="wavalign-asr-")
            root = Path(self._tmp.name)
        lm_path, dict_path = root / f"task-{digest[:16]}.lm", root / f"task-{digest[:16]}.dict"
        if not lm_path.is_file():
            lm = ArpaBoLM(text="\n".join(self.sentences) + "\n", add_start=True)
            lm.compute()
            tmp = lm_path.with_suffix(f".tmp{os.getpid()}")
            with tmp.open("w", encoding="utf-8") as f:
                lm.write(f)
            tmp.replace(lm_path)  # atomic: pool workers may build the same cache at once
        if not dict_path.is_file():
            tmp = dict_path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text("\n".join(self._dict_lines) + "\n", encoding="utf-8")
            tmp.replace(dict_path)
        return lm_path, dict_path

    def _build(self) -> Any:
        from pocketsphinx import Decoder, get_model_path

        lm_path, dict_path = self._files()
        decoder = Decoder(
            hmm=get_model_path("en-us/en-us"),
            lm=str(lm_path),
            dict=str(dict_path),
            samprate=ASR_SAMPLE_RATE,
            loglevel="FATAL",
            **self.decoder_options,
        )
        self._initial_cmn = decoder.get_cmn()
        self._lm_search = decoder.current_search()
        decoder.add_jsgf_string(_CMN_SEARCH, cmn_grammar(self._dict_lines[0].split()[0].split("(")[0]))
        return decoder

    def transcribe(self, wav: np.ndarray, sample_rate: int) -> str:
        """Mono waveform at any rate -> recognised words, lower case, space-separated ("" for silence)."""
        x = np.asarray(wav, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"transcribe expects a mono 1-D waveform, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("transcribe: waveform contains NaN or infinite samples")
        x = resample(x, sample_rate, ASR_SAMPLE_RATE)
        if x.size < ASR_SAMPLE_RATE // 10:  # under 100 ms: too short to hold a word
            return ""
        peak = float(np.abs(x).max())
        if peak > 0:
            x = x * (PEAK_LEVEL / peak)
        x = x + NOISE_LEVEL * np.random.default_rng(0).standard_normal(x.size).astype(np.float32)
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        if self._decoder is None:
            self._decoder = self._build()
        dec = self._decoder
        dec.set_cmn(self._initial_cmn)
        dec.activate_search(_CMN_SEARCH)
        dec.start_utt()
        dec.process_raw(pcm)  # pass 1: only to estimate this utterance's cepstral mean
        dec.end_utt()
        dec.set_cmn(dec.get_cmn(update=True))
        dec.activate_search(self._lm_search)
        dec.start_utt()
        dec.process_raw(pcm)
        dec.end_utt()
        hyp = dec.hyp()
        return " ".join(words(hyp.hypstr)) if hyp is not None else ""
