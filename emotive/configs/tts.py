"""The TTS language model experiment: text (+ emotion, + speaker) -> codec tokens, Llama-style.

One causal LM over Llasa's vocabulary layout (`emotive.codecs.text.TTSVocab`), trained on
packed documents from tables pre-encoded by the codec (`emotive.data.pipelines.tts`):

    emotive codec encode-split --data-dir DATA --split train --ckpt CODEC_RUN \
        --out data/encoded/tiny_train        (and --split validation)
    emotive train tts --preset tiny

The model's vocabulary size follows from the `vocab` section alone (so a checkpoint loads
without the data): text ids + 8 specials + codebook + emotion tags + speaker slots, padded
to `vocab.pad_to`. Presets: tiny (CPU, minutes), small (about an hour of 2 CPU cores, the full corpus),
1b (Llama-3.2-1B shape over Llama 3's tokenizer: Llasa's 193,800 ids + 16 emotion tags,
padded to 193,920) and 8b (Llama-3.1-8B shape), all sharded by the same rules; aligned
and aligned_medium (the ELLA-V layout on the wide corpus: 2.1M and 10.4M parameters).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

from emotive.configs.common import (LARGE_VOCAB_LOSS_CHUNK, MeshConfig, OptimConfig,
                                    TrainConfig, TransformerConfig, check_loss_chunk,
                                    llama_3_1_8b, llama_3_2_1b)
from emotive.errors import UserError

# The corpus's emotion names (emotive.data.speech.emotions.EMOTIONS; configs import nothing above
# them, and tests/codecs/test_text.py checks the two agree).
CORPUS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "surprised",
                   "disgusted")
TextFrontend = Literal["bpe", "phoneme"]
TEXT_FRONTENDS = typing.get_args(TextFrontend)
# "llasa": prompt, then the speech codes. "ella_v": prompt (the phonemes), then each phoneme
# followed by its codes and an end-of-phoneme token (emotive.data.pipelines.ella).
Layout = Literal["llasa", "ella_v"]
LAYOUTS = typing.get_args(Layout)
# Text ids the phoneme front end reserves: its inventory (emotive.codecs.phonemes.INVENTORY,
# 101 symbols; tests/codecs/test_phonemes.py checks it fits) plus room to grow.
PHONEME_TEXT_IDS = 128


@dataclasses.dataclass(frozen=True)
class TTSVocabConfig:
    """The vocabulary layout; it fixes the model's vocabulary size."""

    bpe_size: int = 1024  # text ids of a byte-level BPE trained on the train table's text
    # "bpe": that BPE; "phoneme": eSpeak IPA phonemes of normalised text (PHONEME_TEXT_IDS ids)
    text_frontend: TextFrontend = "bpe"
    tokenizer_json: str = ""  # a Llama 3 tokenizer.json instead of the BPE (full scale)
    text_vocab_size: int = 0  # text ids with tokenizer_json (Llama 3: 128256); 0 = by frontend
    codebook_size: int = 64000  # the codec's codes (the tiny codec: FSQ 8,8,8,5,5,5)
    emotions: tuple[str, ...] = CORPUS_EMOTIONS
    intensities: tuple[int, ...] = (1, 2)
    speaker_slots: int = 0  # tags for the train table's speakers; 0 = no speaker tags
    pad_to: int = 128  # vocabulary rounded up to a multiple (sharding)
    prompt_style: Literal["plain", "llama3_chat"] = "plain"
    # "ella_v" needs the phoneme front end: its end-of-phoneme token is the last text id.
    layout: Layout = "llasa"

    @property
    def text_size(self) -> int:
        if self.text_vocab_size > 0:
            return self.text_vocab_size
        return PHONEME_TEXT_IDS if self.text_frontend == "phoneme" else self.bpe_size

    def validate(self) -> None:
        if self.text_frontend not in TEXT_FRONTENDS:  # --set checks it; a JSON config may not
            raise UserError(f"vocab.text_frontend must be one of {', '.join(TEXT_FRONTENDS)}, "
                            f"got {self.text_frontend!r}")
        if self.text_frontend == "phoneme" and self.tokenizer_json:
            raise UserError("vocab.text_frontend=phoneme replaces the text tokenizer; leave "
                            "vocab.tokenizer_json empty (or use text_frontend=bpe)")
        if self.tokenizer_json and self.text_vocab_size <= 0:
            raise UserError("vocab.tokenizer_json needs vocab.text_vocab_size (the tokenizer's "
                            "text ids, 128256 for Llama 3)")
        if self.text_frontend == "bpe" and not self.tokenizer_json \
                and self.text_vocab_size <= 0 and self.bpe_size < 257:
            raise UserError(f"vocab.bpe_size={self.bpe_size} is too small; the byte-level BPE "
                            "needs at least 257 (256 bytes + merges)")
        if self.layout not in LAYOUTS:
            raise UserError(f"vocab.layout must be one of {', '.join(LAYOUTS)}, got "
                            f"{self.layout!r}")
        if self.layout == "ella_v" and self.text_frontend != "phoneme":
            raise UserError("vocab.layout=ella_v interleaves phonemes with their codes; it needs "
                            "vocab.text_frontend=phoneme")
        if self.codebook_size < 1 or self.speaker_slots < 0:
            raise UserError("vocab.codebook_size must be positive and vocab.speaker_slots >= 0")


