"""Search strategies on a tiny random-weight TTS LM: a stand-in codec whose audio spells out
its codes and a stand-in verifier that rewards a known code pattern, so what each strategy
finds can be checked; cache gathering equals re-prefilling; determinism; bad requests."""

import numpy as np
import pytest

from emotive.errors import UserError
from emotive.infer.tts import synthesize
from emotive.infer.tts_model import load_tts
from emotive.infer.codec import load_codec
from emotive.search.search import search, search_batch
from emotive.search.selection import Candidate, Selection, choose
from emotive.search.strategies import Strategy
from emotive.search.verifiers import Request, SpeakerVerifier, WeightedVerifier, load_verifier
from emotive.search.vetoes import Vetoes, repeat_fraction, silence_fraction

from tests.infer.test_tts import MAX_SECONDS, TEXT, runs  # noqa: F401 (the fixture)

CODES, HOP, LOW = 48, 320, 8


class SpellingCodec:
    """Decodes each code c to HOP samples of the value (c + 1) / CODES: audio spells codes."""

    hop, codebook_size, step = HOP, CODES, 0

    def decode(self, codes_BxN, frames_B=None):
        codes_BxN = np.asarray(codes_BxN)
        frames_B = np.full(len(codes_BxN), codes_BxN.shape[1]) if frames_B is None else frames_B
        mask = np.arange(codes_BxN.shape[1])[None] < np.asarray(frames_B)[:, None]
        return self.decode_masked(codes_BxN, mask, None)

    def decode_masked(self, codes_BxN, mask_BxN, positions_BxN):
        values = (np.asarray(codes_BxN) + 1.0) / CODES * np.asarray(mask_BxN)
        return np.repeat(values, HOP, axis=1).astype(np.float32)


