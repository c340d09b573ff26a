"""CTC forced alignment: known paths on constructed emissions, agreement with an exhaustive
search over every CTC labelling, durations at the codec's rate, the boundary error, and
align_clips and `emotive codec encode-split --align-asr` end to end on a random tiny phoneme
recogniser."""

import itertools
import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from emotive import cli, configs
from emotive.codecs.chars import ctc_collapse
from emotive.codecs.phonemes import INVENTORY, WORD
from emotive.configs import base
from emotive.data.builders import build
from emotive.data.pipelines.encoded import load_encoded
from emotive.data.speech.phoneme_targets import PhonemeTargets
from emotive.errors import UserError
from emotive.infer.align import (AlignmentError, align_clips, boundary_error_ms,
                                 ctc_forced_align, failure_lines, paired_starts,
                                 phone_durations, target_names)
from emotive.infer.asr import Recognizer
from emotive.models.asr import CtcRecognizer
from emotive.models.codec import Codec
from emotive.train.checkpoint import Checkpointer
from tests.conftest import MICRO, numpy_init


def peaked(labels, vocab: int = 4, p: float = 0.9) -> np.ndarray:
    """Log-probs [T, V]: probability p on labels[t], the rest shared evenly."""
    out = np.full((len(labels), vocab), np.log((1 - p) / (vocab - 1)))
    out[np.arange(len(labels)), labels] = np.log(p)
    return out


def test_peaked_emissions_give_the_known_path():
    frame_labels = [0, 0, 1, 1, 1, 0, 2, 2, 3, 0]
    lp = peaked(frame_labels)
    found = ctc_forced_align(lp, [1, 2, 3])
    labels_S = np.array([0, 1, 0, 2, 0, 3, 0])
    assert (labels_S[found.states_T] == frame_labels).all()
    assert found.states_T.tolist() == [0, 0, 1, 1, 1, 2, 3, 3, 5, 6]
    assert found.spans_Nx2.tolist() == [[2, 5], [6, 8], [8, 9]]
    assert found.score == pytest.approx(lp[np.arange(10), frame_labels].sum())


def test_a_long_sequence_gives_its_known_path():
    # 2 * 150 + 1 states: more than an int8 back-pointer counts, as in a real sentence.
    rng = np.random.default_rng(1)
    targets = 1 + np.cumsum(rng.integers(1, 39, 150)) % 39  # ids 1..39, no two alike in a row
    frame_labels = np.concatenate([[t] * int(rng.integers(1, 4)) + [0] * int(rng.integers(0, 2))
                                   for t in targets])
    found = ctc_forced_align(peaked(frame_labels, vocab=40), targets)
    labels_S = np.zeros(2 * len(targets) + 1, int)
    labels_S[1::2] = targets
    assert (labels_S[found.states_T] == frame_labels).all()


def test_repeats_need_a_blank_between_them():
    # Every frame prefers the token, but two equal targets cannot share a run.
    found = ctc_forced_align(peaked([1, 1, 1]), [1, 1])
    assert found.states_T.tolist() == [1, 2, 3]
    assert found.spans_Nx2.tolist() == [[0, 1], [2, 3]]
    longer = ctc_forced_align(peaked([1, 1, 1, 1, 1]), [1, 1])
    assert 2 in longer.states_T.tolist()  # the blank between them is on the path


def test_a_skip_goes_straight_from_one_target_to_the_next():
    found = ctc_forced_align(peaked([1, 1, 2, 2]), [1, 2])
    assert found.states_T.tolist() == [1, 1, 3, 3]  # never in the blank between
    assert found.spans_Nx2.tolist() == [[0, 2], [2, 4]]


def test_too_short_or_impossible_input_raises():
    with pytest.raises(AlignmentError, match="2 frames are too few .* at least 3"):
        ctc_forced_align(peaked([1, 1]), [1, 1])
    with pytest.raises(AlignmentError, match="too few"):
        ctc_forced_align(np.zeros((0, 4)), [1])
    impossible = peaked([1, 2, 2, 0])
    impossible[:, 3] = -np.inf
    with pytest.raises(AlignmentError, match="finite"):
        ctc_forced_align(impossible, [1, 3])
    with pytest.raises(AlignmentError, match="no targets"):
        ctc_forced_align(peaked([1]), [])
    with pytest.raises(ValueError, match="blank"):
        ctc_forced_align(peaked([1, 0]), [1, 0])


