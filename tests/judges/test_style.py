import pytest

from wavalign.audio.tts import synthesize
from wavalign.judges.base import JudgeRequest
from wavalign.judges.style import StyleJudge, fit_profiles, load_profiles, prosody, save_profiles

TRAIN = ["three plus four is seven", "the sky is blue", "after five comes six", "monday comes before tuesday"]


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    samples = []
    for text in TRAIN:
        for style in ("neutral", "cheerful", "calm"):
            wav, sr = synthesize(text, style)
            samples.append((style, prosody(wav, sr, len(text.split()))))
    path = tmp_path_factory.mktemp("style") / "profiles.json"
    save_profiles(fit_profiles(samples), path)
    return StyleJudge(str(path))


def request(text, spoken_style, requested):
    wav, sr = synthesize(text, spoken_style)
    return JudgeRequest(question="q", reply_text=text, reply_audio=wav, sample_rate=sr, style=requested)


def test_matching_style_scores_higher_than_a_mismatch(judge):
    text = "two plus two is four"  # not among the fitting sentences
    for requested in ("cheerful", "calm"):
        other = "calm" if requested == "cheerful" else "cheerful"
        good, bad = judge.score([request(text, requested, requested), request(text, other, requested)])
        assert good.reliable and bad.reliable
        assert good.score > 4.0 > 2.0 > bad.score


def test_no_audio_scores_lowest_and_unknown_style_is_unreliable(judge):
    silent, unknown = judge.score(
        [JudgeRequest("q", "four", None, style="calm"), JudgeRequest("q", "four", None, style="angry")]
    )
    assert silent.score == 1.0 and silent.reliable
    assert not unknown.reliable


def test_bad_profile_file_is_named(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="p.json"):
        load_profiles(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_profiles(tmp_path / "missing.json")
