"""TTS documents and packing: every token once, masks, positions; packed loss == per-document."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from emotive.codecs.text import TTSVocab, train_bpe
from emotive.configs.common import TransformerConfig
from emotive.data.speech.emotions import EMOTIONS
from emotive.data.pipelines.tts import (PackedRows, VocabCarryingIterator, build_documents,
                                   pack, read_checkpoint_vocab)
from emotive.errors import UserError
from emotive.models.lm import CausalLM

WORDS = ["oak", "table", "river", "light", "stone", "green", "quiet", "morning", "bird"]
CODEBOOK = 48


def fake_table(num_clips: int = 40, seed: int = 0, max_frames: int = 90) -> dict:
    """A pre-encoded table with random codes and labels (what load_encoded returns)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, max_frames, num_clips)
    return {"codes": rng.integers(0, CODEBOOK, lengths.sum()).astype(np.int32),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "id": np.array([f"clip{i}" for i in range(num_clips)]),
            "text": np.array([" ".join(rng.choice(WORDS, rng.integers(1, 9))) + "."
                              for _ in range(num_clips)]),
            "emotion": rng.integers(-1, len(EMOTIONS), num_clips).astype(np.int32),
            "intensity": rng.integers(0, 3, num_clips).astype(np.int32),
            "speaker": rng.integers(0, 3, num_clips).astype(np.int32),
            "speakers": np.array(["spkA", "spkB", "spkC"]), "codebook_size": np.int64(CODEBOOK)}


@pytest.fixture(scope="module")
def vocab():
    table = fake_table()
    return TTSVocab(train_bpe(table["text"].tolist(), 300), CODEBOOK, EMOTIONS[:4], (1, 2),
                    ("spkA", "spkB"), text_vocab_size=300, pad_to=64)


def unpack(rows, docs, seq_len):
    """Checks each row's structure; returns {document index: tokens seen} from the rows."""
    seen = {}
    starts = {int(d) for d in range(len(docs))}
    for r in range(len(rows)):
        row = rows[r]
        seg = row["segment_ids"]
        assert all(v.shape == (seq_len,) for v in row.values())
        used = int((seg > 0).sum())
        assert (seg[:used] > 0).all() and (seg[used:] == 0).all()  # no gaps, padding at end
        for key in ("inputs", "targets", "loss_mask", "positions"):
            assert (row[key][used:] == 0).all()
        for k, d in enumerate(rows.rows[r]):
            span = np.flatnonzero(seg == k + 1)
            assert (np.diff(span) == 1).all() and (row["positions"][span] == np.arange(
                span.size)).all()
            doc, n = docs[d], span.size
            assert (row["inputs"][span] == doc[:n]).all()
            assert (row["targets"][span] == doc[1:n + 1]).all()
            expected = (np.arange(n) + 1 >= docs.prompt_lens[d]).astype(np.float32)
            assert (row["loss_mask"][span] == expected).all()
            assert int(d) in starts and int(d) not in seen  # each document exactly once
            seen[int(d)] = n
    return seen


@pytest.mark.parametrize("seq_len,long_docs", [(400, "truncate"), (60, "truncate"),
                                               (60, "drop")])
def test_packing_properties(vocab, seq_len, long_docs):
    docs = build_documents(fake_table(), vocab, tag_dropout=0.3, seed=1)
    rows, stats = pack(docs, seq_len, seed=3, open_rows=4, long_docs=long_docs,
                       multiple_of=8)
    seen = unpack(rows, docs, seq_len)
    pairs = docs.lengths - 1
    fits = docs.prompt_lens <= seq_len
    if long_docs == "drop":
        fits &= pairs <= seq_len
    assert set(seen) == set(np.flatnonzero(fits).tolist())
    for d, n in seen.items():  # whole documents, or cut to exactly one row
        assert n == (pairs[d] if pairs[d] <= seq_len else seq_len)
    assert stats.documents == len(seen) and stats.dropped == len(docs) - len(seen)
    assert stats.truncated == sum(pairs[d] > seq_len for d in seen)
    assert len(rows) % 8 == 0
    filled = sum(int((rows[r]["segment_ids"] > 0).sum()) for r in range(len(rows)))
    assert stats.efficiency == pytest.approx(filled / (len(rows) * seq_len))
    if seq_len == 400:  # the rows that hold documents are well filled
        nonempty = sum(len(r) > 0 for r in rows.rows)
        assert stats.truncated == 0 and filled / (nonempty * seq_len) > 0.8


def test_documents_follow_the_prompt(vocab):
    table = fake_table(6)
    docs = build_documents(table, vocab)
    for c in range(6):
        doc, p = docs[c], docs.prompt_lens[c]
        assert doc[p - 1] == vocab.speech_start and doc[-1] == vocab.speech_end
        codes = table["codes"][table["offsets"][c]:table["offsets"][c + 1]]
        assert (vocab.ids_to_codes(doc[p:-1]) == codes).all()
        text = vocab.decode_text(doc[:p])
        assert str(table["text"][c]) in text
        emotion, level = int(table["emotion"][c]), int(table["intensity"][c])
        tagged = 0 <= emotion < 4 and level in (1, 2)
        assert (f"<|emotion:{EMOTIONS[emotion]}:{level}|>" in text) == tagged
    assert docs.untagged_emotion == sum(
        not (0 <= e < 4 and i in (1, 2)) for e, i in zip(table["emotion"][:6],
                                                         table["intensity"][:6]))


