"""Kimi-Audio's continuous input path on a tiny on-disk checkpoint (kimi_tiny.py): Whisper features of the raw prompt
audio through the checkpoint's vq_adaptor, added to the speech codes' embeddings, as the checkpoint's model code
(modeling_kimia.py, MoonshotKimiaModel.forward) and kimia_infer's prompt manager (extract_whisper_feat) feed them."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import scalars
from kimi_tiny import FEATURE_DIM, NUM_CODES, kimi_policy, write_noise, write_tiny_kimi
from safetensors.torch import load_file
from transformers import WhisperFeatureExtractor, WhisperModel

from wavalign.audio.io import read_wav
from wavalign.cli import main
from wavalign.policy.base import SamplingConfig, SequenceBatch
from wavalign.policy.parallel import ParallelPolicy
from wavalign.policy.parallel_layout import AUDIO, TEXT

USER_AUDIO = [{"role": "user", "content": "<|audio|>"}]
STEPS = 7  # 0.5 s at 16 kHz: (8000 - 1) // 1280 + 1 twelve-and-a-half-hertz steps


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kimi_whisper")
    write_tiny_kimi(out / "ckpt")
    for i in range(3):
        write_noise(out / f"q{i}.wav", 0.5, seed=i)
    return out


@pytest.fixture(scope="module")
def policy(folder) -> ParallelPolicy:
    return kimi_policy(folder / "ckpt").double()  # the Whisper encoder stays float32; its features are cast on entry


def test_whisper_features_are_four_encoder_frames_per_step(policy, folder):
    """WhisperEncoder.tokenize_waveform: 30 s pieces padded for the log-mel front end, the first
    4 * ((samples - 1) // 1280 + 1) encoder frames kept, then (reshape in extract_whisper_feat) 4 frames per row."""
    wav, _ = read_wav(folder / "q0.wav")
    whisper = folder / "ckpt" / "whisper-large-v3"
    mel = WhisperFeatureExtractor.from_pretrained(str(whisper))(
        wav, sampling_rate=16000, return_tensors="pt"
    ).input_features
    with torch.no_grad():
        frames = WhisperModel.from_pretrained(str(whisper)).encoder(mel).last_hidden_state[0]
    expected = torch.stack([frames[4 * k : 4 * k + 4].flatten() for k in range(STEPS)])
    got = policy.features_encoder.file(folder / "q0.wav")
    assert got.shape == (STEPS, FEATURE_DIM)
    assert torch.allclose(got, expected, atol=1e-6)
    long = policy.features_encoder.waveform(torch.zeros(31 * 16000).numpy() + 0.01, 16000)
    assert long.shape[0] == (30 * 16000 - 1) // 1280 + 1 + (16000 - 1) // 1280 + 1  # two pieces: 375 + 13


def manual_embedding(
    folder: Path, text_ids: torch.Tensor, audio_ids: torch.Tensor, continuous: torch.Tensor, feats: torch.Tensor
) -> torch.Tensor:
    """(audio_emb + vq_adaptor(whisper)) * sqrt(2) at continuous steps, audio_emb elsewhere, plus the text embedding,
    from the checkpoint's own tensors in float64 (VQAdaptor: Linear, SiLU, Dropout(0), Linear, LayerNorm)."""
    raw = {k: v.double() for k, v in load_file(str(folder / "ckpt" / "model.safetensors")).items()}
    table = raw["model.embed_tokens.weight"]
    if feats is None:
        return table[audio_ids] + table[text_ids]
    a = lambda i, p: raw[f"model.vq_adaptor.layers.{i}.{p}"]  # noqa: E731
    adapted = F.layer_norm(
        F.linear(F.silu(F.linear(feats.double(), a(0, "weight"), a(0, "bias"))), a(3, "weight"), a(3, "bias")),
        (table.shape[1],),
        a(4, "weight"),
        a(4, "bias"),
        eps=json.loads((folder / "ckpt" / "config.json").read_text())["rms_norm_eps"],
    )
    audio = table[audio_ids].clone()
    audio[continuous] = (audio[continuous] + adapted) * math.sqrt(2.0)
    return audio + table[text_ids]


def test_embedding_at_continuous_positions_equals_kimis_formula(policy, folder):
    prompt = policy.example_prompt(
        [{"role": "user", "content": "one plus one"}] + USER_AUDIO, [list(range(STEPS))], [folder / "q0.wav"]
    )
    assert prompt.continuous.sum() == STEPS and prompt.features.shape == (STEPS, FEATURE_DIM)
    ids = prompt.ids.unsqueeze(0)
    mask = prompt.continuous.unsqueeze(0)
    got = policy.core.embed(ids[..., TEXT], ids[..., AUDIO], mask, prompt.features)
    want = manual_embedding(folder, ids[..., TEXT], ids[..., AUDIO], mask, prompt.features)
    assert got.dtype == torch.float64
    assert torch.allclose(got, want, atol=1e-12, rtol=0)
    assert not torch.allclose(got, policy.core.embed(ids[..., TEXT], ids[..., AUDIO]))  # the features do change it


def full_forward_logprobs(policy: ParallelPolicy, folder: Path, prompt, reply: torch.Tensor) -> torch.Tensor:
    """One row, no padding, no cache: embed by hand, run every stack over the whole sequence, read both heads, each
    head's log-softmax over the whole vocabulary and nothing else (Kimi-Audio: kimia_infer/utils/sampler.py,
    KimiASampler.sample_text_logits / sample_audio_logits take log_softmax of the head's raw logits, no token masked,
    on what kimia_infer/api/kimia.py's _generate_loop passes them from the model's forward)."""
    core = policy.core
    ids = torch.cat([prompt.ids, reply]).unsqueeze(0)
    continuous = torch.cat([prompt.continuous, torch.zeros(len(reply), dtype=torch.bool)]).unsqueeze(0)
    x = manual_embedding(folder, ids[..., TEXT], ids[..., AUDIO], continuous, prompt.features)
    pos = torch.arange(ids.shape[1]).unsqueeze(0)
    h = core.backbone(inputs_embeds=x, position_ids=pos).last_hidden_state
    h_text = core.text_branch(inputs_embeds=h, position_ids=pos).last_hidden_state
    h_audio = core.audio_branch(inputs_embeds=h, position_ids=pos).last_hidden_state
    text = F.log_softmax(core.text_head(core.text_norm(h_text)), dim=-1)[0, -len(reply) - 1 : -1]
    audio = F.log_softmax(core.audio_head(core.audio_norm(h_audio)), dim=-1)[0, -len(reply) - 1 : -1]
    return torch.cat([text.gather(1, reply[:, TEXT : TEXT + 1]), audio.gather(1, reply[:, AUDIO:])], dim=0).squeeze(1)


def test_training_and_reference_logprobs_equal_a_full_forward(policy, folder):
    """With configs/kimi_audio.yaml's settings (restrict_heads off, as the class default), training and reference
    log-probs are the model's own distribution: a float64 full forward with nothing masked."""
    with_speech = policy.example_prompt(USER_AUDIO, [list(range(STEPS))], [folder / "q1.wav"])
    text_only = policy.build_prompt([{"role": "user", "content": "one plus two is"}], [])  # shorter: left-padded
    replies = [policy.reply_ids("three", [5, 6]), policy.reply_ids("four is four", [1])]
    batch = policy.make_batch([with_speech, text_only], replies)
    assert batch.features is not None and batch.features.mask.sum() == STEPS
    policy.setup_reference()
    with torch.no_grad():
        got, ref = policy.token_logprobs(batch), policy.token_logprobs(batch, reference=True)
        t = batch.completion_ids.shape[1]
        for row, (prompt, reply) in enumerate(zip([with_speech, text_only], replies)):
            want = full_forward_logprobs(policy, folder, prompt, reply)
            n = len(reply)
            for out in (got, ref):
                assert torch.allclose(out[row, :n], want[:n], atol=1e-10, rtol=0)
                assert torch.allclose(out[row, t : t + n], want[n:], atol=1e-10, rtol=0)


def test_restricted_heads_are_an_option_that_renormalises(policy, folder):
    """The class default is off too; restrict_heads: true moves every log-prob by the log of its head's kept mass."""
    assert inspect.signature(ParallelPolicy).parameters["restrict_heads"].default is False
    restricted = kimi_policy(folder / "ckpt", restrict_heads=True).double()
    assert torch.isinf(restricted.text_bias).any() and torch.isinf(restricted.audio_bias).any()
    prompt = policy.build_prompt([{"role": "user", "content": "one plus two is"}], [])
    reply = policy.reply_ids("three", [5, 6])
    own = full_forward_logprobs(policy, folder, prompt, reply)
    with torch.no_grad():
        renormalised = restricted.token_logprobs(restricted.make_batch([prompt], [reply]))[0]
    n, t = len(reply), renormalised.shape[0] // 2
    got = torch.cat([renormalised[:n], renormalised[t : t + n]])
    assert (got - own).min() > 0  # each token's log p rises by -log(mass kept) > 0 ...
    assert not torch.allclose(got, own, atol=1e-3)  # ... visibly, on a random checkpoint


def test_rollouts_reuse_the_prompt_features_through_the_kv_cache(policy, folder):
    """Features enter with the prompt's prefill (kimia.py _generate_loop passes them on the first forward only) and
    are computed once per prompt: not again for its G rollouts, its PPO epochs or the reference forward."""
    enc = policy.features_encoder
    before = enc.calls
    prompts = [policy.example_prompt(USER_AUDIO, [list(range(STEPS))], [folder / f"q{i}.wav"]) for i in (0, 2)]
    assert enc.calls == before + 2
    torch.manual_seed(0)
    ids, mask, features = policy._pad_prompts(prompts)
    ids, mask, features = ids.repeat_interleave(3, 0), mask.repeat_interleave(3, 0), features.repeat_rows(3)
    # Kimi's text-id-0 rule makes a decode step differ from the whole-sequence forward on purpose
    # (test_kimi_audio.py pins it); the cache's reuse of the features is checked without it.
    policy.zero_text_skips_embedding = False
    try:
        with torch.no_grad():
            completion, cached = policy.generate(
                ids, mask, SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=12), features
            )
            batch = SequenceBatch(ids, mask, completion, policy.layout.masks(completion), features)
            full = policy.token_logprobs(batch)
    finally:
        policy.zero_text_skips_embedding = True
    assert torch.allclose(cached, full, atol=1e-10, rtol=0)
    rollouts = policy.rollout(prompts, 3, SamplingConfig(max_new_tokens=8))
    assert rollouts.features.values.shape == (6 * STEPS, FEATURE_DIM)
    assert torch.equal(rollouts.features.values[:STEPS], rollouts.features.values[2 * STEPS : 3 * STEPS])
    for _ in range(2):  # PPO epochs
        policy.token_logprobs(rollouts)
    policy.token_logprobs(rollouts, reference=True)
    assert enc.calls == before + 2


