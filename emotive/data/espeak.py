"""Offline speech synthesis with eSpeak NG, driven through ctypes.

The `espeakng-loader` package ships libespeak-ng and its voice data, so no
system package is needed. The library keeps all of its state in process-wide
globals, and some of that state (the pitch "flutter" position, the echo and
gain-control memories) carries over from one utterance to the next, which
would make a clip's samples depend on what was spoken before it. To make
every call reproducible on its own, `Synthesizer.synth` runs each utterance in
a short-lived forked child of a process that has initialised the library once:
every child starts from the same freshly initialised state. Forking costs a
few milliseconds, far less than the rest of a clip's processing.

Because the library is process-global, parallel synthesis must use separate
processes (multiprocessing with the 'spawn' or 'forkserver' context); threads
would share one engine. POSIX only (it needs os.fork).
"""

import ctypes
import math
import os
import struct
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from emotive.errors import UserError

SAMPLE_RATE = 16_000  # what synth() returns

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7

# Child exit protocol: a little-endian int32 status, then int16 samples.
_OK, _BAD_VOICE, _SYNTH_FAILED = 0, 1, 2

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# Allowed parameter ranges (eSpeak's own limits, rate in words per minute).
LIMITS = {
    'rate': (80, 450),
    'pitch': (0, 100),
    'pitch_range': (0, 100),
    'volume': (0, 200),
    'word_gap': (0, 100),
}


class _Engine:
    """The one initialised libespeak-ng of this process."""

    def __init__(self):
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a packaging problem
            raise UserError('espeakng-loader is not installed; run `pip install espeakng-loader`') from exc
        self.data_path = Path(espeakng_loader.get_data_path())
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.native_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_path).encode(), _INITIALIZE_DONT_EXIT)
        if self.native_rate <= 0:
            raise RuntimeError(f'espeak_Initialize failed with {self.native_rate}')
        self.chunks: list[bytes] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: C holds a raw pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib
        self.libc = ctypes.CDLL(None)  # some noise sources in eSpeak call libc rand()
        self.languages = {p.name.lower() for p in (self.data_path / 'lang').rglob('*') if p.is_file()}
        self.variants = {p.name for p in (self.data_path / 'voices' / '!v').iterdir() if p.is_file()}

    def _collect(self, wav, n, _events):
        if n > 0:
            self.chunks.append(ctypes.string_at(wav, 2 * n))
        return 0  # 0 = keep going

    def run_in_child(self, text: bytes, voice: bytes, params: dict[int, int], seed: int) -> bytes:
        """Synthesise in a forked child; return status + int16 bytes written by the child."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into the caller's stack
            status = 3
            try:
                os.close(read_fd)
                out = self._synthesise(text, voice, params, seed)
                with os.fdopen(write_fd, 'wb') as f:
                    f.write(out)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        with os.fdopen(read_fd, 'rb') as f:
            payload = f.read()
        _, wait_status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(wait_status) != 0 or len(payload) < 4:
            raise RuntimeError('the eSpeak synthesis child process failed')
        return payload

    def _synthesise(self, text: bytes, voice: bytes, params: dict[int, int], seed: int) -> bytes:
        if self.lib.espeak_SetVoiceByName(voice) != 0:
            return struct.pack('<i', _BAD_VOICE)
        for key, value in params.items():
            self.lib.espeak_SetParameter(key, value, 0)
        self.lib.espeak_ng_SetRandSeed(seed)
        self.libc.srand(seed & 0xFFFFFFFF)
        self.chunks.clear()
        err = self.lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            return struct.pack('<i', _SYNTH_FAILED)
        return struct.pack('<i', _OK) + b''.join(self.chunks)


_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


class Synthesizer:
    """Text to 16 kHz float32 speech with eSpeak NG; every call is reproducible on its own.

    All instances in one process share the one initialised library.
    """

    def __init__(self):
        self._engine = _engine()
        rate = self._engine.native_rate
        g = math.gcd(SAMPLE_RATE, rate)
        self._up, self._down = SAMPLE_RATE // g, rate // g
        self.native_rate = rate

    @property
    def languages(self) -> set[str]:
        """Lower-case eSpeak language names available (e.g. 'en-us', 'en-gb-scotland')."""
        return set(self._engine.languages)

    @property
    def variants(self) -> set[str]:
        """Voice variant names available after a '+' (e.g. 'm3', 'f2', 'klatt')."""
        return set(self._engine.variants)

    def check_voice(self, voice: str) -> None:
        """Raise UserError unless `voice` is 'language' or 'language+variant' with both shipped."""
        language, _, variant = voice.partition('+')
        if language.lower() not in self._engine.languages:
            raise UserError(f'unknown eSpeak language {language!r} in voice {voice!r}; '
                            f'use e.g. en, en-us, en-gb-scotland')
        if variant and variant not in self._engine.variants:
            raise UserError(f'unknown eSpeak voice variant {variant!r} in voice {voice!r}; '
                            f'use e.g. m1..m8 or f1..f5')

    def synth(self, text: str, voice: str = 'en', rate: int = 175, pitch: int = 50,
              pitch_range: int = 50, volume: int = 100, word_gap: int = 0,
              seed: int = 0) -> np.ndarray:
        """Speak `text` and return float32 samples [T] in [-1, 1] at SAMPLE_RATE (16 kHz).

        voice: 'language' or 'language+variant' (e.g. 'en-us+f3'); rate: words per
        minute (80..450); pitch and pitch_range: eSpeak's 0..100 scales (50 is the
        voice's own); volume: 0..200 (100 is normal, above it may clip); word_gap:
        extra pause between words in units of 10 ms; seed: eSpeak's noise seed.
        The same arguments always give the same samples.
        """
        if not isinstance(text, str) or not text.strip():
            raise UserError('text to synthesise is empty; pass at least one word')
        values = {'rate': rate, 'pitch': pitch, 'pitch_range': pitch_range,
                  'volume': volume, 'word_gap': word_gap}
        for name, value in values.items():
            lo, hi = LIMITS[name]
            if not lo <= int(value) <= hi:
                raise UserError(f'eSpeak {name}={value} is out of range; use {lo}..{hi}')
        self.check_voice(voice)
        params = {_PARAM_RATE: int(rate), _PARAM_VOLUME: int(volume), _PARAM_PITCH: int(pitch),
                  _PARAM_RANGE: int(pitch_range), _PARAM_WORDGAP: int(word_gap)}
        payload = self._engine.run_in_child(text.encode('utf-8'), voice.encode(), params, int(seed))
        (status,) = struct.unpack('<i', payload[:4])
        if status == _BAD_VOICE:
            raise UserError(f'eSpeak could not load voice {voice!r}; check the language and variant names')
        if status != _OK:
            raise RuntimeError(f'espeak_Synth failed for text {text[:40]!r}')
        native = np.frombuffer(payload[4:], dtype='<i2').astype(np.float64) / 32768.0
        if native.size == 0:
            return np.zeros(0, np.float32)
        return resample_poly(native, self._up, self._down).astype(np.float32)