def spelled_codes(audio_T):
    frames = audio_T[:audio_T.size // HOP * HOP].reshape(-1, HOP)[:, 0]
    return np.rint(frames * CODES - 1).astype(int)


class LowCodeVerifier:
    """Rewards the share of frames whose code is below LOW (random models: about 1/6)."""

    name = "emotion"  # stands in for the emotion verifier

    def __init__(self):
        self.calls = 0

    def score(self, audio_BxT, request, lengths_B=None, partial=False):
        self.calls += 1
        out = []
        for a, n in zip(audio_BxT, lengths_B):
            codes = spelled_codes(a[:n])
            out.append(np.mean(codes < LOW) if codes.size else 0.0)
        return np.asarray(out, np.float32)


def low_share(audio_T):
    return float(np.mean(spelled_codes(audio_T) < LOW))


@pytest.fixture(scope="module")
def lm(runs):  # noqa: F811
    return load_tts(runs[0])


REQUEST = Request(text="The quiet bird sang.", emotion="happy")
KW = dict(max_seconds=MAX_SECONDS, vetoes=None)


def test_best_of_one_is_plain_synthesis_and_best_of_n_keeps_the_best(lm, runs):  # noqa: F811
    codec = load_codec(runs[1])
    verifier = LowCodeVerifier()
    one = search(lm, codec, REQUEST, verifiers=verifier, budget=1, seed=3, **KW)
    plain = synthesize(lm, codec, REQUEST.text, emotion="happy", seed=3,
                       max_seconds=MAX_SECONDS)[0]
    np.testing.assert_array_equal(one.audio, plain)
    many = search(lm, SpellingCodec(), REQUEST, verifiers=verifier, budget=8, seed=3, **KW)
    pool = many.candidates[0]
    assert len(pool) == 8
    outcomes = [c.outcome for c in pool]
    assert pool[many.chosen[0]].outcome == max(outcomes)
    assert many.scores["emotion"] == pytest.approx(low_share(many.audio), abs=1e-6)
    assert many.compute.lm_tokens > 0 and many.compute.verifier_calls >= 1


def test_beam_with_a_process_reward_finds_the_rewarded_pattern(lm):
    verifier = LowCodeVerifier()
    kw = dict(verifiers=verifier, budget=16, seed=0, **KW)
    best = search(lm, SpellingCodec(), REQUEST, strategy="best_of_n", **kw)
    beam = search(lm, SpellingCodec(), REQUEST, strategy=Strategy("beam", step_tokens=1), **kw)
    # Base rate about 1/6; over seeds 0-5 beam reaches 0.73-0.93, best-of-16 0.27-0.40.
    assert low_share(beam.audio) >= 0.7 and low_share(beam.audio) >= low_share(best.audio) + 0.3
    assert beam.details["rounds"] and beam.details["ranked_by"] == "emotion"
    # The same LM-token budget, about: 16 rows for every step either way.
    assert beam.compute.lm_tokens <= 1.2 * best.compute.lm_tokens + 16


@pytest.mark.parametrize("name", ["beam", "prm_orm", "partial_prm"])
def test_gathered_caches_equal_re_prefilled_prefixes(lm, name):
    verifier = LowCodeVerifier()
    kw = dict(verifiers=verifier, budget=6, seed=1, **KW)
    gathered = search(lm, SpellingCodec(), REQUEST,
                      strategy=Strategy(name, beam_width=2, step_tokens=3), **kw)
    refilled = search(lm, SpellingCodec(), REQUEST,
                      strategy=Strategy(name, beam_width=2, step_tokens=3, reprefill=True), **kw)
    np.testing.assert_array_equal(gathered.audio, refilled.audio)
    assert [c.codes.tolist() for c in gathered.candidates[0]] == \
        [c.codes.tolist() for c in refilled.candidates[0]]


@pytest.mark.parametrize("name", ["best_of_n", "beam", "prm_orm", "partial_prm"])
def test_strategies_are_deterministic(lm, name):
    verifier = LowCodeVerifier()
    strategy = Strategy(name, beam_width=2, step_tokens=4)
    kw = dict(verifiers=verifier, budget=4, strategy=strategy, **KW)
    a = search(lm, SpellingCodec(), REQUEST, seed=5, **kw)
    b = search(lm, SpellingCodec(), REQUEST, seed=5, **kw)
    c = search(lm, SpellingCodec(), REQUEST, seed=6, **kw)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.scores == b.scores
    assert [x.codes.tolist() for x in a.candidates[0]] != \
        [x.codes.tolist() for x in c.candidates[0]]


def test_several_requests_share_one_batch_and_match_alone(lm):
    verifier = LowCodeVerifier()
    requests = [REQUEST, Request(text=TEXT, emotion="sad")]
    together = search_batch(lm, SpellingCodec(), requests, verifiers=verifier, budget=3,
                            seed=2, **KW)
    alone = search(lm, SpellingCodec(), requests[1], verifiers=verifier, budget=3, seed=3, **KW)
    assert len(together[1].candidates) == 3  # three sentence chunks, searched one by one
    # Request k of a batch is seeded seed + k, as it would be alone.
    np.testing.assert_array_equal(together[1].audio, alone.audio)


def test_constrained_selection_and_thresholds():
    pool = [Candidate(np.zeros(1, np.int32), True, scores={"emotion": e, "intelligibility": i},
                      outcome=(e + i) / 2) for e, i in [(0.9, 0.1), (0.6, 0.8), (0.7, 0.5),
                                                        (0.2, 0.9), (0.5, 0.6)]]
    assert choose(pool, Selection()) == 1  # the best mean
    # Most emotional among those at least as intelligible as the median (0.6): 0.6 > 0.5.
    assert choose(pool, Selection("emotion", {"intelligibility": "median"})) == 1
    assert choose(pool, Selection("emotion", {"intelligibility": 0.45})) == 2
    assert choose(pool, Selection("emotion")) == 0
    pool[1].vetoes = ["silence 90% > 60%"]
    assert choose(pool, Selection()) == 2
    for c in pool:
        c.vetoes = c.vetoes or ["x", "y"]
    assert choose(pool, Selection()) == 1  # all vetoed: the fewest reasons


def test_request_weights_and_thresholds(lm):
    low = LowCodeVerifier()

    class Length:
        name = "intelligibility"

        def score(self, audio_BxT, request, lengths_B=None, partial=False):
            return np.asarray(lengths_B, np.float32) / 1e5

    both = WeightedVerifier([low, Length()], [1.0, 1.0])
    only_low = Request(text=REQUEST.text, emotion="happy", weights={"intelligibility": 0.0})
    result = search(lm, SpellingCodec(), only_low, verifiers=both, budget=6, seed=0, **KW)
    pool = result.candidates[0]
    assert pool[result.chosen[0]].scores["emotion"] == max(c.scores["emotion"] for c in pool)
    strict = Request(text=REQUEST.text, emotion="happy", thresholds={"emotion": 2.0})
    vetoed = search(lm, SpellingCodec(), strict, verifiers=both, budget=2, seed=0, **KW)
    assert all(c.vetoes for c in vetoed.candidates[0]) and vetoed.details["notes"]


def test_vetoes_measure_what_they_say():
    rate = 16000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    half_silent = np.concatenate([tone, np.zeros(rate, np.float32)])
    assert silence_fraction(tone) == 0.0
    assert silence_fraction(half_silent) == pytest.approx(0.5, abs=0.02)
    assert repeat_fraction(np.arange(40)) == 0.0
    assert repeat_fraction(np.tile([1, 2, 3, 4, 5], 8)) > 0.8
    v = Vetoes()
    assert v.reasons(tone, np.arange(50), text="a short sentence.") == []
    why = v.reasons(np.clip(4 * tone, -1, 1), np.tile([1, 2, 3], 20), text="hi", stopped=False)
    assert any("clipped" in w for w in why) and any("repeats" in w for w in why)
    assert any("s/char" in w for w in why) and any("end token" in w for w in why)
    with pytest.raises(UserError, match="max_silence"):
        Vetoes(max_silence=2.0)


def test_bad_requests_get_one_line_errors(lm, runs):  # noqa: F811
    verifier = LowCodeVerifier()
    codec = SpellingCodec()
    cases = [
        (dict(strategy="greedy"), "unknown search strategy"),
        (dict(budget=0), "budget"),
        (dict(strategy=Strategy("beam", beam_width=8), budget=4), "wider than the budget"),
        (dict(seed=-1), "seed"),
        (dict(selection=Selection("speaker")), "selection names verifier"),
    ]
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message) as err:
            search(lm, codec, REQUEST, **{"verifiers": verifier, **KW, **kwargs})
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="unknown emotion"):
        search(lm, codec, Request(text="Hi there.", emotion="bored"), verifiers=verifier, **KW)

    class Embedder:
        def embed(self, audio_BxT, lengths_B=None):
            return np.ones((len(audio_BxT), 2), np.float32)

    with pytest.raises(UserError, match="reference recording"):
        search(lm, codec, REQUEST, verifiers=SpeakerVerifier(Embedder()), **KW)
    with pytest.raises(UserError, match="codec"):
        load_verifier("emotion", runs[1])  # a codec run is not an emotion model
    with pytest.raises(UserError, match="unknown verifier"):
        load_verifier("pitch", runs[1])


