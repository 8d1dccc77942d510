"""IQ, EQ and the corpus-level speech-text WER, checked against values computed by hand."""

import math

import pytest
import torch

from wavalign.benchmarks.metrics import EQ, IQ, SpeechTextWER, normalize_words


def test_iq_is_100_times_mean_correctness_over_all_updates():
    iq = IQ()
    iq.update([1.0, 0.0, 0.5])
    iq.update(torch.tensor([1.0]))
    assert float(iq.compute()) == pytest.approx(100 * 2.5 / 4)


def test_standard_error_is_sample_std_over_sqrt_n_by_hand():
    iq = IQ()
    iq.update([1.0, 0.0])
    iq.update([0.5, 0.5])
    # mean 0.5, sample variance (0.25 + 0.25 + 0 + 0) / 3, SE = sqrt(var / 4), x 100
    assert float(iq.standard_error()) == pytest.approx(100 * math.sqrt((0.5 / 3) / 4))
    eq = EQ()
    eq.update([3.0])
    assert math.isnan(float(eq.standard_error()))
    eq.update([3.0, 3.0])
    assert float(eq.standard_error()) == 0.0


def test_eq_is_mean_score_on_the_judge_scale():
    eq = EQ()
    eq.update([1.0, 5.0, 3.0])
    eq.update([4.0])
    assert float(eq.compute()) == pytest.approx(13 / 4)


@pytest.mark.parametrize("metric, bad", [(IQ, [1.2]), (IQ, [-0.1]), (EQ, [0.5]), (EQ, [5.5]), (EQ, [float("nan")])])
def test_out_of_range_values_are_rejected(metric, bad):
    with pytest.raises(ValueError):
        metric().update(bad)


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_nothing_counted_gives_nan():
    assert math.isnan(float(IQ().compute())) and math.isnan(float(EQ().compute()))
    assert math.isnan(float(SpeechTextWER().compute()))


def test_wer_is_total_errors_over_total_reference_words_not_a_mean_of_utterance_wers():
    wer = SpeechTextWER()
    # 1 insertion over 3 words, 1 deletion over 2 words
    wer.update(["the cat sat", "hello world"], ["the cat sat down", "hello"])
    assert float(wer.compute()) == pytest.approx(2 / 5)  # the mean of per-utterance WERs would be (1/3 + 1/2) / 2
    wer.update(["a b c"], ["a x c"])  # one substitution
    assert float(wer.compute()) == pytest.approx(3 / 8)


def test_wer_ignores_case_and_punctuation_and_counts_empty_sides():
    assert normalize_words("Hello, World!") == "hello world"
    wer = SpeechTextWER()
    wer.update(["Hello, World!"], ["hello world"])
    assert float(wer.compute()) == 0.0
    wer.update([""], ["stray words"])  # 2 insertions, no reference words
    wer.update(["two words"], [""])  # 2 deletions over 2 words
    assert float(wer.compute()) == pytest.approx(4 / 4)


def test_wer_update_checks_its_arguments():
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        SpeechTextWER().update(["a", "b"], ["a"])
    with pytest.raises(TypeError):
        SpeechTextWER().update("a b", "a b")


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_states_reset_and_merge_like_any_torchmetric():
    a, b = IQ(), IQ()
    a.update([1.0, 1.0])
    b.update([0.0, 0.0, 0.0])
    a.merge_state(b)  # what the cross-process sum does
    assert float(a.compute()) == pytest.approx(40.0)
    a.reset()
    assert math.isnan(float(a.compute()))
