"""Audio layer: WAV I/O, the speech codec interface and its WORLD implementation, and offline task ASR.

Heavy back ends (pyworld, scikit-learn, pocketsphinx, jiwer) are imported on first use, so importing this package
stays cheap.
"""

from wavalign.audio.asr import TaskASR, word_error_rate
from wavalign.audio.codec import SpeechCodec
from wavalign.audio.io import read_wav, resample, write_wav
from wavalign.audio.world_codec import WorldCodec

__all__ = ["SpeechCodec", "TaskASR", "WorldCodec", "read_wav", "resample", "word_error_rate", "write_wav"]
