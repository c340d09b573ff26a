"""Audio in and out: files to checked mono waveforms, and jittable spectral features.

Two halves:
- File I/O in numpy (`load_audio`, `save_audio`, `check_waveform`, `inspect_audio`). This is an
  edge of the program, so bad files raise `UserError` with a one-line message.
- Signal features in JAX (`stft`, `istft`, `mel_filterbank`, `mel_spectrogram`,
  `log_mel_spectrogram`). They take `[..., T]` arrays, treat sizes as static Python ints, and
  match librosa's layout and values so published recipes carry over.
"""

import functools
import math
import pathlib
import struct

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal
import soundfile as sf

from emotive.configs.common import SAMPLE_RATE
from emotive.errors import UserError

# Below these a waveform carries no usable signal (about -80 dBFS peak, -70 dBFS RMS).
SILENT_PEAK = 1e-4
SILENT_RMS_DBFS = -70.0
# 8-bit PCM tops out at 127/128 = 0.992, so "full scale" must sit below that to catch its clipping.
CLIP_LEVEL = 0.99
CLIP_FRACTION = 0.01
PEAK_LIMIT = 0.99


# ----------------------------------------------------------------------------------------------
# File I/O
# ----------------------------------------------------------------------------------------------


def _dbfs(rms: float) -> float:
    return 20.0 * math.log10(max(rms, 1e-12))


def check_waveform(x: np.ndarray, sample_rate: int, *, name: str, min_seconds: float = 0.1) -> None:
    """Raises UserError unless `x` (float [T]) is non-empty, finite, long enough and not silent.

    `name` (usually the file path) starts the message so the user knows which input is bad.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise UserError(f"{name}: expected mono audio [T], got shape {x.shape}; mix down first")
    if x.size == 0:
        raise UserError(f"{name}: contains no audio samples; re-export or drop this file")
    if not np.all(np.isfinite(x)):
        raise UserError(f"{name}: contains NaN or Inf samples; re-export or drop this file")
    seconds = x.size / sample_rate
    if seconds < min_seconds:
        raise UserError(
            f"{name}: too short ({seconds:.3f} s < {min_seconds} s); drop it or lower min_seconds"
        )
    peak = float(np.max(np.abs(x)))
    rms_db = _dbfs(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))
    if peak < SILENT_PEAK or rms_db < SILENT_RMS_DBFS:
        raise UserError(
            f"{name}: silent (peak {peak:.1e}, RMS {rms_db:.1f} dBFS); drop this file"
        )


def inspect_audio(x: np.ndarray, sample_rate: int) -> list[str]:
    """Returns warnings (empty list if none) about a decoded waveform [T] or [T, C] in [-1, 1].

    Meant for the signal as decoded, before resampling or normalisation hide the evidence.
    Warnings are short strings such as "clipped: 3.2% of samples (0.31 s) at full scale".
    """
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        return []
    warnings = []
    num_frames = x.shape[0]
    clipped = np.abs(x) >= CLIP_LEVEL
    if x.ndim > 1:
        clipped = np.any(clipped, axis=tuple(range(1, x.ndim)))
    fraction = float(np.mean(clipped))
    if fraction > CLIP_FRACTION:
        seconds = float(np.sum(clipped)) / sample_rate
        percent = 100 * fraction
        warnings.append(f"clipped: {percent:.1f}% of samples ({seconds:.2f} s) at full scale")
    # A large mean points at a faulty recording chain and wastes headroom.
    dc = float(np.max(np.abs(np.mean(x.reshape(num_frames, -1), axis=0))))
    if dc > 0.05:
        warnings.append(f"dc offset: mean {dc:.3f}")
    return warnings


def _wav_is_truncated(path: pathlib.Path) -> bool:
    """True if a RIFF/WAVE file's data chunk claims more bytes than the file holds.

    libsndfile reads such files without complaint, returning whatever part survived.
    """
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] not in (b"RIFF", b"RIFX") or header[8:12] != b"WAVE":
            return False
        endian = "<" if header[:4] == b"RIFF" else ">"
        file_size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return False
            (size,) = struct.unpack(endian + "I", chunk[4:])
            if chunk[:4] == b"data":
                # Writers that stream set 0 or 0xFFFFFFFF for "unknown length": not a truncation.
                return size not in (0, 0xFFFFFFFF) and f.tell() + size > file_size
            f.seek(size + (size & 1), 1)


def load_audio(
    path,
    sample_rate: int = SAMPLE_RATE,
    *,
    normalize_loudness: bool = True,
    target_dbfs: float = -23.0,
    min_seconds: float = 0.1,
    max_seconds: float | None = None,
    issues: list[str] | None = None,
) -> np.ndarray:
    """Reads an audio file into a checked mono float32 waveform [T] at `sample_rate`.

    Takes any format soundfile reads (wav, flac, ogg; 8/16/24-bit PCM or float). Channels are
    averaged, then the signal is resampled with a polyphase filter. With `normalize_loudness`, RMS
    is set to `target_dbfs` and then scaled down if needed so the peak stays at or below 0.99
    (so loud, peaky files can end up quieter than the target). Warnings from `inspect_audio` on
    the decoded signal are appended to `issues` when a list is given. Raises UserError for a
    missing, unreadable, truncated, empty, non-finite, too short, too long or silent file.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    try:
        info = sf.info(str(path))
        if max_seconds is not None and info.duration > max_seconds:
            raise UserError(
                f"{path}: too long ({info.duration:.1f} s > {max_seconds} s); "
                "split it or raise max_seconds"
            )
        if _wav_is_truncated(path):
            raise UserError(
                f"{path}: truncated (data chunk runs past end of file); re-download or re-export it"
            )
        data_TxC, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"{path}: unreadable or corrupt audio ({reason}); re-export it as wav or flac"
        ) from e
    if data_TxC.shape[0] == 0:
        raise UserError(
            f"{path}: contains no audio samples (empty or truncated); re-export or drop it"
        )
    if not np.all(np.isfinite(data_TxC)):
        raise UserError(f"{path}: contains NaN or Inf samples; re-export or drop this file")
    if issues is not None:
        issues.extend(inspect_audio(data_TxC, file_rate))
    x = resample(data_TxC.mean(axis=1), file_rate, sample_rate)
    check_waveform(x, sample_rate, name=str(path), min_seconds=min_seconds)
    if normalize_loudness:
        x = normalize_rms(x, target_dbfs)
    return x