@dataclasses.dataclass(frozen=True)
class TTSDataConfig:
    """Pre-encoded tables (`emotive codec encode-split`) and packing."""

    train: str = "data/encoded/tiny_train"
    eval: str = "data/encoded/tiny_validation"  # "" = no eval
    seq_len: int = 512  # (input, target) pairs per packed row
    long_docs: Literal["truncate", "drop"] = "truncate"
    tag_dropout: float = 0.1  # probability of leaving a document's emotion/speaker tag out
    text_dropout: float = 0.0  # probability of leaving its text out (for --text-scale guidance)
    open_rows: int = 64  # rows the packer keeps open for first fit
    # ELLA-V only: each phoneme (with its end-of-phoneme token) placed this many codec frames
    # before its sound starts, so the model sees the coming phoneme while it ends the last.
    local_advance: int = 0
    # Random documents of this layout instead of tables: for `emotive scale` and benchmarks.
    synthetic: bool = False

    def validate(self) -> None:
        if self.seq_len < 8:
            raise UserError(f"data.seq_len={self.seq_len} is too short for a prompt; use >= 8")
        for name in ("tag_dropout", "text_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise UserError(f"data.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.local_advance < 0:
            raise UserError(f"data.local_advance must be >= 0 frames, got {self.local_advance}")
        if not self.synthetic and not self.train:
            raise UserError("data.train is empty; pass a table from `emotive codec "
                            "encode-split` with --set data.train=PATH (or data.synthetic=true)")


@dataclasses.dataclass(frozen=True)
class TTSConfig:
    task: str = "tts"
    model: TransformerConfig = TransformerConfig()
    tie_embeddings: bool = False
    vocab: TTSVocabConfig = TTSVocabConfig()
    data: TTSDataConfig = TTSDataConfig()
    optim: OptimConfig = OptimConfig()
    mesh: MeshConfig = MeshConfig()
    train: TrainConfig = TrainConfig()
    # Vocabulary ids whose logits the loss makes at a time (0 = all at once): the fp32
    # logits [B, T, V] are never whole (emotive.train.losses.chunked_lm_loss).
    loss_chunk: int = 0

    def validate(self) -> None:
        """The sections check themselves (TTSVocabConfig, TTSDataConfig; base.check runs
        them); this checks the top-level fields."""
        check_loss_chunk(self.loss_chunk)


def tiny() -> TTSConfig:
    """A few CPU minutes on the tiny corpus encoded by the tiny codec."""
    return TTSConfig(
        model=TransformerConfig(num_layers=2, d_model=64, num_heads=4, num_kv_heads=2,
                                head_dim=16, mlp_dim=192),
        vocab=TTSVocabConfig(bpe_size=512, speaker_slots=16),
        data=TTSDataConfig(seq_len=512),
        optim=OptimConfig(lr=3e-3, warmup_steps=30, weight_decay=0.0),
        # The 64,640-row head dominates the cost: 2 rows of 512 keep a step near a second.
        train=TrainConfig(steps=300, batch_size=2, log_every=25, eval_every=100,
                          eval_batches=12, ckpt_every=100),
    )


def small() -> TTSConfig:
    """About an hour of 2 CPU cores on the full corpus (encoded with the same codec).

    The 66k-row output head dominates: 4 rows of 512 tokens take about 4.4 s a step on 2
    cores, so 800 steps see 1.6 M tokens, about two passes over the 3-hour train split.
    """
    return TTSConfig(
        model=TransformerConfig(num_layers=4, d_model=192, num_heads=6, num_kv_heads=2,
                                head_dim=32, mlp_dim=512),
        vocab=TTSVocabConfig(bpe_size=2048, speaker_slots=64),
        data=TTSDataConfig(train="data/encoded/full_train",
                           eval="data/encoded/full_validation", seq_len=512),
        optim=OptimConfig(lr=2e-3, warmup_steps=60),
        train=TrainConfig(steps=800, batch_size=4, log_every=25, eval_every=200,
                          eval_batches=8, ckpt_every=200),
    )


def aligned() -> TTSConfig:
    """The aligned (ELLA-V) TTS on the wide corpus: phonemes interleaved with their codes,
    2.1M parameters, on tables encoded by the 1,000-code codec with eSpeak's phone timings:

        emotive data synth --preset wide --out runs/tts/wide     (then data build and
        emotive codec encode-split for train and validation; recipes/tts_aligned.sh)

    About 0.4 s a step of 8 rows of 512 tokens on 2 CPU cores; 4,000 steps are some six
    passes over the 10,200 train clips.
    """
    return TTSConfig(
        model=TransformerConfig(num_layers=4, d_model=192, num_heads=6, num_kv_heads=2,
                                head_dim=32, mlp_dim=512),
        vocab=TTSVocabConfig(text_frontend="phoneme", layout="ella_v", codebook_size=1000,
                             speaker_slots=64),
        data=TTSDataConfig(train="data/encoded/wide_train", eval="data/encoded/wide_validation",
                           seq_len=512, text_dropout=0.1),
        optim=OptimConfig(lr=2e-3, warmup_steps=100),
        train=TrainConfig(steps=4000, batch_size=8, log_every=50, eval_every=500,
                          eval_batches=8, ckpt_every=500),
    )


def aligned_medium() -> TTSConfig:
    """`aligned` at 10.4M parameters (6 layers of 384): the model-size lever."""
    cfg = aligned()
    return dataclasses.replace(cfg, model=TransformerConfig(
        num_layers=6, d_model=384, num_heads=6, num_kv_heads=2, head_dim=64, mlp_dim=1024))


def llasa_1b() -> TTSConfig:
    """Llama-3.2-1B / Llasa-1B shape over Llama 3's tokenizer and X-codec2's 65,536 codes.

    Needs --set vocab.tokenizer_json=PATH (a Llama 3 tokenizer.json) and tables encoded by
    a 65,536-code codec; 2048-token rows like Llasa's, packed.
    """
    return TTSConfig(
        model=llama_3_2_1b(),
        vocab=TTSVocabConfig(text_vocab_size=128256, codebook_size=65536,
                             prompt_style="llama3_chat"),
        data=TTSDataConfig(train="data/encoded/train", eval="data/encoded/validation",
                           seq_len=2048),
        optim=OptimConfig(lr=5e-5, warmup_steps=1000, b2=0.95, weight_decay=0.01),
        mesh=MeshConfig(data=1, fsdp=-1),
        train=TrainConfig(steps=100_000, batch_size=256, eval_every=1000, ckpt_every=1000),
        loss_chunk=LARGE_VOCAB_LOSS_CHUNK,
    )


def llama_8b() -> TTSConfig:
    """Llama-3.1-8B shape (Llasa-8B) with the same vocabulary."""
    return dataclasses.replace(llasa_1b(), model=llama_3_1_8b())


PRESETS = {"tiny": tiny, "small": small, "aligned": aligned, "aligned_medium": aligned_medium,
           "1b": llasa_1b, "8b": llama_8b}
