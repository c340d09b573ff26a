"""Offline speech synthesis with eSpeak NG, driven through ctypes.

The `espeakng-loader` package ships libespeak-ng and its voice data, so no
system package is needed. The library keeps its state in process-wide
globals, and some of it (the pitch "flutter" position, the echo and
gain-control memories) carries over from one utterance to the next, which
would make a clip's samples depend on what was spoken before it.

So the library never runs in the caller's process. `Synthesizer` starts one
small server process (`python -m emotive.data.speech.espeak`, which imports neither
numpy nor the caller's modules) that initialises the library once, and for
each request forks a child that synthesises from that pristine state and
exits. Every call is therefore reproducible on its own, forking a small
process costs a few milliseconds, and the caller may have threads (JAX, BLAS)
without any risk from fork. Each process that builds a Synthesizer gets its
own server, so parallel synthesis simply uses several processes. POSIX only.

The same server also phonemises: `phonemize(texts, voice)` sends a whole batch in one
request (one fork), and the child runs `espeak_TextToPhonemes` clause by clause, giving
eSpeak's IPA with "_" between phonemes and " " between words ("ð_ə k_ˈæ_t s_ˈæ_t"), so
thousands of sentences take seconds. `Synthesizer.synth_with_phonemes` also returns when
each phoneme starts (eSpeak's phoneme events; enabling them leaves the samples unchanged).
"""

import atexit
import ctypes
import json
import os
import re
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
_INITIALIZE_PHONEME_EVENTS, _INITIALIZE_PHONEME_IPA = 0x0001, 0x0002
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_PHONEMES_IPA = 0x02 | (ord('_') << 8)  # TextToPhonemes: IPA, "_" between phoneme names
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAMS = {'rate': 1, 'volume': 2, 'pitch': 3, 'pitch_range': 4, 'word_gap': 7}

# Reply status codes from the server.
_OK, _BAD_VOICE, _SYNTH_FAILED, _CHILD_DIED = 0, 1, 2, 3

_PHONEME_BATCH = 20_000  # texts per phonemise request (one fork each)
_LANGUAGE_SWITCH = re.compile(r'\([a-z]{2,3}(?:-[a-z0-9]+)*\)')  # "(fr)": eSpeak's marker

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

