"""Would cheaper pocketsphinx settings keep the world's WER? Transcribes codec round trips of world demonstration
replies with TaskASR as it is and with candidate decoder options, and prints the time per utterance and how many
transcripts are unchanged (docs/performance.md records the answer: every candidate changed many).

    python scripts/asr_settings_probe.py [--world .cache/ablate/world] [--n 40]
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import wavalign.audio.asr as asr_module  # noqa: E402
from wavalign.audio.asr import TaskASR  # noqa: E402
from wavalign.audio.io import read_wav  # noqa: E402
from wavalign.audio.world_codec import WorldCodec  # noqa: E402

CANDIDATES = (
    {"beam": 1e-20, "wbeam": 1e-15, "pbeam": 1e-20},
    {"fwdflat": False},
    {"bestpath": False},
    {"ds": 2},
    {"topn": 2},
)


def with_options(**options):
    """TaskASR._build with extra pocketsphinx Decoder options (the rest as TaskASR builds it)."""

    def build(self):
        from pocketsphinx import Decoder, get_model_path

        lm_path, dict_path = self._files()
        decoder = Decoder(
            hmm=get_model_path("en-us/en-us"),
            lm=str(lm_path),
            dict=str(dict_path),
            samprate=asr_module.ASR_SAMPLE_RATE,
            loglevel="FATAL",
            **options,
        )
        self._initial_cmn, self._lm_search = decoder.get_cmn(), decoder.current_search()
        decoder.add_keyphrase(asr_module._CMN_SEARCH, self._dict_lines[0].split()[0].split("(")[0])
        return decoder

    return build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default=".cache/ablate/world")
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    world = Path(args.world)
    sentences = [s.strip() for s in (world / "sentences.txt").read_text().splitlines() if s.strip()]
    codec = WorldCodec.load(world / "codebook.npz")
    wavs = []
    for f in sorted(glob.glob(str(world / "audio" / "a_*.wav")))[: args.n]:
        wav, sr = read_wav(f)
        wavs.append(codec.decode(codec.encode(wav, sr)))  # what the judges hear of a reply

    def run(label: str) -> list[str]:
        asr = TaskASR(sentences, cache_dir=str(world / "asr_cache"))
        start = time.perf_counter()
        out = [asr.transcribe(w, codec.sample_rate) for w in wavs]
        print(f"{label}: {(time.perf_counter() - start) / len(wavs) * 1000:.0f} ms per utterance", flush=True)
        return out

    reference = run("as is")
    original = TaskASR._build
    try:
        for options in CANDIDATES:
            TaskASR._build = with_options(**options)
            out = run(str(options))
            print(f"  unchanged transcripts: {sum(a == b for a, b in zip(out, reference))} / {len(reference)}")
    finally:
        TaskASR._build = original


if __name__ == "__main__":
    main()
