"""grain pipelines over a built TFDS split: crops with masks, length buckets, labels,
per-process shards, and exact restore of the iterator state."""

import json

import numpy as np
import pytest
import soundfile as sf

from emotive.data import builders

from emotive.data.pipelines import speech as pipeline
from emotive.data.speech.emotions import EMOTIONS
from emotive.data.builders.tfds_io import open_split
from emotive.errors import UserError

SR = 16000
CROP = 2 * SR
BUCKETS = (8000, 16000, 32000, 48000)
SPEAKERS = [f"spk{i:02d}" for i in range(1, 7)]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """A fake `emotive data synth` folder (noise bursts, 36 train clips of 0.3-3.8 s, six
    speakers, a two-clip test split) built into a TFDS dataset; returns (train split, rows)."""
    src = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(38):
        split_name = "test" if i >= 36 else "train"
        emotion = EMOTIONS[i % len(EMOTIONS)]
        seconds = 0.3 + 3.5 * ((i * 7) % 36) / 35
        audio = (0.2 * rng.standard_normal(int(seconds * SR))).clip(-1, 1)
        path = f"wavs/{split_name}/clip{i:02d}.wav"
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        sf.write(src / path, audio, SR, subtype="PCM_16")
        rows.append(dict(id=f"clip{i:02d}", path=path, split=split_name,
                         speaker=SPEAKERS[i % 6] if split_name == "train" else "spk99",
                         emotion=emotion, intensity=1 + i % 2, arousal=0.1 * (i % 9),
                         dominance=0.5, valence=0.05 * (i % 19), condition="clean",
                         text=f"text {i}"))
    (src / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path_factory.mktemp("data")
    builders.build("emotive_speech", src, out, progress=False, verbose=False)
    train = open_split(out, "emotive_speech", "train")
    originals = {r["id"]: sf.read(src / r["path"], dtype="int16")[0] for r in rows}
    return train, {r["id"]: r for r in rows}, originals


def take(it, n, close=True):
    """The next n batches; closes the iterator (grain reads hundreds of batches ahead in
    background threads until an iterator is closed or collected)."""
    batches = [next(it) for _ in range(n)]
    if close:
        it.close()
    return batches


def assert_same(batches_a, batches_b):
    for a, b in zip(batches_a, batches_b, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def crops(train, seed=3, **kw):
    return pipeline.crop_batches(train.source, crop_samples=CROP, global_batch_size=6,
                                 seed=seed, speakers=train.speakers, **kw)


def buckets(train, seed=3, **kw):
    return pipeline.bucket_batches(train.source, train.num_samples, buckets=BUCKETS,
                                   global_batch_size=4, seed=seed, window_batches=3,
                                   speakers=train.speakers, **kw)


def test_crops_have_fixed_shapes_masks_and_labels(split):
    train, rows, originals = split
    seen = []
    for batch in crops(train, num_epochs=1):
        assert batch["audio"].shape == batch["mask"].shape == (6, CROP)
        assert batch["audio"].dtype == np.float32 and batch["adv"].shape == (6, 3)
        np.testing.assert_array_equal(batch["mask"].sum(1), batch["length"])
        assert not batch["audio"][~batch["mask"]].any()
        for r in np.flatnonzero(batch["example_mask"]):
            key = batch["id"][r]
            row, wav = rows[key], originals[key] / 32768.0
            seen.append(key)
            assert batch["length"][r] == min(wav.size, CROP)
            crop = batch["audio"][r, :batch["length"][r]]
            if wav.size <= CROP:
                np.testing.assert_array_equal(crop, wav.astype(np.float32))
            else:  # a contiguous window of the clip
                starts = [o for o in np.flatnonzero(wav[:wav.size - CROP + 1] == crop[0])
                          if np.array_equal(wav[o:o + CROP].astype(np.float32), crop)]
                assert starts
            assert EMOTIONS[batch["emotion"][r]] == row["emotion"]
            assert batch["speaker"][r] == SPEAKERS.index(row["speaker"])
            assert batch["text"][r] == row["text"] and batch["intensity"][r] == row["intensity"]
            np.testing.assert_allclose(batch["adv"][r],
                                       [row["arousal"], row["dominance"], row["valence"]])
    assert sorted(seen) == sorted(k for k, r in rows.items() if r["split"] == "train")


@pytest.mark.parametrize("make", [crops, buckets], ids=["crop", "bucket"])
def test_iterator_state_restores_exactly(split, make):
    train = split[0]
    first = take(make(train), 12)  # crosses epoch boundaries (36 records)
    assert_same(take(make(train), 12), first)  # deterministic given the seed
    it = make(train, prefetch_threads=2)
    take(it, 5, close=False)
    state = it.get_state()
    it.close()
    resumed = make(train)
    resumed.set_state(state)
    assert_same(take(resumed, 7), first[5:])
    reseeded = take(make(train, seed=4), 3)
    assert not all(np.array_equal(a["audio"], b["audio"]) for a, b in zip(reseeded, first))


@pytest.mark.parametrize("make", [crops, buckets], ids=["crop", "bucket"])
def test_two_processes_see_disjoint_shards_covering_an_epoch(split, make):
    train, rows, _ = split
    extra = {} if make is crops else {"drop_remainder": False}
    per_process = [list(make(train, process_index=p, process_count=2, num_epochs=1, **extra))
                   for p in range(2)]
    ids = [[k for b in batches for k, m in zip(b["id"], b["example_mask"]) if m]
           for batches in per_process]
    assert not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == sorted(k for k, r in rows.items() if r["split"] == "train")
    assert all(b["audio"].shape[0] == (3 if make is crops else 2) for b in per_process[0])
    if make is buckets:  # every step pads to the same bucket on both processes
        assert [b["audio"].shape for b in per_process[0]] == [b["audio"].shape
                                                              for b in per_process[1]]


def test_bucketing_uses_only_configured_shapes(split):
    train = split[0]
    shapes = set()
    for batch in take(buckets(train), 30):
        length = batch["audio"].shape[1]
        shapes.add(batch["audio"].shape)
        longest = batch["length"].max()
        assert length in BUCKETS
        assert longest == length if longest >= BUCKETS[-1] else length == min(
            b for b in BUCKETS if b >= longest)
        np.testing.assert_array_equal(batch["mask"].sum(1), batch["length"])
        assert not batch["audio"][~batch["mask"]].any()
    assert shapes <= {(4, b) for b in BUCKETS} and len(shapes) >= 3


def test_plan_buckets_groups_similar_lengths():
    lengths = np.random.default_rng(1).integers(1000, 60000, size=50)
    plan = pipeline.plan_buckets(lengths, buckets=BUCKETS, batch_size=4, window_batches=100,
                                 seed=0, epoch=0, drop_remainder=False)
    rows = np.concatenate([r for _, r in plan])
    assert sorted(rows[rows >= 0]) == list(range(50)) and (rows < 0).sum() == 2
    spans = sorted((lengths[r[r >= 0]].min(), lengths[r[r >= 0]].max()) for _, r in plan)
    assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(spans, spans[1:]))  # no overlap
    again = pipeline.plan_buckets(lengths, buckets=BUCKETS, batch_size=4, window_batches=100,
                                  seed=0, epoch=0, drop_remainder=False)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(plan, again))
    epoch1 = pipeline.plan_buckets(lengths, buckets=BUCKETS, batch_size=4, window_batches=100,
                                   seed=0, epoch=1, drop_remainder=False)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(plan, epoch1))


def test_list_source_and_bad_arguments():
    source = [{"audio": np.ones(n, np.int16), "text": f"t{n}"} for n in (500, 9000, 20000, 700)]
    batch = next(pipeline.bucket_batches(source, buckets=(1000, 10000), global_batch_size=2,
                                         seed=0, window_batches=2, shuffle=False))
    assert batch["audio"].shape in {(2, 1000), (2, 10000)}
    assert (batch["emotion"] == -1).all() and not batch["has_adv"].any()
    assert (batch["speaker"] == -1).all()
    with pytest.raises(UserError, match="increasing"):
        pipeline.bucket_batches(source, buckets=(1000, 1000), global_batch_size=2, seed=0)
    with pytest.raises(UserError, match="no full batch"):
        pipeline.bucket_batches(source, buckets=(1000,), global_batch_size=8, seed=0)
    with pytest.raises(UserError, match="divisible"):
        pipeline.crop_batches(source, crop_samples=100, global_batch_size=3, seed=0,
                              process_count=2)