@pytest.fixture(scope="module")
def ser_run(tmp_path_factory):
    from emotive import configs
    from tests.infer.test_classify import save_random
    return save_random(configs.load("ser", "tiny", []), tmp_path_factory.mktemp("ser_run"))


def test_cli_search_writes_the_choice_and_every_candidate(runs, ser_run, tmp_path,  # noqa: F811
                                                          capsys):
    import json

    import soundfile as sf

    from emotive import cli

    base = ["search", "Green river.", "--ckpt", str(runs[0]), "--codec", str(runs[1]),
            "--emotion", "happy", "--max-seconds", str(MAX_SECONDS)]
    out, keep = tmp_path / "best.wav", tmp_path / "all"
    assert cli.main(base + ["--verifier", f"emotion={ser_run}", "--budget", "3",
                            "--strategy", "prm_orm", "--step-tokens", "5", "--out", str(out),
                            "--keep-all", str(keep)]) == 0
    printed = capsys.readouterr().out
    assert "LM tokens" in printed and "emotion" in printed
    audio, rate = sf.read(out)
    assert rate == 16000 and audio.size > 0
    table = json.loads((keep / "candidates.json").read_text())
    assert sum(c["chosen"] for c in table["candidates"]) == 1
    assert len(list(keep.glob("candidate-*.wav"))) == len(table["candidates"]) >= 3
    cases = [(["--verifier", "emotion"], "KIND=VALUE"),
             (["--verifier", f"pitch={ser_run}"], "unknown verifier"),
             ([], "name at least one verifier"),
             (["--verifier", f"speaker={ser_run}"], "needs --ref"),
             (["--verifier", f"emotion={runs[1]}"], "codec"),
             (["--verifier", f"emotion={ser_run}", "--budget", "0"], "budget"),
             (["--verifier", f"emotion={ser_run}", "--strategy", "beam", "--budget", "2",
               "--beam-width", "3"], "wider than the budget")]
    for extra, message in cases:
        assert cli.main(base + extra + ["--out", str(tmp_path / "x.wav")]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err


def test_eval_search_reports_gains_gaps_and_curves(lm, tmp_path, monkeypatch):
    import json

    from emotive.data.speech.emotions import EMOTIONS
    from emotive.evals import search as search_eval
    from emotive.infer import codec as codec_module

    clips = [{"id": f"c{i}", "text": t, "condition": "clean", "intensity": 1,
              "emotion": EMOTIONS.index(e), "audio": np.zeros(16000, np.float32)}
             for i, (t, e) in enumerate([("Green river.", "happy"), ("Oak table.", "sad"),
                                         ("Blue sky.", "angry")])]
    monkeypatch.setattr(codec_module, "iterate_split", lambda *a, **k: iter(clips))

    class Recognizer:
        def transcribe(self, batch, lengths):
            return ["green river"] * len(batch)

    class EmotionModel:  # the judge: p(happy) grows with the share of low codes
        def predict(self, batch, lengths):
            share = np.array([low_share(a[:n]) for a, n in zip(batch, lengths)])
            probs = np.full((len(batch), len(EMOTIONS)), 0.0)
            probs[:, EMOTIONS.index("happy")] = share
            probs[:, EMOTIONS.index("sad")] = 1 - share
            return {"probs": probs, "adv": np.zeros((len(batch), 3))}

    judges = search_eval.Judges(Recognizer(), EmotionModel())
    report = search_eval.evaluate(lm, SpellingCodec(), LowCodeVerifier(), judges, "unused",
                                  strategies=["best_of_n", "beam"], budgets=[1, 2, 4],
                                  limit=3, out_dir=tmp_path, max_seconds=MAX_SECONDS,
                                  vetoes=None, template=Strategy(step_tokens=3))
    assert report["requests"] == 3
    for name in ("best_of_n", "beam"):
        rows = report["strategies"][name]
        assert [r["budget"] for r in rows] == [1, 2, 4]
        assert rows[0]["gain"]["emotion"]["verifier"] == 0.0
        gain = rows[-1]["gain"]["emotion"]
        assert gain["gap"] == pytest.approx(gain["verifier"] - gain["judge"])
        assert rows[-1]["verifier"]["emotion"] >= rows[0]["verifier"]["emotion"]
    tokens = [r["compute"]["lm_tokens"] for r in report["strategies"]["best_of_n"]]
    assert tokens == sorted(tokens) and tokens[0] > 0
    assert (tmp_path / "curves.png").stat().st_size > 0
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert set(curves) == {"best_of_n", "beam"}
    assert "best_of_n" in search_eval.format_report(report)
    with pytest.raises(UserError, match="budgets"):
        search_eval.parse_budgets("1,x")


def test_search_rows_sharded_over_data_give_the_same_result(lm):
    import jax
    from jax.sharding import Mesh

    mesh = Mesh(np.asarray(jax.devices()[:4]), ("data",))
    kw = dict(verifiers=LowCodeVerifier(), budget=3, seed=4,
              strategy=Strategy("prm_orm", beam_width=1, step_tokens=4), **KW)
    one = search(lm, SpellingCodec(), REQUEST, **kw)
    sharded = search(lm, SpellingCodec(), REQUEST, mesh=mesh, **kw)
    np.testing.assert_array_equal(one.audio, sharded.audio)
