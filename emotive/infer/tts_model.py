"""Load a trained TTS language model with its vocabulary, from a checkpoint folder alone.

    cfg, model, vocab, step = load_tts("runs/tts-tiny")      # newest step of the run
    prompt = vocab.prompt_ids("Hello there.", emotion="happy", intensity=2)
    logits = model(jnp.asarray([prompt]))                    # CausalLM, [1, T, vocab_size]

The vocabulary travels inside each checkpoint (see `emotive.train.tasks.tts`), so it is
always the one this model was trained with; `vocab.save(dir)` writes it out for a release,
and a release bundle (`emotive release`) is read with its tts_vocab.json + tokenizer.json.
"""

from __future__ import annotations

from typing import NamedTuple

from emotive.codecs.text import TTSVocab
from emotive.configs.tts import TTSConfig
from emotive.data.speech.espeak import phonemize
from emotive.data.pipelines.tts import read_checkpoint_vocab
from emotive.errors import UserError
from emotive.infer.bundle import is_bundle
from emotive.infer.loading import load_trained
from emotive.models.lm import CausalLM


class TTSModel(NamedTuple):
    """A trained TTS LM: unpacks as (cfg, model, vocab, step)."""

    cfg: TTSConfig
    model: CausalLM
    vocab: TTSVocab
    step: int

    @classmethod
    def load(cls, ckpt_dir, tasks=("tts",)) -> "TTSModel":
        """The newest checkpoint under `ckpt_dir` of `emotive train tts` (see load_tts)."""
        trained = load_trained(ckpt_dir, task=tuple(tasks))
        if is_bundle(trained.step_dir):  # a release: tts_vocab.json + tokenizer.json
            vocab = TTSVocab.load(trained.step_dir, phonemizer=phonemize)
        else:
            vocab = read_checkpoint_vocab(trained.step_dir)
        if vocab.vocab_size != trained.model.vocab_size:
            raise UserError(f"checkpoint {trained.step_dir}: its vocabulary has "
                            f"{vocab.vocab_size} ids but the model {trained.model.vocab_size}; "
                            "the checkpoint is damaged or was edited")
        return cls(trained.cfg, trained.model, vocab, trained.step)


def load_tts(ckpt_dir) -> TTSModel:
    """Loads the newest checkpoint under `ckpt_dir` (a run dir, its checkpoints/ or a step
    dir) of `emotive train tts`; returns (config, model in eval mode, vocabulary, step).
    UserError for another task's checkpoint, a damaged one, or one without a vocabulary."""
    return TTSModel.load(ckpt_dir)
