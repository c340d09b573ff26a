"""Offline speech synthesis with eSpeak NG, driven through ctypes.

The `espeakng-loader` package ships libespeak-ng and its voice data, so no
system package is needed. The library keeps its state in process-wide
globals, and some of it (the pitch "flutter" position, the echo and
gain-control memories) carries over from one utterance to the next, which
would make a clip's samples depend on what was spoken before it.

So the library never runs in the caller's process. `Synthesizer` starts one
small server process (`python -m emotive.data.espeak`, which imports neither
numpy nor the caller's modules) that initialises the library once, and for
each request forks a child that synthesises from that pristine state and
exits. Every call is therefore reproducible on its own, forking a small
process costs a few milliseconds, and the caller may have threads (JAX, BLAS)
without any risk from fork. Each process that builds a Synthesizer gets its
own server, so parallel synthesis simply uses several processes. POSIX only.
"""

import atexit
import ctypes
import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

from emotive.configs.common import SAMPLE_RATE  # what Synthesizer.synth returns
from emotive.errors import UserError

# synth() resamples eSpeak's native rate to SAMPLE_RATE; the docstrings here say 16 kHz.
assert SAMPLE_RATE == 16_000, SAMPLE_RATE

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAMS = {'rate': 1, 'volume': 2, 'pitch': 3, 'pitch_range': 4, 'word_gap': 7}

# Reply status codes from the server.
_OK, _BAD_VOICE, _SYNTH_FAILED, _CHILD_DIED = 0, 1, 2, 3

# Allowed values (eSpeak's own limits; rate in words per minute).
LIMITS = {'rate': (80, 450), 'pitch': (0, 100), 'pitch_range': (0, 100),
          'volume': (0, 200), 'word_gap': (0, 100)}


def _data_path() -> Path:
    try:
        import espeakng_loader
    except ImportError as exc:  # pragma: no cover - a packaging problem
        raise UserError('espeakng-loader is not installed; run `pip install espeakng-loader`') from exc
    return Path(espeakng_loader.get_data_path())


# ------------------------------------------------------------------ server side

class _Engine:
    """The initialised libespeak-ng of the server process."""

    def __init__(self):
        import espeakng_loader
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self.native_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(_data_path()).encode(), _INITIALIZE_DONT_EXIT)
        if self.native_rate <= 0:
            raise RuntimeError(f'espeak_Initialize failed with {self.native_rate}')
        self.chunks: list[bytes] = []
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
        self._callback = callback_type(self._collect)  # keep a reference: C holds a raw pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib
        self.libc = ctypes.CDLL(None)  # some of eSpeak's noise comes from libc rand()

    def _collect(self, wav, n, _events):
        if n > 0:
            self.chunks.append(ctypes.string_at(wav, 2 * n))
        return 0  # 0 = keep going

    def synthesise(self, request: dict) -> tuple[int, bytes]:
        """Run one request in this process: (status, little-endian int16 samples)."""
        if self.lib.espeak_SetVoiceByName(request['voice'].encode()) != 0:
            return _BAD_VOICE, b''
        for name, value in request['params'].items():
            self.lib.espeak_SetParameter(_PARAMS[name], int(value), 0)
        seed = int(request['seed'])
        self.lib.espeak_ng_SetRandSeed(seed)
        self.libc.srand(seed & 0xFFFFFFFF)
        self.chunks.clear()
        text = request['text'].encode('utf-8')
        if self.lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None):
            return _SYNTH_FAILED, b''
        return _OK, b''.join(self.chunks)

    def synthesise_in_child(self, request: dict) -> tuple[int, bytes]:
        """Fork, synthesise in the child from this pristine state, and return its result."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                status, samples = self.synthesise(request)
                with os.fdopen(write_fd, 'wb') as f:
                    f.write(struct.pack('<i', status) + samples)
            finally:
                os._exit(0)  # never run the server's cleanup in the child
        os.close(write_fd)
        with os.fdopen(read_fd, 'rb') as f:
            payload = f.read()
        os.waitpid(pid, 0)
        if len(payload) < 4:
            return _CHILD_DIED, b''
        return struct.unpack('<i', payload[:4])[0], payload[4:]


def _read_exact(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


def serve(stdin=None, stdout=None) -> None:
    """Server loop: answer length-prefixed JSON requests until stdin closes.

    On start it writes the engine's native sample rate (int32). Each request
    is uint32 length + JSON {text, voice, params, seed}; each reply is int32
    status + uint32 byte count + int16 samples.
    """
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    engine = _Engine()
    stdout.write(struct.pack('<i', engine.native_rate))
    stdout.flush()
    while True:
        try:
            (size,) = struct.unpack('<I', _read_exact(stdin, 4))
            request = json.loads(_read_exact(stdin, size))
        except EOFError:
            return
        status, samples = engine.synthesise_in_child(request)
        stdout.write(struct.pack('<iI', status, len(samples)) + samples)
        stdout.flush()


# ------------------------------------------------------------------ client side

class _Server:
    """A running `python -m emotive.data.espeak` process and its pipes."""

    def __init__(self):
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env['PYTHONPATH'] = os.pathsep.join(p for p in (root, env.get('PYTHONPATH')) if p)
        self.proc = subprocess.Popen([sys.executable, '-m', 'emotive.data.espeak'],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.lock = threading.Lock()
        atexit.register(self.close)
        try:
            (self.native_rate,) = struct.unpack('<i', _read_exact(self.proc.stdout, 4))
        except EOFError:
            raise RuntimeError('the eSpeak server process failed to start') from None

    def request(self, request: dict) -> tuple[int, bytes]:
        body = json.dumps(request).encode()
        with self.lock:
            try:
                self.proc.stdin.write(struct.pack('<I', len(body)) + body)
                self.proc.stdin.flush()
                status, size = struct.unpack('<iI', _read_exact(self.proc.stdout, 8))
                return status, _read_exact(self.proc.stdout, size)
            except (EOFError, BrokenPipeError):
                raise RuntimeError('the eSpeak server process died') from None

    def close(self) -> None:
        """Stop the server: closing its stdin ends its loop."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()


