"""Training-time augmentations: each transform does what it says (speed, pitch, vocal tract,
band limits and EQ, room, noise, level), `augment` is a pure function of audio and seed, and
the crop and ASR pipelines are untouched with every augmentation off and keep their layout
(and resume exactly) with them on."""

import numpy as np
import pytest
import scipy.signal

from emotive import configs
from emotive.codecs import chars
from emotive.configs import base
from emotive.configs.augment import AUGMENTATIONS, AugmentConfig
from emotive.configs.ser import SerConfig
from emotive.data.pipelines import augment as aug
from emotive.data.pipelines import speech as pipeline
from emotive.data.pipelines.input import make_iterator
from emotive.errors import UserError

SR = 16000
ALL_ALWAYS = AugmentConfig(**{f"{kind}_prob": 1.0 for kind in AUGMENTATIONS})
ALL_OFF = AugmentConfig(preset="all", **{f"{kind}_prob": 0.0 for kind in AUGMENTATIONS})


def sine(hz, seconds=1.0, amplitude=0.3):
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)).astype(
        np.float32)


def peak_hz(x, lo=50.0, hi=7900.0):
    """The strongest frequency of x (8x zero-padded FFT of the Hann-windowed middle half)."""
    mid = x[x.size // 4: 3 * x.size // 4] * np.hanning(x.size // 2)
    spec = np.abs(np.fft.rfft(mid, n=8 * mid.size))
    freqs = np.fft.rfftfreq(8 * mid.size, 1 / SR)
    band = (freqs >= lo) & (freqs <= hi)
    return freqs[band][np.argmax(spec[band])]


def band_power(x, lo, hi):
    freqs, power = scipy.signal.welch(x, SR, nperseg=1024)
    return power[(freqs >= lo) & (freqs <= hi)].mean()


def db(ratio):
    return 10 * np.log10(ratio)


def rms(x):
    return np.sqrt(np.mean(np.square(np.asarray(x, np.float64))))


def voice(seconds=1.0, f0=125.0, formant=1000.0, seed=0):
    """A vowel-like signal: an impulse train at f0 through a resonance at `formant`, plus a
    little white noise, at about -14 dB RMS."""
    n = int(seconds * SR)
    pulses = np.zeros(n)
    pulses[::int(SR / f0)] = 1.0
    b, a = scipy.signal.iirpeak(formant, 5.0, fs=SR)
    x = scipy.signal.lfilter(b, a, pulses) + 0.01 * np.random.default_rng(seed).standard_normal(n)
    return (0.2 * x / rms(x)).astype(np.float32)


# ------------------------------------------------------------------------- the transforms
@pytest.mark.parametrize("factor", [0.9, 1.1, 1.037])
def test_speed_divides_the_length_and_multiplies_frequencies_by_the_factor(factor):
    x = sine(1000.0)
    y = aug.change_speed(x, factor)
    assert y.size / x.size == pytest.approx(1 / factor, rel=2e-3)
    assert peak_hz(y) == pytest.approx(1000.0 * factor, rel=2e-3)


@pytest.mark.parametrize("semitones", [3.0, -3.0, 1.5])
def test_pitch_shift_moves_a_sine_by_the_ratio_and_keeps_the_length(semitones):
    x = sine(440.0)
    y = aug.shift_pitch(x, semitones)
    assert y.shape == x.shape and y.dtype == np.float32
    assert peak_hz(y) == pytest.approx(440.0 * 2 ** (semitones / 12), rel=0.01)
    assert rms(y) == pytest.approx(rms(x), rel=0.15)  # no large level change either


def test_vtlp_warp_is_the_piecewise_linear_map_of_jaitly_and_hinton():
    f = np.linspace(0, SR / 2, 1001)
    for alpha in (0.9, 1.1):
        src = aug.vtlp_source_hz(f, alpha, 4800.0)
        low = f <= 4800.0 * min(alpha, 1.0)
        np.testing.assert_allclose(src[low], f[low] / alpha)
        assert src[-1] == pytest.approx(SR / 2) and np.all(np.diff(src) > 0)  # onto, rising


@pytest.mark.parametrize("alpha", [0.9, 1.15])
def test_vtlp_moves_the_formant_by_alpha_and_keeps_the_pitch(alpha):
    x = voice(2.0, f0=125.0, formant=1000.0)
    y = aug.warp_vocal_tract(x, alpha)
    assert y.shape == x.shape

    def formant(sig):  # the resonance: the peak of the harmonics' smoothed spectrum
        freqs, power = scipy.signal.welch(sig, SR, nperseg=256)  # 62.5 Hz: blurs harmonics
        band = (freqs > 300) & (freqs < 3000)
        return freqs[band][np.argmax(power[band])]

    def period(sig):  # the pitch period: autocorrelation peak between 2 and 20 ms
        ac = np.correlate(sig[:8000], sig[:8000], "full")[7999:]
        return 32 + np.argmax(ac[32:320])

    assert formant(y) == pytest.approx(alpha * formant(x), rel=0.07)
    assert formant(x) == pytest.approx(1000.0, rel=0.07)
    assert period(y) == period(x) == 128  # harmonics stay: 125 Hz


def test_low_pass_removes_the_energy_above_the_cutoff_and_keeps_the_rest():
    x = (0.1 * np.random.default_rng(1).standard_normal(2 * SR)).astype(np.float32)
    y = aug.filter_bands(x, aug.band_limits(None, 2000.0))
    assert y.shape == x.shape
    assert db(band_power(y, 3000, 8000) / band_power(x, 3000, 8000)) < -30
    assert abs(db(band_power(y, 100, 1200) / band_power(x, 100, 1200))) < 1.0
    phone = aug.filter_bands(x, aug.band_limits(*aug.TELEPHONE_HZ))
    assert db(band_power(phone, 0, 100) / band_power(x, 0, 100)) < -20
    assert db(band_power(phone, 5500, 8000) / band_power(x, 5500, 8000)) < -20
    assert abs(db(band_power(phone, 800, 1500) / band_power(x, 800, 1500))) < 1.0


def test_biquads_have_the_cookbook_gains():
    def gain_db(sos, hz):
        _, h = scipy.signal.sosfreqz(sos, worN=[hz], fs=SR)
        return 20 * np.log10(np.abs(h[0]))

    assert gain_db(aug.biquad("peak", 1000.0, 6.0, q=1.0), 1000.0) == pytest.approx(6.0, abs=1e-6)
    assert gain_db(aug.biquad("peak", 1000.0, -6.0, q=1.0), 6000.0) == pytest.approx(0.0, abs=0.3)
    low = aug.biquad("low_shelf", 300.0, -6.0)
    assert gain_db(low, 10.0) == pytest.approx(-6.0, abs=0.1)
    assert gain_db(low, 7000.0) == pytest.approx(0.0, abs=0.1)
    high = aug.biquad("high_shelf", 3000.0, 6.0)
    assert gain_db(high, 7990.0) == pytest.approx(6.0, abs=0.3)
    assert gain_db(high, 50.0) == pytest.approx(0.0, abs=0.1)


def test_reverb_keeps_length_and_level_and_lengthens_the_decay():
    burst = np.zeros(SR, np.float32)
    burst[:4000] = 0.3 * np.random.default_rng(2).standard_normal(4000)
    tails = {}
    for rt60 in (0.15, 0.6):
        y = aug.reverberate(burst, aug.room_impulse(np.random.default_rng(3), rt60, 0.5))
        assert y.shape == burst.shape
        assert rms(y) == pytest.approx(rms(burst), rel=1e-5)
        tails[rt60] = np.sum(np.square(y[4800:]))  # from 50 ms after the burst ends
    assert tails[0.6] > 10 * tails[0.15] > 0


def test_room_impulse_has_the_direct_path_the_wet_share_and_the_decay():
    h = aug.room_impulse(np.random.default_rng(0), 0.5, 0.3)
    assert h.size == SR // 2 and h[0] == pytest.approx(np.sqrt(0.7))
    assert np.sum(np.square(h[1:])) == pytest.approx(0.3)
    # 60 dB over RT60: the second tenth holds about 6 dB less than the first (on average).
    first, second = np.sum(np.square(h[1:800])), np.sum(np.square(h[800:1600]))
    assert db(first / second) == pytest.approx(6.0, abs=1.5)


@pytest.mark.parametrize("colour", aug.NOISE_COLOURS)
def test_noise_hits_the_requested_snr(colour):
    x = voice(1.0)
    rng = np.random.default_rng(4)
    for snr in (5.0, 17.5, 30.0):
        y = aug.add_noise(x, aug.coloured_noise(rng, x.size, colour), snr)
        assert y.shape == x.shape
        assert db(np.mean(np.square(x.astype(np.float64)))
                  / np.mean(np.square(y.astype(np.float64) - x))) == pytest.approx(snr, abs=0.5)
    cfg = AugmentConfig(noise_snr_db=(12.0, 12.0))
    y = aug.random_noise(x, rng, cfg)
    assert db(rms(x) ** 2 / rms(y - x) ** 2) == pytest.approx(12.0, abs=0.5)
    assert np.array_equal(aug.add_noise(np.zeros(100, np.float32), np.ones(100), 10.0),
                          np.zeros(100))  # silence stays silent


def test_noise_colours_tilt_the_spectrum():
    rng = np.random.default_rng(5)
    tilt = {c: band_power(aug.coloured_noise(rng, 4 * SR, c), 100, 200)
            / band_power(aug.coloured_noise(rng, 4 * SR, c), 2000, 4000) for c in aug.NOISE_COLOURS}
    assert 0.7 < tilt["white"] < 1.4  # flat
    assert 8 < tilt["pink"] < 40  # 1/f: about 20 between 150 and 3000 Hz
    assert tilt["brown"] > 150  # 1/f^2: about 400


def test_gain_changes_rms_by_the_db_asked_and_peaks_stay_below_full_scale():
    x = sine(300.0, amplitude=0.5)
    for gain in (-20.0, -6.0, 2.0):
        assert db(rms(aug.change_gain(x, gain)) ** 2 / rms(x) ** 2) == pytest.approx(gain, abs=0.01)
    loud = aug.change_gain(x, 10.0)
    assert 0.9 < np.max(np.abs(loud)) < 1.0
    squashed = aug.soft_clip(np.linspace(-5, 5, 1001))
    assert np.all(np.diff(squashed) >= 0) and np.max(np.abs(squashed)) <= 1  # monotonic
    assert np.all(np.diff(aug.soft_clip(np.linspace(-1.2, 1.2, 241))) > 0)
    quiet = np.linspace(-0.9, 0.9, 101).astype(np.float32)
    np.testing.assert_array_equal(aug.soft_clip(quiet), quiet)  # identity below the knee


# ---------------------------------------------------------------------- augment and config
def test_augment_is_a_function_of_the_audio_and_the_seed():
    x = voice(1.0)
    a = aug.augment(x, ALL_ALWAYS, np.random.default_rng(7))
    b = aug.augment(x, ALL_ALWAYS, np.random.default_rng(7))
    c = aug.augment(x, ALL_ALWAYS, np.random.default_rng(8))
    assert a.dtype == np.float32 and np.all(np.isfinite(a)) and np.max(np.abs(a)) < 1
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    for kind, fn in aug.RANDOM_AUGMENTATIONS.items():
        np.testing.assert_array_equal(fn(x, np.random.default_rng(1)),
                                      fn(x, np.random.default_rng(1)), err_msg=kind)
    np.testing.assert_array_equal(aug.augment(x, AugmentConfig(), np.random.default_rng(7)), x)
    pcm = (x * 32768).astype(np.int16)  # int16 is read as [-1, 1]
    np.testing.assert_allclose(aug.augment(pcm, AugmentConfig(), np.random.default_rng(0)),
                               pcm / 32768.0, atol=1e-7)


def test_presets_and_hand_set_probabilities():
    assert not AugmentConfig().enabled and not ALL_OFF.enabled
    every = AugmentConfig(preset="all")
    assert all(every.probability(k) > 0 for k in AUGMENTATIONS) and every.enabled
    channel = AugmentConfig(preset="channel")
    assert [k for k in AUGMENTATIONS if channel.probability(k)] == ["reverb", "noise", "eq",
                                                                     "gain"]
    assert AugmentConfig(noise_prob=0.5).probability("noise") == 0.5
    assert AugmentConfig(noise_prob=0.5).probability("speed") == 0.0
    assert AugmentConfig(speed_prob=0.5).longest_stretch == 1.1
    assert AugmentConfig(noise_prob=0.5).longest_stretch == 1.0


def test_config_overrides_round_trip_and_validation():
    cfg = configs.load("ser", "tiny", ["augment.preset=all", "augment.speed_prob=0",
                                       "augment.noise_snr_db=10,20", "augment.gain_prob=none"])
    assert cfg.augment.probability("speed") == 0.0 and cfg.augment.probability("pitch") == 0.25
    assert cfg.augment.noise_snr_db == (10.0, 20.0) and cfg.augment.gain_prob is None
    assert base.from_dict(SerConfig, base.to_dict(cfg)) == cfg
    old = base.to_dict(configs.load("ser", "tiny"))
    del old["augment"]  # a checkpoint written before the section existed
    assert base.from_dict(SerConfig, old).augment == AugmentConfig()
    for bad in ("augment.noise_prob=1.5", "augment.speed_range=1.2,0.9",
                "augment.reverb_wet=0,2", "augment.pitch_semitones=20"):
        with pytest.raises(UserError, match="augment."):
            configs.load("ser", "tiny", [bad])
    for name in ("ser", "student", "speaker", "asr"):
        for preset in configs.presets(name):
            assert configs.load(name, preset).augment == AugmentConfig(), (name, preset)


# -------------------------------------------------------------------------- the pipelines
CROP = SR // 2


def clip_source(n=10):
    """Clips of 0.3 to 2.5 s (a tone and noise, int16) with ids, emotions and speakers."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        length = int(SR * (0.3 + 0.25 * i))
        x = sine(150.0 + 10 * i, length / SR) + 0.02 * rng.standard_normal(length)
        out.append({"audio": (x * 32767).astype(np.int16), "id": f"clip{i}", "emotion": i % 8,
                    "speaker": f"s{i % 3}", "text": f"clip {i}"})
    return out


def crops(source, augment, seed=5):
    return pipeline.crop_batches(source, crop_samples=CROP, global_batch_size=4, seed=seed,
                                 speakers=["s0", "s1", "s2"], augment=augment)


def take(it, n):
    out = [next(it) for _ in range(n)]
    it.close()
    return out


@pytest.mark.parametrize("augment", [None, AugmentConfig(), ALL_OFF])
def test_crops_with_every_augmentation_off_are_todays_crops(augment):
    source = clip_source()
    for k, batch in enumerate(take(crops(source, augment), 3)):
        for r, clip_id in enumerate(batch["id"]):
            # Today's crop, derived by hand: the offset is the first draw of the rng of
            # (seed, global position).
            audio = source[int(clip_id[4:])]["audio"]
            spare = audio.size - CROP
            rng = np.random.default_rng([5, 4 * k + r])
            offset = int(rng.integers(0, spare + 1)) if spare > 0 else 0
            expected = np.zeros(CROP, np.float32)
            piece = audio[offset:offset + CROP]
            expected[:piece.size] = piece.astype(np.float32) / 32768.0
            np.testing.assert_array_equal(batch["audio"][r], expected)
            assert batch["length"][r] == piece.size


def test_augmented_crops_keep_the_layout_and_resume_exactly():
    source = clip_source()
    plain = take(crops(source, None), 2)
    it = crops(source, ALL_ALWAYS)
    first = next(it)
    state = it.get_state()
    second = next(it)
    it.close()
    resumed = crops(source, ALL_ALWAYS)
    resumed.set_state(state)
    again = next(resumed)
    resumed.close()
    for k in second:
        np.testing.assert_array_equal(second[k], again[k], err_msg=k)
    for batch, before in zip((first, second), plain):
        assert batch["audio"].shape == (4, CROP) and batch["audio"].dtype == np.float32
        np.testing.assert_array_equal(batch["id"], before["id"])  # same records, same order
        np.testing.assert_array_equal(batch["mask"], np.arange(CROP) < batch["length"][:, None])
        assert not np.any(batch["audio"][~batch["mask"]])
        assert not np.array_equal(batch["audio"], before["audio"])
        long_clips = np.array([source[int(i[4:])]["audio"].size >= 1.2 * CROP
                               for i in batch["id"]])
        assert np.all(batch["length"][long_clips] == CROP)  # speed never leaves a gap
    other_seed = take(crops(source, ALL_ALWAYS, seed=6), 1)[0]
    assert not np.array_equal(other_seed["audio"], first["audio"])


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_augment_crop_fills_the_crop_at_any_speed(factor):
    cfg = AugmentConfig(speed_prob=1.0, speed_range=(factor, factor))
    long_clip, short_clip = voice(2.0), voice(0.25)
    rng = np.random.default_rng(0)
    assert aug.augment_crop(long_clip, CROP, cfg, rng).size == CROP
    assert aug.augment_crop(short_clip, CROP, cfg, rng).size == pytest.approx(
        short_clip.size / factor, abs=2)


def test_asr_utterances_keep_their_texts_when_augmented():
    from emotive.train.tasks.asr import augmented_utterance, pack_rows

    source = [{**r, "audio": r["audio"][:SR]} for r in clip_source(8)]
    slow = AugmentConfig(speed_prob=1.0, speed_range=(0.8, 0.8), noise_prob=1.0)

    def rows(transform):
        it = make_iterator(source, global_batch_size=4, seed=1, random_transform=transform,
                           batch_fn=lambda recs: pack_rows(recs, rows=4, row_samples=6 * SR,
                                                           max_labels=40))
        return take(it, 2)

    for plain, augmented in zip(rows(None), rows(augmented_utterance(slow))):
        def texts(b):
            return sorted(chars.decode(b["labels"][r, :b["label_length"][r]])
                          for r in range(4))
        assert texts(augmented) == texts(plain)
        np.testing.assert_allclose(augmented["valid_samples"], plain["valid_samples"] / 0.8,
                                   atol=4)