class _Event(ctypes.Structure):
    """espeak_EVENT of speak_lib.h; `name` is the union `id` as a phoneme event fills it."""
    _fields_ = [('type', ctypes.c_int), ('unique_identifier', ctypes.c_uint),
                ('text_position', ctypes.c_int), ('length', ctypes.c_int),
                ('audio_position', ctypes.c_int), ('sample', ctypes.c_int),
                ('user_data', ctypes.c_void_p), ('name', ctypes.c_char * 8)]


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
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        flags = _INITIALIZE_DONT_EXIT | _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
        self.native_rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(_data_path()).encode(), flags)
        if self.native_rate <= 0:
            raise RuntimeError(f'espeak_Initialize failed with {self.native_rate}')
        self.chunks: list[bytes] = []
        self.events: list[tuple[str, int]] = []  # (IPA phoneme or '_' for a pause, sample)
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
        self._callback = callback_type(self._collect)  # keep a reference: C holds a raw pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib
        self.libc = ctypes.CDLL(None)  # some of eSpeak's noise comes from libc rand()

    def _collect(self, wav, n, events):
        if n > 0:
            self.chunks.append(ctypes.string_at(wav, 2 * n))
        i = 0
        while events and events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                name = events[i].name.decode('utf-8', 'replace') or '_'
                self.events.append((name, events[i].sample))  # sample: at the native rate
            i += 1
        return 0  # 0 = keep going

    def run(self, request: dict) -> tuple[int, bytes]:
        """One request of either kind in this process: (status, reply bytes)."""
        if self.lib.espeak_SetVoiceByName(request['voice'].encode()) != 0:
            return _BAD_VOICE, b''
        if request.get('kind') == 'phonemes':
            return _OK, json.dumps([self.phonemes(t) for t in request['texts']]).encode()
        status, samples = self.synthesise(request)
        if not request.get('events'):
            return status, samples
        events = json.dumps(self.events).encode()
        return status, struct.pack('<I', len(samples)) + samples + events

    def phonemes(self, text: str) -> str:
        """eSpeak's IPA for `text` (the current voice): clause by clause, joined by spaces."""
        encoded = text.encode('utf-8')
        pointer = ctypes.c_char_p(encoded)  # the library advances it, to NULL at the end
        clauses = []
        for _ in range(len(encoded) + 1):  # at least one character per clause
            if ctypes.cast(pointer, ctypes.c_void_p).value is None:
                break
            clause = self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8,
                                                    _PHONEMES_IPA)
            if clause:
                clauses.append(clause.decode('utf-8', 'replace').strip())
        return ' '.join(c for c in clauses if c)

    def synthesise(self, request: dict) -> tuple[int, bytes]:
        """Synthesise with the voice already set: (status, little-endian int16 samples)."""
        for name, value in request['params'].items():
            self.lib.espeak_SetParameter(_PARAMS[name], int(value), 0)
        seed = int(request['seed'])
        self.lib.espeak_ng_SetRandSeed(seed)
        self.libc.srand(seed & 0xFFFFFFFF)
        self.chunks.clear()
        self.events.clear()
        text = request['text'].encode('utf-8')
        if self.lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None):
            return _SYNTH_FAILED, b''
        return _OK, b''.join(self.chunks)

    def synthesise_in_child(self, request: dict) -> tuple[int, bytes]:
        """Fork, run the request in the child from this pristine state, return its result."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                status, samples = self.run(request)
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
    is uint32 length + JSON, {text, voice, params, seed, events} to synthesise (the reply
    bytes: int16 samples; with events, uint32 sample bytes + samples + JSON [[name,
    sample], ...]) or {kind: "phonemes", texts, voice} (the reply: a JSON list of IPA
    strings); each reply is int32 status + uint32 byte count + the bytes.
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
    """A running `python -m emotive.data.speech.espeak` process and its pipes."""

    def __init__(self):
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env['PYTHONPATH'] = os.pathsep.join(p for p in (root, env.get('PYTHONPATH')) if p)
        self.proc = subprocess.Popen([sys.executable, '-m', 'emotive.data.speech.espeak'],
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
        return self._speak(text, voice, False, rate=rate, pitch=pitch, pitch_range=pitch_range,
                           volume=volume, word_gap=word_gap, seed=seed)[0]

    def synth_with_phonemes(self, text: str, voice: str = 'en', **settings):
        """`synth` (same arguments, same samples) plus when each phoneme starts.

        Returns (samples [T] float32, events): events is a list of (IPA phoneme, sample
        index at SAMPLE_RATE) in time order; '_' marks a pause, the last one the end.
        """
        return self._speak(text, voice, True, **settings)

    def phonemize(self, texts, voice: str = 'en-us') -> list[str]:
        """See the module-level `phonemize`."""
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        self.check_voice(voice)
        out = []
        for start in range(0, len(texts), _PHONEME_BATCH):
            status, reply = self._server.request(
                dict(kind='phonemes', texts=texts[start:start + _PHONEME_BATCH], voice=voice))
            if status == _BAD_VOICE:
                raise UserError(f'eSpeak could not load voice {voice!r}; check the language')
            if status != _OK:
                raise RuntimeError(f'eSpeak phonemisation failed (status {status})')
            out += [_LANGUAGE_SWITCH.sub('', ipa) for ipa in json.loads(reply)]
        return out

    def _speak(self, text, voice, events, rate=175, pitch=50, pitch_range=50, volume=100,
               word_gap=0, seed=0):
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
        status, reply = self._server.request(dict(
            text=text, voice=voice, params={k: int(v) for k, v in params.items()},
            seed=int(seed), events=events))
        if status == _BAD_VOICE:
            raise UserError(f'eSpeak could not load voice {voice!r}; check the language and variant')
        if status != _OK:
            raise RuntimeError(f'eSpeak synthesis failed (status {status}) for {text[:40]!r}')
        marks = []
        if events:
            (size,) = struct.unpack('<I', reply[:4])
            reply, marks = reply[4:4 + size], json.loads(reply[4 + size:])
        native = np.frombuffer(reply, dtype='<i2').astype(np.float64) / 32768.0
        marks = [(name, round(sample * SAMPLE_RATE / self.native_rate)) for name, sample in marks]
        if native.size == 0:
            return np.zeros(0, np.float32), marks
        g = math.gcd(SAMPLE_RATE, self.native_rate)
        return resample_poly(native, SAMPLE_RATE // g, self.native_rate // g).astype(
            np.float32), marks


def phonemize(texts, voice: str = 'en-us') -> list[str]:
    """eSpeak's IPA for each text (a str or a sequence of them), in one batched request.

    Each result has "_" between the phonemes of a word and " " between words, stress marks
    (ˈ ˌ) before their vowel: phonemize(["The cat sat."]) == ["ð_ə k_ˈæ_t s_ˈæ_t"] with
    en-us. eSpeak reads the text as it is (its own number and abbreviation rules) and marks
    no punctuation: split at punctuation first where pauses matter, as
    `emotive.codecs.phonemes` does. The same texts always give the same phonemes.
    """
    return Synthesizer().phonemize(texts, voice)


if __name__ == '__main__':
    serve()