_SERVER: _Server | None = None
_SERVER_PID = -1


def _server() -> _Server:
    """This process's server, started on first use (a forked caller starts its own)."""
    global _SERVER, _SERVER_PID
    if _SERVER is None or _SERVER_PID != os.getpid() or _SERVER.proc.poll() is not None:
        _SERVER, _SERVER_PID = _Server(), os.getpid()
    return _SERVER


class Synthesizer:
    """Text to 16 kHz float32 speech with eSpeak NG; every call is reproducible on its own."""

    def __init__(self):
        self._server = _server()
        self.native_rate = self._server.native_rate
        data = _data_path()
        self.languages = {p.name.lower() for p in (data / 'lang').rglob('*') if p.is_file()}
        self.variants = {p.name for p in (data / 'voices' / '!v').iterdir() if p.is_file()}

    def check_voice(self, voice: str) -> None:
        """Raise UserError unless `voice` is 'language' or 'language+variant' with both shipped."""
        language, _, variant = voice.partition('+')
        if language.lower() not in self.languages:
            raise UserError(f'unknown eSpeak language {language!r} in voice {voice!r}; '
                            f'use e.g. en, en-us, en-gb-scotland')
        if variant and variant not in self.variants:
            raise UserError(f'unknown eSpeak voice variant {variant!r} in voice {voice!r}; '
                            f'use e.g. m1..m8 or f1..f5')

    def synth(self, text: str, voice: str = 'en', rate: int = 175, pitch: int = 50,
              pitch_range: int = 50, volume: int = 100, word_gap: int = 0, seed: int = 0):
        """Speak `text`; return float32 numpy samples [T] in [-1, 1] at SAMPLE_RATE (16 kHz).

        voice: 'language' or 'language+variant' (e.g. 'en-us+f3'); rate: words per
        minute (80..450); pitch and pitch_range: eSpeak's 0..100 scales (50 is the
        voice's own); volume: 0..200 (100 is normal; above it may clip); word_gap:
        extra pause between words in 10 ms units; seed: eSpeak's noise seed.
        The same arguments always give the same samples.
        """
        import math

        # numpy and scipy are imported here, not at the top, so that the server
        # process (which runs this module) stays small and forks quickly.
        import numpy as np
        from scipy.signal import resample_poly

        if not isinstance(text, str) or not text.strip():
            raise UserError('text to synthesise is empty; pass at least one word')
        params = {'rate': rate, 'pitch': pitch, 'pitch_range': pitch_range,
                  'volume': volume, 'word_gap': word_gap}
        for name, value in params.items():
            lo, hi = LIMITS[name]
            if not lo <= int(value) <= hi:
                raise UserError(f'eSpeak {name}={value} is out of range; use {lo}..{hi}')
        self.check_voice(voice)
        status, samples = self._server.request(dict(
            text=text, voice=voice, params={k: int(v) for k, v in params.items()}, seed=int(seed)))
        if status == _BAD_VOICE:
            raise UserError(f'eSpeak could not load voice {voice!r}; check the language and variant')
        if status != _OK:
            raise RuntimeError(f'eSpeak synthesis failed (status {status}) for {text[:40]!r}')
        native = np.frombuffer(samples, dtype='<i2').astype(np.float64) / 32768.0
        if native.size == 0:
            return np.zeros(0, np.float32)
        g = math.gcd(SAMPLE_RATE, self.native_rate)
        return resample_poly(native, SAMPLE_RATE // g, self.native_rate // g).astype(np.float32)


if __name__ == '__main__':
    serve()
