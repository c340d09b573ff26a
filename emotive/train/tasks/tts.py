"""The TTS language model task: a CausalLM over packed Llasa documents, loss on speech only.

Batches are packed rows (`emotive.data.pipelines.tts`): each row holds several documents, kept
apart by `segment_ids` (attention never crosses a document) and `positions` (rotary
positions restart per document). The loss is the mean cross-entropy over positions whose
target is a speech code or SPEECH_GENERATION_END; eval reports the same loss and the
accuracy of the argmax on those positions (speech-token accuracy).

The vocabulary. Its size follows from the config alone (`model_vocab_size`), so the model
can be built, sized (`emotive scale`) and restored without data. Its contents (the BPE
merges, the speaker names) are built once from the train table when the data is first
needed, and saved inside every checkpoint: the train iterator's state carries it, in
WORKDIR/checkpoints/<step>/data/process_0-of-<P>.json under "tts_vocab". So a checkpoint
folder is all inference needs: `emotive.infer.tts_model.load_tts(WORKDIR)` returns the
model and its `TTSVocab` (`vocab.save(dir)` writes it out as tts_vocab.json +
tokenizer.json for a release). A resumed run checks the rebuilt vocabulary against it.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import numpy as np

from emotive.codecs.phonemes import STRESS, PhonemeTokenizer
from emotive.codecs.text import TTSVocab, train_bpe
from emotive.configs.tts import TTSConfig
from emotive.data.speech.espeak import phonemize
from emotive.data.pipelines.input import make_iterator
from emotive.data.pipelines.tts import VocabCarryingIterator, build_documents, pack
from emotive.errors import UserError
from emotive.models.lm import CausalLM
from emotive.models.transformer import train_flops
from emotive.train.losses import causal_lm_loss
from emotive.train.task import DataSpec, Task


def model_vocab_size(cfg: TTSConfig) -> int:
    """Rows of the embedding and head, from the vocab section alone."""
    v = cfg.vocab
    return TTSVocab.size_for(v.text_size, v.codebook_size, len(v.emotions) * len(v.intensities),
                             v.speaker_slots, v.pad_to)


def read_table(path: str, what: str) -> dict:
    """A pre-encoded table (an `emotive codec encode-split` folder); UserError naming the
    config key and the command that makes it when it is missing or unreadable."""
    from emotive.data.pipelines.encoded import load_encoded

    try:
        return load_encoded(path)
    except UserError as exc:
        raise UserError(f"data.{what}: {exc} (or --set data.synthetic=true for `emotive "
                        "scale`)") from None


def build_vocab(cfg: TTSConfig, train_table: dict) -> TTSVocab:
    """The run's vocabulary: Llama 3's tokenizer, phonemes, or a BPE trained on the text."""
    v = cfg.vocab
    speakers = ()
    if v.speaker_slots:
        speakers = sorted({str(s) for s in np.asarray(train_table.get("speakers", []))})
    common = dict(emotions=v.emotions, intensities=v.intensities, speakers=speakers,
                  speaker_slots=v.speaker_slots, pad_to=v.pad_to, prompt_style=v.prompt_style,
                  layout=v.layout)
    if v.tokenizer_json:
        vocab = TTSVocab.from_llama3(v.tokenizer_json, v.codebook_size, **common)
        if vocab.text_vocab_size != v.text_vocab_size:
            raise UserError(f"{v.tokenizer_json} has {vocab.text_vocab_size} text ids but "
                            f"vocab.text_vocab_size={v.text_vocab_size}; set it to "
                            f"{vocab.text_vocab_size}")
    elif v.text_frontend == "phoneme":
        vocab = TTSVocab(PhonemeTokenizer(phonemize), v.codebook_size,
                         text_vocab_size=v.text_size, **common)
    else:
        texts = [str(t) for t in np.asarray(train_table["text"])]
        vocab = TTSVocab(train_bpe(texts, v.text_size), v.codebook_size,
                         text_vocab_size=v.text_size, **common)
    if vocab.vocab_size != model_vocab_size(cfg):
        raise UserError(f"vocabulary of {vocab.vocab_size} ids does not match the model's "
                        f"{model_vocab_size(cfg)}; check the vocab section")
    return vocab


def synthetic_table(cfg: TTSConfig, num_clips: int, seed: int = 0) -> dict:
    """Random clips (texts, codes, labels) for sizing and benchmarks: no data needed."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(50, 400, num_clips)
    words = ["alpha", "bravo", "delta", "echo", "golf", "hotel", "kilo", "lima"]
    texts = [" ".join(rng.choice(words, rng.integers(3, 12))) for _ in range(num_clips)]
    table = {"codes": rng.integers(0, cfg.vocab.codebook_size, lengths.sum()).astype(np.int32),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "text": np.array(texts),
            "emotion": rng.integers(0, len(cfg.vocab.emotions), num_clips).astype(np.int32),
            "intensity": rng.choice(cfg.vocab.intensities, num_clips).astype(np.int32),
            "speaker": np.full(num_clips, -1, np.int32), "speakers": np.array([], str),
            "codebook_size": np.int64(cfg.vocab.codebook_size)}
    if cfg.vocab.layout == "ella_v":  # the codes shared out evenly over the text's phonemes
        table["phones"] = np.array([json.dumps(_even_phones(t, n)) for t, n in
                                    zip(texts, lengths)])
    return table