def resample(x: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resamples float [T] from `from_rate` to `to_rate` Hz; returns float32 [ceil(T*to/from)]."""
    if from_rate == to_rate:
        return np.asarray(x, dtype=np.float32)
    g = math.gcd(int(from_rate), int(to_rate))
    # float64 keeps the long anti-aliasing filter from adding rounding noise.
    y = scipy.signal.resample_poly(np.asarray(x, np.float64), to_rate // g, from_rate // g)
    return y.astype(np.float32)


def normalize_rms(x: np.ndarray, target_dbfs: float = -23.0) -> np.ndarray:
    """Scales float [T] to `target_dbfs` RMS, then down so |x| <= 0.99; returns float32 [T]."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    gain = 10.0 ** (target_dbfs / 20.0) / max(rms, 1e-12)
    peak = float(np.max(np.abs(x))) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (x * gain).astype(np.float32)


def save_audio(path, x: np.ndarray, sample_rate: int) -> None:
    """Writes float [T] or [T, C] to `path` as 16-bit PCM wav, clipping to [-1, 1].

    Creates parent directories. Raises UserError if `x` holds NaN or Inf (nothing is written).
    """
    path = pathlib.Path(path)
    x = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: waveform to save contains NaN or Inf; check the model output")
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")


# ----------------------------------------------------------------------------------------------
# Spectral features (JAX)
# ----------------------------------------------------------------------------------------------


def hann_window(n: int, periodic: bool = True) -> np.ndarray:
    """Returns the Hann window float32 [n]; periodic (for STFT, librosa's default) or symmetric."""
    if n == 1:
        return np.ones(1, np.float32)
    denom = n if periodic else n - 1
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / denom)).astype(np.float32)


def _stft_window(n_fft: int, win_length: int | None) -> np.ndarray:
    """Periodic Hann of `win_length`, zero-padded on both sides to `n_fft` (as librosa does)."""
    win_length = n_fft if win_length is None else win_length
    if not 0 < win_length <= n_fft:
        raise ValueError(f"win_length {win_length} must be in [1, n_fft={n_fft}]")
    left = (n_fft - win_length) // 2
    return np.pad(hann_window(win_length), (left, n_fft - win_length - left))


def _frame(x_BxT, n_fft: int, hop: int, num_frames: int):
    """Cuts [B, T] into overlapping frames [B, N, n_fft]; frame k starts at sample k * hop."""
    if n_fft % hop == 0:
        # Each frame is r consecutive hop-sized chunks: r shifted slices beat a big gather.
        r = n_fft // hop
        chunks_BxCxH = x_BxT[:, : (num_frames + r - 1) * hop].reshape(x_BxT.shape[0], -1, hop)
        parts = [chunks_BxCxH[:, k : k + num_frames] for k in range(r)]
        return jnp.stack(parts, axis=2).reshape(x_BxT.shape[0], num_frames, n_fft)
    idx_NxW = np.arange(num_frames)[:, None] * hop + np.arange(n_fft)[None, :]
    return x_BxT[:, idx_NxW]