def test_uniform_emissions_give_a_valid_monotonic_path():
    targets = np.array([3, 3, 1, 2, 2, 2, 1])
    frames, vocab = 20, 4
    found = ctc_forced_align(np.full((frames, vocab), -np.log(vocab)), targets)
    states = found.states_T
    assert states[0] in (0, 1) and states[-1] in (2 * len(targets) - 1, 2 * len(targets))
    steps = np.diff(states)
    assert set(steps.tolist()) <= {0, 1, 2}
    labels_S = np.zeros(2 * len(targets) + 1, int)
    labels_S[1::2] = targets
    for t in np.flatnonzero(steps == 2):  # a skip lands on a target unlike the one before
        assert states[t + 1] % 2 == 1 and labels_S[states[t + 1]] != labels_S[states[t]]
    assert ctc_collapse(labels_S[states]).tolist() == targets.tolist()
    spans = found.spans_Nx2
    assert (spans[:, 0] < spans[:, 1]).all() and (spans[1:, 0] >= spans[:-1, 1]).all()
    assert found.score == pytest.approx(-frames * np.log(vocab))


def _best_by_exhaustion(lp: np.ndarray, targets) -> tuple[float, tuple]:
    """The best labelling of every frame whose CTC collapse is `targets`, by trying all."""
    frames, vocab = lp.shape
    best = (-np.inf, ())
    for labels in itertools.product(range(vocab), repeat=frames):
        if ctc_collapse(np.array(labels)).tolist() == list(targets):
            best = max(best, (float(lp[np.arange(frames), labels].sum()), labels))
    return best


@pytest.mark.parametrize("targets,frames", [([1], 4), ([1, 2], 5), ([1, 1], 5),
                                            ([2, 1, 2], 6), ([1, 1, 2], 6), ([2, 2, 2], 6)])
def test_viterbi_agrees_with_an_exhaustive_search(targets, frames):
    rng = np.random.default_rng(len(targets) * 10 + frames)
    for _ in range(3):
        logits = rng.standard_normal((frames, 3)) * 2
        lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        score, labels = _best_by_exhaustion(lp, targets)
        found = ctc_forced_align(lp, targets)
        labels_S = np.zeros(2 * len(targets) + 1, int)
        labels_S[1::2] = targets
        assert found.score == pytest.approx(score)
        assert labels_S[found.states_T].tolist() == list(labels)


def test_durations_are_at_the_codec_rate_and_sum_to_its_frames():
    ids = [INVENTORY.index("ð"), INVENTORY.index("ə"), WORD, INVENTORY.index("k")]
    assert target_names(ids) == ["ð", "ə", "_", "k"]
    # 10 ms recogniser slots (160 samples) to 20 ms codec frames (320): starts 2, 6, 8, 12
    # slots are frames 1, 3, 4, 6; the leading frame goes to the first phone.
    spans = np.array([[2, 5], [6, 7], [8, 9], [12, 14]])
    phones = json.loads(phone_durations(spans, ids, 160, 320, 9))
    assert phones == [["ð", 3], ["ə", 1], ["_", 2], ["k", 3]]
    rng = np.random.default_rng(0)
    for _ in range(20):
        n, slots = int(rng.integers(1, 8)), int(rng.integers(10, 60))
        starts = np.sort(rng.choice(slots, n, replace=False))
        spans = np.stack([starts, starts + 1], 1)
        codec_frames = int(rng.integers(1, 40))
        counts = [f for _, f in json.loads(phone_durations(
            spans, [INVENTORY.index("a")] * n, float(rng.choice([160, 320, 640])), 320,
            codec_frames))]
        assert sum(counts) == codec_frames and min(counts) >= 0 and len(counts) == n


def test_boundary_error_counts_the_phoneme_starts_in_ms():
    aligned = [["ð", 3], ["ə", 2], ["_", 1], ["k", 4]]          # starts 0, 3, 6
    reference = [["ð", 2], ["ˈə", 4], ["k", 3], ["_", 1]]       # starts 0, 2, 6
    assert boundary_error_ms(aligned, json.dumps(reference)) == pytest.approx(10.0)
    assert boundary_error_ms(aligned, reference, frame_ms=10.0) == pytest.approx(5.0)
    other = [["ð", 2], ["ɪ", 4], ["ə", 1], ["k", 3]]             # one phoneme more
    with pytest.raises(ValueError, match="differ"):
        boundary_error_ms(aligned, other)
    starts_a, starts_r = paired_starts(aligned, other)
    assert starts_a.tolist() == [3, 6] and starts_r.tolist() == [6, 7]


def _fake_phonemize(texts, voice):
    words = {"the": "ð_ə", "cat": "k_ˈæ_t", "sat": "s_ˈæ_t"}
    return [" ".join(words[w] for w in text.split()) for text in texts]