def test_bad_inputs_name_what_is_wrong(policy, folder, tmp_path):
    with pytest.raises(ValueError, match="example_prompt"):
        policy.prompt_ids(USER_AUDIO, [[1, 2]])
    with pytest.raises(ValueError, match="q0.wav: 7 Whisper steps .* but 9 speech codes"):
        policy.example_prompt(USER_AUDIO, [list(range(9))], [folder / "q0.wav"])
    with pytest.raises(ValueError, match="raw audio of every prompt speech segment"):
        policy.example_prompt(USER_AUDIO, [[1]], [])
    with pytest.raises(FileNotFoundError, match="whisper_path"):
        from wavalign.policy.kimi_checkpoint import KimiAudioCheckpoint

        KimiAudioCheckpoint(str(folder / "ckpt"), whisper_path=str(tmp_path)).continuous_encoder()


def test_the_discrete_only_input_stays_available(folder):
    discrete = kimi_policy(folder / "ckpt", whisper_features=False)
    assert discrete.features_encoder is None and discrete.core.vq_adaptor is None
    prompt = discrete.example_prompt(USER_AUDIO, [[1, 2]], [folder / "q0.wav"])
    assert isinstance(prompt, torch.Tensor) and prompt.shape == (8, 2)  # U, MB, 2 codes, ME, CTD, END, A


