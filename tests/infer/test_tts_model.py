"""Train the TTS LM for a few steps on a fake encoded table, then load it with its vocabulary."""

import jax
import numpy as np

from emotive import configs
from emotive.data.pipelines.encoded import save_encoded
from emotive.infer.tts_model import load_tts
from emotive.train import trainer
from emotive.train.tasks.tts import model_vocab_size, unigram_loss

from tests.data.pipelines.test_tts_data import CODEBOOK, fake_table


def _table(num_clips, seed):
    table = fake_table(num_clips, seed)
    table["adv"] = np.zeros((num_clips, 3), np.float32)
    table["has_adv"] = np.zeros(num_clips, bool)
    return table


def test_train_then_load_tts(tmp_path):
    save_encoded(tmp_path / "train", _table(48, 0))
    save_encoded(tmp_path / "eval", _table(16, 1))
    overrides = [f"data.train={tmp_path / 'train'}", f"data.eval={tmp_path / 'eval'}",
                 f"vocab.codebook_size={CODEBOOK}", "vocab.bpe_size=300", "vocab.pad_to=64",
                 "vocab.speaker_slots=4", "data.seq_len=128", "model.num_layers=1",
                 "model.d_model=32", "train.steps=2", "train.batch_size=8",
                 "train.ckpt_every=2", "train.eval_every=2", "train.eval_batches=1",
                 "train.log_every=1", "train.async_ckpt=false"]
    cfg = configs.load("tts", "tiny", overrides)
    # One device: sharding is tested elsewhere, and compiling for 8 costs more.
    summary = trainer.train(cfg, tmp_path / "run", progress=False, devices=jax.devices()[:1])
    assert np.isfinite(summary["eval"]["loss"]) and "speech_accuracy" in summary["eval"]
    assert unigram_loss(cfg) > 0
    loaded_cfg, model, vocab, step = load_tts(tmp_path / "run")
    assert step == 2 and loaded_cfg == cfg
    assert model.vocab_size == vocab.vocab_size == model_vocab_size(cfg)
    assert vocab.speakers == ("spkA", "spkB", "spkC")
    assert vocab.prompt_ids("oak table.", emotion="calm", intensity=1, speaker="spkA")[-1] \
        == vocab.speech_start


def test_train_tts_on_phonemes(tmp_path):
    save_encoded(tmp_path / "train", _table(16, 0))
    overrides = [f"data.train={tmp_path / 'train'}", "data.eval=", "vocab.text_frontend=phoneme",
                 f"vocab.codebook_size={CODEBOOK}", "vocab.pad_to=64", "data.seq_len=128",
                 "model.num_layers=1", "model.d_model=32", "train.steps=2", "train.batch_size=4",
                 "train.ckpt_every=2", "train.log_every=1", "train.async_ckpt=false"]
    cfg = configs.load("tts", "tiny", overrides)
    summary = trainer.train(cfg, tmp_path / "run", progress=False, devices=jax.devices()[:1])
    assert np.isfinite(summary["train"]["loss"])
    _, model, vocab, _ = load_tts(tmp_path / "run")
    assert vocab.text_frontend == "phoneme" and model.vocab_size == model_vocab_size(cfg)
    prompt = vocab.prompt_ids("Oak table, 42 birds.", emotion="calm", intensity=1)
    assert all(0 <= i < vocab.text_vocab_size for i in prompt[1:prompt.index(
        vocab.special["TEXT_UNDERSTANDING_END"])])