def test_align_clips_reports_every_clip_and_refuses_characters():
    cfg = configs.load("asr", "tiny", ["model.targets=phonemes"])
    rec = Recognizer(cfg, numpy_init(lambda: CtcRecognizer(cfg.model, rngs=nnx.Rngs(0))))
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    done = align_clips(rec, [audio, audio[:800], audio], ["The cat sat.", "The cat sat.", ""],
                       [50, 3, 50], targets=PhonemeTargets(_fake_phonemize))
    phones = json.loads(done[0].phones)
    assert done[0].failure == "" and [n for n, _ in phones] == [
        "ð", "ə", "_", "k", "æ", "t", "_", "s", "æ", "t"]
    assert sum(f for _, f in phones) == 50
    assert done[1].phones == "" and "too few" in done[1].failure
    assert "no phonemes" in done[2].failure
    assert failure_lines(["a", "b", "c"], done) == [f"b: {done[1].failure}",
                                                    f"c: {done[2].failure}"]
    log_probs, slots = rec.log_probs(audio[None])
    assert slots.tolist() == [50] and np.allclose(np.exp(log_probs[0, :50]).sum(-1), 1, atol=1e-4)

    chars_cfg = configs.load("asr", "tiny")
    chars = Recognizer(chars_cfg, numpy_init(lambda: CtcRecognizer(chars_cfg.model,
                                                                   rngs=nnx.Rngs(0))))
    with pytest.raises(UserError, match="phoneme recogniser"):
        align_clips(chars, [audio], ["The cat sat."], [50])


def _save_run(root, experiment, overrides, make, params_of):
    """A checkpoint of random weights as `emotive train EXPERIMENT` writes it."""
    cfg = configs.load(experiment, "tiny", overrides)
    model = numpy_init(lambda: make(cfg))
    ckpt = Checkpointer(root / "checkpoints", async_save=False)
    ckpt.save(3, {"step": jnp.int32(3), "params": params_of(nnx.state(model, nnx.Param)
                                                               .to_pure_dict())},
              None, base.to_dict(cfg))
    ckpt.close()
    return root


def test_encode_split_aligns_clips_without_timings_and_lists_failures(
        tiny_speech_data, tmp_path, capsys):
    # The tiny corpus without its eSpeak timings, as a real dataset comes; one validation
    # clip's text made far longer than its audio can say, so its alignment fails.
    corpus = shutil.copytree(tiny_speech_data.parent / "corpus", tmp_path / "corpus")
    rows = [json.loads(line) for line in (corpus / "metadata.jsonl").read_text().splitlines()]
    long_id = next(r["id"] for r in rows if r["split"] == "validation")
    for r in rows:
        r.pop("phones", None)
        r["text"] = " ".join([r["text"]] * 30) if r["id"] == long_id else r["text"]
    (corpus / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build("emotive_speech", corpus, tmp_path / "data", progress=False, verbose=False)
    codec_run = _save_run(tmp_path / "codec", "codec", MICRO,
                          lambda cfg: Codec(cfg.model, rngs=nnx.Rngs(0)),
                          lambda p: {"generator": {"codec": p}})
    asr_run = _save_run(tmp_path / "asr", "asr", ["model.targets=phonemes"],
                        lambda cfg: CtcRecognizer(cfg.model, rngs=nnx.Rngs(0)),
                        lambda p: {"model": p, "rest": {}})
    out = tmp_path / "codes"
    assert cli.main(["codec", "encode-split", "--ckpt", str(codec_run), "--data-dir",
                     str(tmp_path / "data"), "--split", "validation", "--out", str(out),
                     "--align-asr", str(asr_run)]) == 0
    printed = capsys.readouterr().out
    assert "4 clips" in printed and "3 with phone timings" in printed
    assert f"  {long_id}: " in printed and "too few" in printed
    assert (out / "alignment_failures.txt").read_text().startswith(f"{long_id}: ")
    table = load_encoded(out)
    for c, clip_id in enumerate(table["id"]):
        frames = int(table["offsets"][c + 1] - table["offsets"][c])
        if clip_id == long_id:
            assert table["phones"][c] == ""
        else:  # the phonemes of the text in the speaker's accent, in frames summing to codes
            phones = json.loads(table["phones"][c])
            assert sum(f for _, f in phones) == frames and len(phones) > 5

    chars_run = _save_run(tmp_path / "chars", "asr", [],
                          lambda cfg: CtcRecognizer(cfg.model, rngs=nnx.Rngs(0)),
                          lambda p: {"model": p, "rest": {}})
    assert cli.main(["codec", "encode-split", "--ckpt", str(codec_run), "--data-dir",
                     str(tmp_path / "data"), "--split", "validation", "--out", str(out),
                     "--align-asr", str(chars_run)]) == 2
    assert "needs a phoneme recogniser" in capsys.readouterr().err
