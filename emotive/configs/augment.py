"""The recognisers' training-time audio augmentations: one probability and range per kind.

`AugmentConfig` is the `augment` section of the ser, student, speaker and asr experiments;
`emotive.data.pipelines.augment` applies it to training crops and utterances (never to
evaluation). Each kind has a probability `<kind>_prob` (the share of training clips it
touches) and its ranges. A probability left at None follows `preset`:

    none     every kind off (the default of every experiment's presets: batches unchanged)
    channel  the kinds that keep the voice (eq, reverb, noise, gain) at PRESET_PROBS
    all      every kind at PRESET_PROBS

A number set by hand wins over the preset, in both directions:

    --set augment.preset=all                       everything on
    --set augment.noise_prob=0.5                   noise alone
    --set augment.preset=all augment.speed_prob=0  everything but speed

The voice-changing kinds (speed, pitch, vtlp) make a clip sound like another speaker, so the
speaker experiment should use `channel` (its own `data.speed_factors` turns speed into new
speaker classes instead).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from emotive.configs.common import SAMPLE_RATE
from emotive.errors import UserError

# In the order they are applied: the voice, then the room, the microphone's noise, the
# channel, the recording level (last, so its soft clipping bounds the output).
AUGMENTATIONS = ("speed", "pitch", "vtlp", "reverb", "noise", "eq", "gain")
VOICE_AUGMENTATIONS = ("speed", "pitch", "vtlp")
# Probability of each kind under `preset=all` (and of the channel kinds under `channel`):
# about one clip in five passes untouched by the six kinds a recogniser can hear (gain is
# mostly undone by the models' per-utterance normalisation; see the gain fields).
PRESET_PROBS = {"speed": 0.25, "pitch": 0.25, "vtlp": 0.25, "reverb": 0.25, "noise": 0.25,
                "eq": 0.25, "gain": 0.5}
NYQUIST = SAMPLE_RATE / 2


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (None = the preset's) and ranges of the training-time augmentations.

    speed: resample by a factor drawn from `speed_range` (> 1 faster: shorter and higher).
    pitch: shift by up to +-`pitch_semitones` keeping the duration (resample, then a
        phase-vocoder time stretch back to the length).
    vtlp: warp the spectral envelope (formants) by alpha from `vtlp_range` (> 1: formants
        up, a shorter vocal tract), piecewise linearly with the bend at `vtlp_boundary_hz`
        (Jaitly & Hinton 2013), harmonics kept: a new voice at the same pitch.
    reverb: a synthetic room (direct path + exponentially decaying noise, RT60 from
        `reverb_rt60`), mixed with a wet share from `reverb_wet`, level kept.
    noise: white, pink or brown noise at an SNR (dB) from `noise_snr_db`.
    eq: a telephone band (300-3400 Hz) for `telephone_share` of the clips, otherwise a
        high-pass (cutoff from `highpass_hz`) and a low-pass (from `lowpass_hz`) each half
        the time; then 1 to `eq_bands` peaking/shelf filters of +-`eq_gain_db`.
    gain: a level change in dB from `gain_db` with soft clipping above 0.9 of full scale.
        Every recogniser standardises each row's waveform (wav2vec2/Wav2Small input
        normalisation, the log-mel encoder's, the ASR packer's), so a gain alone is undone
        before the network: what remains is the clipping of the loud end.
    """

    preset: Literal["none", "channel", "all"] = "none"
    speed_prob: float | None = None
    speed_range: tuple[float, float] = (0.9, 1.1)
    pitch_prob: float | None = None
    pitch_semitones: float = 3.0
    vtlp_prob: float | None = None
    vtlp_range: tuple[float, float] = (0.9, 1.1)
    vtlp_boundary_hz: float = 4800.0
    reverb_prob: float | None = None
    reverb_rt60: tuple[float, float] = (0.1, 0.8)
    reverb_wet: tuple[float, float] = (0.2, 0.8)
    noise_prob: float | None = None
    noise_snr_db: tuple[float, float] = (5.0, 30.0)
    eq_prob: float | None = None
    telephone_share: float = 0.2
    highpass_hz: tuple[float, float] = (50.0, 400.0)
    lowpass_hz: tuple[float, float] = (2500.0, 7500.0)
    eq_bands: int = 3
    eq_gain_db: float = 6.0
    gain_prob: float | None = None
    gain_db: tuple[float, float] = (-20.0, 10.0)

    def probability(self, kind: str) -> float:
        """The share of training clips that get augmentation `kind` (one of AUGMENTATIONS)."""
        value = getattr(self, f"{kind}_prob")
        if value is not None:
            return value
        if self.preset == "all" or (self.preset == "channel"
                                    and kind not in VOICE_AUGMENTATIONS):
            return PRESET_PROBS[kind]
        return 0.0

    @property
    def enabled(self) -> bool:
        """Whether any augmentation can happen (False: the pipelines take their plain path)."""
        return any(self.probability(kind) > 0 for kind in AUGMENTATIONS)

    @property
    def longest_stretch(self) -> float:
        """Source samples per output sample at most (the largest speed factor, or 1), so a
        crop of n samples needs about n * longest_stretch samples before augmenting."""
        return max(1.0, self.speed_range[1]) if self.probability("speed") > 0 else 1.0

    def validate(self) -> None:
        if self.preset not in ("none", "channel", "all"):  # --set checks; JSON may not
            raise UserError(f"augment.preset must be none, channel or all, got {self.preset!r}")
        for kind in AUGMENTATIONS:
            p = getattr(self, f"{kind}_prob")
            if p is not None and not 0 <= p <= 1:
                raise UserError(f"augment.{kind}_prob must be in [0, 1] (or none: the "
                                f"preset's), got {p}")
        ranges = {"speed_range": (0.5, 2.0), "vtlp_range": (0.7, 1.4), "reverb_rt60": (0.01, 3.0),
                  "reverb_wet": (0.0, 1.0), "noise_snr_db": (-20.0, 100.0),
                  "highpass_hz": (1.0, NYQUIST), "lowpass_hz": (1.0, NYQUIST),
                  "gain_db": (-60.0, 40.0)}
        for name, (lo, hi) in ranges.items():
            a, b = getattr(self, name)
            if not lo <= a <= b <= hi:
                raise UserError(f"augment.{name} must be two values lo,hi with {lo:g} <= lo "
                                f"<= hi <= {hi:g}, got {a:g},{b:g}")
        if not 0 <= self.pitch_semitones <= 12:
            raise UserError(f"augment.pitch_semitones must be in [0, 12], got "
                            f"{self.pitch_semitones}")
        if not 0 < self.vtlp_boundary_hz < NYQUIST:
            raise UserError(f"augment.vtlp_boundary_hz must be in (0, {NYQUIST:g}), got "
                            f"{self.vtlp_boundary_hz}")
        if not 0 <= self.telephone_share <= 1 or self.eq_bands < 0 or self.eq_gain_db < 0:
            raise UserError(f"augment.telephone_share must be in [0, 1], eq_bands and "
                            f"eq_gain_db >= 0; got {self.telephone_share}, {self.eq_bands}, "
                            f"{self.eq_gain_db}")
