import pytest
import torch

from wavalign.policy.masks import InterleaveLayout, ModalityMasks, ModalitySpec

# ids: 0 pad, 1 eos, 2..9 text, 10 begin-audio, 11 end-audio, 20..29 speech codes
SPEC = ModalitySpec(speech_ranges=((20, 30),), eos_id=1, pad_id=0, boundary_ids=(10, 11))


def test_masks_on_interleaved_sequence_with_boundaries_and_padding():
    ids = torch.tensor(
        [
            [5, 10, 21, 22, 11, 6, 1, 0, 0],  # text, <boa>, 2 codes, <eoa>, text, EOS, pad
            [3, 4, 10, 25, 26, 27, 0, 0, 0],  # no EOS: runs to the last non-pad token
            [1, 0, 0, 0, 0, 0, 0, 0, 0],  # only EOS
            [7, 1, 8, 20, 1, 0, 0, 0, 0],  # tokens after the first EOS are not completion
        ]
    )
    m = SPEC.masks(ids)
    assert m.completion.tolist() == [
        [1, 1, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1, 0, 0, 0],
        [1, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0, 0],
    ]
    assert m.speech.tolist() == [
        [0, 1, 1, 1, 1, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
    assert m.text.tolist() == [
        [1, 0, 0, 0, 0, 1, 1, 0, 0],  # EOS counts as text
        [1, 1, 0, 0, 0, 0, 0, 0, 0],
        [1, 0, 0, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0, 0],
    ]
    assert torch.equal(m.text + m.speech, m.completion)


def test_select_falls_back_to_completion_for_rows_without_text():
    completion = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    text = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    m = ModalityMasks(completion, text, completion - text)
    assert m.select("text").tolist() == [[1, 1, 0], [1, 0, 0]]
    assert m.select("all").tolist() == completion.tolist()
    with pytest.raises(ValueError, match="token mask"):
        m.select("audio")


def test_split_reply_removes_boundaries_offset_and_stops_at_eos():
    text, codes = SPEC.split_reply([5, 10, 21, 22, 11, 6, 1, 7, 23], speech_offset=20)
    assert text == [5, 6] and codes == [1, 2]


def test_layout_follows_chunk_schedule_and_wraps_speech():
    layout = InterleaveLayout(text_chunks=(1, 2), speech_chunks=(3,), begin_audio_id=10, end_audio_id=11)
    out = layout.layout([2, 3, 4, 5, 6], [20, 21, 22, 23, 24, 25, 26], eos_id=1)
    assert out == [2, 10, 20, 21, 22, 11, 3, 4, 10, 23, 24, 25, 11, 5, 6, 10, 26, 11, 1]
    # what the layout emits, the masks read back: every text id is text, every speech id and marker is speech
    m = SPEC.masks(torch.tensor([out]))
    assert m.text.sum() == 6 and m.speech.sum() == 7 + 6


def test_spec_rejects_eos_inside_speech():
    with pytest.raises(ValueError, match="eos_id"):
        ModalitySpec(speech_ranges=((0, 10),), eos_id=3, pad_id=0)


def test_merged_tail_layouts_written_by_hand_from_upstream_text_audio_interval():
    """VITA-MLLM/VITA-Audio vita_audio/data/processor/audio_processor.py text_audio_interval (and the same function in
    MM-Speech/WavAlign's trainer, _apply_text_audio_interval): cut text by [1, 4, 4...] and speech by [8, 8...] (its
    ratio [1, 10, 4, 10] less the two markers), alternate the pairs up to the shorter count, merge the rest of both
    into the last pair; speech alone stays one block, text alone gets no markers."""
    B, E, EOS = 900, 901, 999
    layout = InterleaveLayout(text_chunks=(1, 4), speech_chunks=(8,), begin_audio_id=B, end_audio_id=E, merge_tail=True)
    t = list(range(7))  # t0 .. t6
    a = list(range(100, 140))  # 40 codes
    assert layout.layout(t, a, EOS) == (
        [0] + [B, *a[0:8], E] + [1, 2, 3, 4] + [B, *a[8:16], E] + [5, 6] + [B, *a[16:40], E] + [EOS]
    )
    # more text than speech: 3 text chunks, 1 speech chunk -> all the text, then all the speech
    assert layout.layout(t, a[:5], EOS) == t + [B, *a[:5], E] + [EOS]
    # 2 text chunks (1 + 4), 3 speech chunks -> t0 [8] t1..t4 [16]
    assert layout.layout(t[:5], a[:24], EOS) == [0, B, *a[:8], E, 1, 2, 3, 4, B, *a[8:24], E, EOS]
    assert layout.layout([], a[:20], EOS) == [B, *a[:20], E, EOS]
    assert layout.layout(t, [], EOS) == t + [EOS]
    # the plain layout (the tiny world's) is unchanged: leftover speech follows in chunks of its own
    plain = InterleaveLayout(text_chunks=(1, 4), speech_chunks=(8,), begin_audio_id=B, end_audio_id=E)
    assert plain.layout(t, a, EOS) == (
        [0, B, *a[0:8], E, 1, 2, 3, 4, B, *a[8:16], E, 5, 6, B, *a[16:24], E, B, *a[24:32], E, B, *a[32:40], E, EOS]
    )


def test_a_second_stop_token_ends_the_completion_as_eos_does():
    """stop_ids: VITA-Audio's generation config also stops on <|endoftext|>, which is its pad too (here 0)."""
    spec = ModalitySpec(speech_ranges=((20, 30),), eos_id=1, pad_id=0, boundary_ids=(10, 11), stop_ids=(0,))
    ids = torch.tensor([[5, 21, 0, 0, 0], [5, 6, 1, 0, 0], [5, 0, 1, 7, 0]])
    m = spec.masks(ids)
    assert m.completion.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]
    assert m.text.tolist() == [[1, 0, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]  # the stop token is text
    assert spec.split_reply([5, 21, 0, 6, 1], speech_offset=20) == ([5], [1])
    with pytest.raises(ValueError, match="stop id"):
        ModalitySpec(speech_ranges=((20, 30),), eos_id=1, pad_id=0, stop_ids=(22,))