def _overlap_add(frames_BxNxW, hop: int):
    """Sums frames [B, N, W] placed every `hop` samples; returns [B, W + hop * (N - 1)]."""
    b, n, w = frames_BxNxW.shape
    if w % hop == 0:
        r = w // hop
        chunks_BxNxRxH = frames_BxNxW.reshape(b, n, r, hop)
        out_BxCxH = sum(
            jnp.pad(chunks_BxNxRxH[:, :, k], ((0, 0), (k, r - 1 - k), (0, 0))) for k in range(r)
        )
        return out_BxCxH.reshape(b, -1)
    idx_NxW = np.arange(n)[:, None] * hop + np.arange(w)[None, :]
    return jnp.zeros((b, w + hop * (n - 1)), frames_BxNxW.dtype).at[:, idx_NxW].add(frames_BxNxW)


@functools.partial(jax.jit, static_argnames=("n_fft", "hop", "win_length", "center", "pad_mode"))
def stft(x, n_fft: int, hop: int, win_length: int | None = None, center: bool = True,
         pad_mode: str = "reflect"):
    """Short-time Fourier transform with a periodic Hann window, laid out like `librosa.stft`.

    Takes float [..., T]; returns complex64 [..., n_fft // 2 + 1, frames], where frames is
    1 + T // hop with `center` (the signal is padded by n_fft // 2 on both sides with `pad_mode`)
    and 1 + (T - n_fft) // hop without. Sizes must be static under jit.
    """
    x = jnp.asarray(x, jnp.float32)
    lead, t = x.shape[:-1], x.shape[-1]
    x_BxT = x.reshape(-1, t)
    if center:
        x_BxT = jnp.pad(x_BxT, ((0, 0), (n_fft // 2, n_fft // 2)), mode=pad_mode)
    if x_BxT.shape[-1] < n_fft:
        raise ValueError(f"signal of {t} samples is shorter than n_fft={n_fft}")
    num_frames = 1 + (x_BxT.shape[-1] - n_fft) // hop
    frames_BxNxW = _frame(x_BxT, n_fft, hop, num_frames) * _stft_window(n_fft, win_length)
    spec_BxNxF = jnp.fft.rfft(frames_BxNxW, n=n_fft, axis=-1)
    return jnp.swapaxes(spec_BxNxF, -1, -2).reshape(*lead, n_fft // 2 + 1, num_frames)


def _window_sum_square(window: np.ndarray, hop: int, num_frames: int) -> np.ndarray:
    """Sum of squared windows placed every `hop` samples, float32 [W + hop * (N - 1)].

    Depends only on static sizes, so it is a numpy constant under jit. Loops over the
    ceil(W / hop) window pieces, not over frames, so long signals stay cheap.
    """
    r = -(-window.size // hop)
    win_sq_RxH = np.pad(window.astype(np.float64) ** 2, (0, r * hop - window.size)).reshape(r, hop)
    wss_CxH = np.zeros((num_frames + r - 1, hop))
    for k in range(r):
        wss_CxH[k : k + num_frames] += win_sq_RxH[k]
    return wss_CxH.reshape(-1)[: window.size + hop * (num_frames - 1)].astype(np.float32)


@functools.partial(jax.jit, static_argnames=("hop", "win_length", "n_fft", "length", "center"))
def istft(spec, hop: int, win_length: int | None = None, n_fft: int | None = None,
          length: int | None = None, center: bool = True):
    """Inverse of `stft`: windowed overlap-add, window-sum-square normalised (as librosa.istft).

    Takes complex [..., F, frames]; returns float32 [..., length] if `length` is given (zero-padded
    or cut to it), else [..., hop * (frames - 1)] with `center` (n_fft + hop * (frames - 1)
    without). `n_fft` defaults to 2 * (F - 1).
    """
    spec = jnp.asarray(spec)
    lead, f, n = spec.shape[:-2], spec.shape[-2], spec.shape[-1]
    n_fft = 2 * (f - 1) if n_fft is None else n_fft
    window = _stft_window(n_fft, win_length)
    spec_BxNxF = jnp.swapaxes(spec.reshape(-1, f, n), -1, -2)
    frames_BxNxW = jnp.fft.irfft(spec_BxNxF, n=n_fft, axis=-1).astype(jnp.float32) * window
    y_BxL = _overlap_add(frames_BxNxW, hop)

    wss = _window_sum_square(window, hop, n)
    nonzero = wss > np.finfo(np.float32).tiny
    y_BxL = jnp.where(nonzero, y_BxL / np.where(nonzero, wss, 1.0), y_BxL)

    start = n_fft // 2 if center else 0
    if length is None:
        length = y_BxL.shape[-1] - 2 * start
    y_BxL = y_BxL[:, start : start + length]
    if y_BxL.shape[-1] < length:
        y_BxL = jnp.pad(y_BxL, ((0, 0), (0, length - y_BxL.shape[-1])))
    return y_BxL.reshape(*lead, length)


def _hz_to_mel(hz, htk: bool):
    hz = np.asarray(hz, np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    # Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above (27 mels per factor 6.4).
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    linear = hz / f_sp
    log = min_log_hz / f_sp + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log, linear)


def _mel_to_hz(mel, htk: bool):
    mel = np.asarray(mel, np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    log = min_log_hz * np.exp(logstep * (mel - min_log_mel))
    return np.where(mel >= min_log_mel, log, f_sp * mel)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, norm: str | None = "slaney"):
    """Triangular mel filters as in `librosa.filters.mel`; returns float32 numpy [n_mels, F].

    F = n_fft // 2 + 1. `htk` picks the HTK mel scale instead of Slaney's; norm "slaney" scales
    each triangle to unit area in Hz, None leaves peaks at 1.
    """
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, got {norm!r}")
    fmax = sample_rate / 2.0 if fmax is None else fmax
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    # n_mels triangles need n_mels + 2 edges, evenly spaced in mel.
    edges_mel = np.linspace(_hz_to_mel(fmin, htk), _hz_to_mel(fmax, htk), n_mels + 2)
    edges_hz = _mel_to_hz(edges_mel, htk)
    widths = np.diff(edges_hz)
    ramps_MxF = edges_hz[:, None] - fft_hz[None, :]
    rising = -ramps_MxF[:-2] / widths[:-1, None]
    falling = ramps_MxF[2:] / widths[1:, None]
    weights_MxF = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights_MxF *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights_MxF.astype(np.float32)


# Everything but the signal shapes the computation, so it is static; jitting the public
# functions also makes eager calls one compiled program instead of dozens of small ones.
_MEL_STATIC = ("sample_rate", "n_fft", "hop", "n_mels", "win_length", "fmin", "fmax", "power",
               "center", "pad_mode")


def _power(spec, power: float):
    """|spec| ** power with a zero (not NaN) gradient where spec is exactly 0."""
    sq = jnp.square(spec.real) + jnp.square(spec.imag)
    if power == 2.0:
        return sq
    positive = sq > 0
    return jnp.where(positive, jnp.where(positive, sq, 1.0) ** (power / 2.0), 0.0)


@functools.partial(jax.jit, static_argnames=_MEL_STATIC + ("htk", "norm"))
def mel_spectrogram(x, sample_rate: int, n_fft: int, hop: int, n_mels: int, *,
                    win_length: int | None = None, fmin: float = 0.0, fmax: float | None = None,
                    power: float = 2.0, center: bool = True, pad_mode: str = "reflect",
                    htk: bool = False, norm: str | None = "slaney"):
    """Linear mel spectrogram (librosa.feature.melspectrogram values), time-major.

    Takes float [..., T]; returns float32 [..., frames, n_mels] (librosa's [n_mels, frames],
    transposed, because models consume [B, T, C]). `power` 2.0 is power, 1.0 magnitude.
    """
    spec = stft(x, n_fft, hop, win_length=win_length, center=center, pad_mode=pad_mode)
    filters_MxF = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk=htk, norm=norm)
    # HIGHEST keeps accelerators from rounding this small matmul to bf16/tf32.
    return jnp.einsum("...fn,mf->...nm", _power(spec, power), filters_MxF,
                      precision=jax.lax.Precision.HIGHEST)


@functools.partial(jax.jit, static_argnames=_MEL_STATIC + ("log_floor",))
def log_mel_spectrogram(x, sample_rate: int, n_fft: int, hop: int, n_mels: int, *,
                        win_length: int | None = None, fmin: float = 0.0,
                        fmax: float | None = None, power: float = 1.0, log_floor: float = 1e-5,
                        center: bool = True, pad_mode: str = "reflect"):
    """Natural log of the mel spectrogram clamped below at `log_floor`, time-major.

    Takes float [..., T]; returns float32 [..., frames, n_mels]. Defaults (magnitude mel, ln,
    floor 1e-5) follow HiFi-GAN/Vocos-style codec losses; the floor bounds silence at ln(1e-5).
    """
    mel = mel_spectrogram(x, sample_rate, n_fft, hop, n_mels, win_length=win_length, fmin=fmin,
                          fmax=fmax, power=power, center=center, pad_mode=pad_mode)
    return jnp.log(jnp.maximum(mel, log_floor))