def _even_phones(text: str, frames: int) -> list:
    """Stand-in phone timings of `text`: its phoneme units, `frames` shared out evenly."""
    tokens = [t for t in PhonemeTokenizer(phonemize).encode(text).tokens if t not in STRESS]
    names = ["_" if t in (" ", ",", ".", "?", "!") else t for t in tokens]
    share = np.diff(np.round(np.linspace(0, frames, len(names) + 1)).astype(int))
    return [[n, int(f)] for n, f in zip(names, share)]


def prepare_data(cfg: TTSConfig) -> dict:
    """Vocabulary, packed train and eval rows and their statistics (printed once)."""
    d = cfg.data
    batch = cfg.train.batch_size
    if d.synthetic:
        # About four batches of rows: a synthetic document averages some 245 tokens.
        train_table = synthetic_table(cfg, max(64, 4 * batch * d.seq_len // 245))
        # The layout of the config over a stand-in tokenizer: same ids, no files needed.
        layout = dataclasses.replace(cfg.vocab, tokenizer_json="", prompt_style="plain")
        vocab = build_vocab(dataclasses.replace(cfg, vocab=layout), train_table)
        eval_table = None
    else:
        train_table = read_table(d.train, "train")
        vocab = build_vocab(cfg, train_table)
        eval_table = read_table(d.eval, "eval") if d.eval else None
    out = {"vocab": vocab, "synthetic": d.synthetic}
    lines = []
    for split, table, multiple in (("train", train_table, 1), ("eval", eval_table, batch)):
        if table is None:
            continue
        train = split == "train"
        docs = build_documents(table, vocab, tag_dropout=d.tag_dropout if train else 0.0,
                               text_dropout=d.text_dropout if train else 0.0,
                               seed=cfg.train.seed, where=f"data.{split}",
                               advance=d.local_advance)
        rows, stats = pack(docs, d.seq_len, seed=cfg.train.seed, open_rows=d.open_rows,
                           long_docs=d.long_docs, multiple_of=multiple)
        out[split], out[f"{split}_stats"] = rows, stats
        lines.append(f"tts data {split}: {stats.describe()}; {docs.untagged_emotion} without "
                     f"an emotion tag, {docs.untagged_speaker} without a speaker tag")
        if docs.untimed:
            lines.append(f"tts data {split}: {len(docs.untimed)} clips left out, their phone "
                         f"timings missing or not matching the text (e.g. "
                         f"{', '.join(docs.untimed[:5])})")
    if len(out["train"]) < batch:
        lines.append(f"warning: {len(out['train'])} packed train rows are fewer than one "
                     f"batch of {batch}; rows repeat within a batch")
    if jax.process_index() == 0:
        print("\n".join(lines), flush=True)
    return out


def make_task(cfg: TTSConfig) -> Task:
    vocab_size = model_vocab_size(cfg)
    seq_len, batch = cfg.data.seq_len, cfg.train.batch_size
    data = functools.lru_cache(maxsize=1)(lambda: prepare_data(cfg))

    def make_model(rngs):
        return CausalLM(cfg.model, vocab_size, tie_embeddings=cfg.tie_embeddings, rngs=rngs)

    def forward(model, batch):
        return causal_lm_loss(model, batch["inputs"], batch["targets"], batch["loss_mask"],
                              chunk=cfg.loss_chunk, positions=batch["positions"],
                              segment_ids=batch["segment_ids"])

    def loss_fn(model, batch, rng):
        del rng
        loss, accuracy = forward(model, batch)
        return loss, {"accuracy": accuracy}

    def eval_fn(model, batch):
        loss, accuracy = forward(model, batch)
        return {"loss": loss, "speech_accuracy": accuracy}

    def train_iter(process_index, process_count):
        prepared = data()
        inner = make_iterator(prepared["train"], global_batch_size=batch, seed=cfg.train.seed,
                              process_index=process_index, process_count=process_count,
                              shuffle=True, num_epochs=None)
        carried = None if prepared["synthetic"] else prepared["vocab"].to_json()
        return VocabCarryingIterator(inner, carried, process_index)

    def eval_iter(process_index, process_count):
        return make_iterator(data()["eval"], global_batch_size=batch, seed=cfg.train.seed,
                             process_index=process_index, process_count=process_count,
                             shuffle=False, num_epochs=1)

    has_eval = bool(cfg.data.eval) and not cfg.data.synthetic
    return Task(
        name="tts",
        make_model=make_model,
        data=DataSpec(train=train_iter, eval=eval_iter if has_eval else None),
        losses={"model": loss_fn},
        eval_fn=eval_fn,
        flops_per_step=train_flops(cfg.model, batch, seq_len,
                                   head_params=cfg.model.d_model * vocab_size),
        throughput_unit="tokens",
        count_units=lambda b: int((np.asarray(b["segment_ids"]) > 0).sum()),
    )


def unigram_loss(cfg: TTSConfig) -> float | None:
    """Cross-entropy of eval speech targets under the train tables' code frequencies (stop
    token included, add-half smoothing): the loss of a model that ignores all context."""
    try:
        train, held = read_table(cfg.data.train, "train"), read_table(cfg.data.eval, "eval")
    except UserError:
        return None
    k = cfg.vocab.codebook_size
    counts = np.bincount(train["codes"], minlength=k).astype(np.float64)
    counts = np.append(counts, len(train["text"])) + 0.5  # the stop token once per clip
    logp = np.log(counts / counts.sum())
    targets = np.append(held["codes"], np.full(len(held["text"]), k))
    return float(-logp[targets].mean())


def report_after_training(cfg: TTSConfig, summary: dict) -> str:
    ev = summary.get("eval", summary.get("train", {}))
    uniform = float(np.log(cfg.vocab.codebook_size))
    unigram = None if cfg.data.synthetic or not cfg.data.eval else unigram_loss(cfg)
    extra = f", {unigram:.4f} for code frequencies alone" if unigram is not None else ""
    accuracy = ev.get("speech_accuracy", ev.get("accuracy", float("nan")))
    return (f"tts: eval loss {ev.get('loss', float('nan')):.4f} nats per speech token against "
            f"{uniform:.4f} for a uniform guess over {cfg.vocab.codebook_size} codes{extra}; "
            f"speech-token accuracy {accuracy:.3f}."
            f"\ncheckpoints (with the vocabulary): {summary['checkpoint_dir']}\nTensorBoard "
            f"logs: {summary['tensorboard_dir']}\nmetrics (JSONL): {summary['metrics_file']}")