def test_kimi_audio_config_trains_on_a_local_checkpoint(folder, tmp_path, root, monkeypatch):
    """`python -m wavalign fit --config configs/kimi_audio.yaml` with only the USER paths (and this CPU machine's
    device, precision, sizes) overridden: rows carry raw prompt audio ('audios') and its codes."""
    monkeypatch.chdir(root)
    rows = [
        {
            "messages": USER_AUDIO,
            "audios": [str(folder / f"q{i}.wav")],
            "audio_codes": [[i + k for k in range(STEPS)]],
            "sft_target_text": "two plus two is four",
            "sft_target_codes": [3, 4, 5],
            "question_text": "what is two plus two",
            "reference_answer": "four",
            "task_type": "s2s",
        }
        for i in range(3)
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs = tmp_path / "runs"
    main(
        [
            "fit",
            "--config",
            "configs/kimi_audio.yaml",
            f"--model.policy.init_args.source.init_args.path={folder / 'ckpt'}",
            f"--data.init_args.train_file={data}",
            f"--data.init_args.val_file={data}",
            "--model.policy.init_args.source.init_args.dtype=float32",
            f"--model.policy.init_args.num_speech_tokens={NUM_CODES}",
            "--model.policy.init_args.speech_offset=64",
            "--trainer.accelerator=cpu",
            "--trainer.precision=32-true",
            "--trainer.max_steps=2",
            "--trainer.val_check_interval=2",
            "--trainer.limit_val_batches=1",
            "--data.init_args.batch_size=2",
            "--model.sampling.max_new_tokens=10",
            "--model.eval_sampling.max_new_tokens=10",
            "--trainer.enable_progress_bar=false",
            f"--trainer.logger.init_args.save_dir={runs}",
            "--trainer.logger.init_args.version=0",
        ]
    )
    logs = scalars(runs)
    assert {"loss/po", "loss/sft", "reward/mean", "val/reward"} <= set(logs)
    assert len(logs["loss/total"]) == 2


@pytest.mark.parametrize("version, keyword", [("4.48.3", "torch_dtype"), ("4.56.0", "dtype"), ("5.25.0", "dtype")])
def test_the_whisper_encoder_loads_with_the_dtype_keyword_of_the_installed_transformers(
    folder, monkeypatch, version, keyword
):
    """Before transformers 4.56 from_pretrained takes torch_dtype (a `dtype` keyword reaches WhisperModel.__init__
    and raises TypeError); the vita-audio extra pins 4.48.3. The version the helper reads is patched; the load
    itself runs on the installed transformers."""
    import transformers
    from transformers import WhisperModel

    from wavalign.policy.kimi_whisper import WhisperFeatures
    from wavalign.policy.sources import dtype_keyword

    seen: list[dict] = []
    load = WhisperModel.from_pretrained.__func__
    installed = dtype_keyword(transformers.__version__)  # the real load takes the installed version's keyword

    def recording(cls, path, **kwargs):
        seen.append(dict(kwargs))
        dtype = kwargs.pop("torch_dtype", None) or kwargs.pop("dtype")
        return load(cls, path, **{installed: dtype}, **kwargs)

    monkeypatch.setattr(transformers, "__version__", version)
    monkeypatch.setattr(WhisperModel, "from_pretrained", classmethod(recording))
    features = WhisperFeatures(folder / "ckpt" / "whisper-large-v3", FEATURE_DIM, dtype=torch.float64)
    assert seen == [{keyword: torch.float64}]
    assert features.encoder.dtype == torch.float64


# whisper-large-v3's preprocessor_config.json, written out: the values Kimi-Audio's front end hard-codes
LARGE_V3_PREPROCESSOR = {
    "chunk_length": 30,
    "feature_extractor_type": "WhisperFeatureExtractor",
    "feature_size": 128,
    "hop_length": 160,
    "n_fft": 400,
    "n_samples": 480000,
    "nb_max_frames": 3000,
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "WhisperProcessor",
    "return_attention_mask": False,
    "sampling_rate": 16000,
}


def kimia_log_mel(wav: np.ndarray, filters: np.ndarray) -> torch.Tensor:
    """kimia_infer/models/tokenizer/whisper_Lv3/whisper.py, written out by hand: pad_or_trim to 480000 samples with
    zeros, a 400-point STFT with a Hann window and hop 160, power of all frames but the last, the mel filterbank
    (n_mels 128), log10 clamped at 1e-10, floored at its max - 8, then (x + 4) / 4. Float64 here."""
    audio = torch.zeros(480000, dtype=torch.float64)
    audio[: min(wav.size, 480000)] = torch.from_numpy(wav[:480000].astype(np.float64))
    stft = torch.stft(audio, 400, 160, window=torch.hann_window(400, dtype=torch.float64), return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.from_numpy(filters).double() @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


def test_without_a_preprocessor_config_the_front_end_is_kimis_own(folder, tmp_path):
    """Kimi-Audio never reads whisper-large-v3/preprocessor_config.json (its WhisperEncoder takes only the model;
    the log-mel settings are constants in whisper_Lv3/whisper.py). A Whisper folder without that file loads with the
    same settings, and its features equal those from a folder holding whisper-large-v3's preprocessor config."""
    import shutil

    from wavalign.policy.kimi_whisper import KIMI_MEL, WhisperFeatures

    bare, written = tmp_path / "bare", tmp_path / "written"
    shutil.copytree(folder / "ckpt" / "whisper-large-v3", bare)
    (bare / "preprocessor_config.json").unlink()
    shutil.copytree(bare, written)
    (written / "preprocessor_config.json").write_text(json.dumps(LARGE_V3_PREPROCESSOR))
    own, configured = WhisperFeatures(bare, FEATURE_DIM), WhisperFeatures(written, FEATURE_DIM)
    for key in ("feature_size", "sampling_rate", "n_fft", "hop_length", "chunk_length", "n_samples", "padding_value"):
        assert getattr(own.extractor, key) == getattr(configured.extractor, key), key
    assert KIMI_MEL["feature_size"] == 128 and own.extractor.n_samples == 480000
    wav, _ = read_wav(folder / "q2.wav")
    assert torch.equal(own.waveform(wav, 16000), configured.waveform(wav, 16000))
    mel = own.extractor(wav, sampling_rate=16000, return_tensors="np").input_features[0]
    by_hand = kimia_log_mel(wav, own.extractor.mel_filters.T)
    assert mel.shape == (128, 3000) and np.allclose(mel, by_hand.numpy(), atol=1e-4)