def test_bad_tables(vocab):
    table = fake_table(5)
    table["text"][2] = " ... "
    with pytest.raises(UserError, match="clip2: text '...' has only punctuation"):
        build_documents(table, vocab)
    with pytest.raises(UserError, match="vocab.codebook_size=48"):
        build_documents(fake_table(5), TTSVocab(vocab.tokenizer, 64))
    with pytest.raises(UserError, match="lacks"):
        build_documents({"codes": np.zeros(3)}, vocab)
    with pytest.raises(UserError, match="raise data.seq_len"):
        pack(build_documents(fake_table(5), vocab), 8)


def test_packed_loss_equals_per_document_loss(vocab):
    """Segment ids and restarting positions make a packed row compute exactly what each
    document computes alone in its own padded row (fp32)."""
    cfg = TransformerConfig(num_layers=2, d_model=32, num_heads=4, num_kv_heads=2,
                            head_dim=8, mlp_dim=64)
    graphdef, state = nnx.split(CausalLM(cfg, vocab.vocab_size, rngs=nnx.Rngs(0)))

    @jax.jit
    def row_losses(state, batch):  # (CE summed over loss positions, loss positions) per row
        logits = nnx.merge(graphdef, state)(batch["inputs"], positions=batch["positions"],
                                             segment_ids=batch["segment_ids"])
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        return (ce * batch["loss_mask"]).sum(-1), batch["loss_mask"].sum(-1)

    docs = build_documents(fake_table(12, seed=5, max_frames=40), vocab)
    packed, _ = pack(docs, 128, seed=0, open_rows=2)
    alone = PackedRows(docs, 128, [np.array([d]) for d in range(len(docs))], docs.lengths - 1)
    assert max(len(r) for r in packed.rows) > 2  # rows really hold several documents
    rows = [packed[r] for r in range(len(packed))] + [alone[r] for r in range(len(alone))]
    sums, counts = row_losses(state, {k: jnp.asarray(np.stack([r[k] for r in rows]))
                                      for k in rows[0]})
    n = len(packed)
    assert float(counts[:n].sum()) == float(counts[n:].sum())
    assert float(sums[:n].sum()) == pytest.approx(float(sums[n:].sum()), rel=1e-5)


class _Inner:
    def __init__(self):
        self.position = 0

    def __next__(self):
        self.position += 1
        return {"x": self.position}

    def get_state(self):
        return {"position": self.position}

    def set_state(self, state):
        self.position = state["position"]


def test_checkpoint_state_carries_the_vocabulary(vocab, tmp_path):
    it = VocabCarryingIterator(_Inner(), vocab.to_json())
    next(it), next(it)
    state = it.get_state()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "process_0-of-1.json").write_bytes(state)
    assert read_checkpoint_vocab(tmp_path).meta() == vocab.meta()
    fresh = VocabCarryingIterator(_Inner(), vocab.to_json())
    fresh.set_state(state)
    assert next(fresh) == {"x": 3}
    other = TTSVocab(vocab.tokenizer, CODEBOOK, EMOTIONS[:3], text_vocab_size=300)
    changed = VocabCarryingIterator(_Inner(), other.to_json())
    changed.set_state(state)  # never raises while restoring (see the class docstring)
    with pytest.raises(UserError, match="differs from the one in the checkpoint"):
        next(changed)
    assert json.loads(VocabCarryingIterator(_Inner(), vocab.to_json(), 1).get_state())[
        "tts_vocab"] is None  # only process 0 writes it


def test_text_dropout_leaves_the_text_out_of_that_share_of_documents(vocab):
    from emotive.data.pipelines.tts import drop_condition

    table = fake_table(200)
    start = vocab.special["TEXT_UNDERSTANDING_START"]
    end = vocab.special["TEXT_UNDERSTANDING_END"]
    full = build_documents(table, vocab, seed=3)
    dropped = build_documents(table, vocab, text_dropout=0.3, seed=3)
    empty = 0
    for d in range(len(table["text"])):
        a = full.tokens[full.offsets[d]:full.offsets[d + 1]]
        b = dropped.tokens[dropped.offsets[d]:dropped.offsets[d + 1]]
        prompt_a, prompt_b = list(a[:full.prompt_lens[d]]), list(b[:dropped.prompt_lens[d]])
        np.testing.assert_array_equal(a[full.prompt_lens[d]:], b[dropped.prompt_lens[d]:])
        if prompt_a != prompt_b:  # text gone, all else kept
            empty += 1
            assert prompt_b == drop_condition(vocab, prompt_a, "text")
            assert prompt_b[prompt_b.index(start) + 1] == end
    assert 0.2 < empty / len(table["text"]) < 0.4


def test_drop_condition_removes_exactly_the_emotion_tag_or_the_text(vocab):
    from emotive.data.pipelines.tts import drop_condition

    prompt = vocab.prompt_ids("Hello there.", emotion=vocab.emotions[0], intensity=2)
    tag = vocab.emotion_tag(vocab.emotions[0], 2)
    no_emotion = drop_condition(vocab, prompt, "emotion")
    assert tag in prompt and tag not in no_emotion and len(no_emotion) == len(prompt) - 1
    no_text = drop_condition(vocab, prompt, "text")
    text_ids = vocab.encode_text("Hello there.")
    assert len(no_text) == len(prompt) - len(text_ids) and no_text[-1] == vocab.speech_start
