"""Any-length input in flat memory: overlapping chunk windows, stitched or pooled.

    chunking = Chunking(chunk_seconds=28, context_seconds=2, batch=4)
    if not chunking.fits(audio_BxT.shape[1]):
        (ids, _), slots_B = chunked_apply(predictor, _best_path, audio_BxT, lengths_B,
                                          chunking, ("stitch", None), frame=320, per_frame=2)

A signal longer than one window (chunk + 2 * context) is cut into kept spans of `chunk`
steps, [0, C), [C, 2C), ...; each span runs in a window that adds up to `context` steps on
either side (at the edges of the signal the window shifts inwards, so every window of a long
signal has the same width and one compiled shape). Window starts and kept spans are whole
multiples of `align` (the codec's 320-sample hop, a recogniser's frame), so frame j of a
window is frame lo / align + j of the whole signal.

Frame-level outputs (codec codes, CTC slots) keep the frames of each window's kept span,
and the kept spans tile the signal: the stitched output has exactly the whole-signal
length. Where a model's receptive field is within the context (a conv stack), the stitched
output equals the whole-signal output; attention sees the window only, so it is close, not
equal. Utterance-level outputs (emotion A/D/V and logits, speaker embeddings) are the
mean over windows weighted by each window's kept length: the whole-signal mean pooling over
frames is approximated by the length-weighted mean of window poolings (each window pools
over its context too).

Windows of all rows run `batch` at a time (the last batch repeats its last window to the
same shape), so memory beyond one batch of windows grows only with the stitched outputs.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from emotive.configs.common import SAMPLE_RATE
from emotive.errors import UserError
from emotive.infer.predictor import pad_rows


class Window(NamedTuple):
    """A window [lo, hi) run with its context, of which [start, end) is kept."""

    lo: int
    start: int
    end: int
    hi: int


@dataclasses.dataclass(frozen=True)
class Chunking:
    """Chunk and context lengths (seconds at 16 kHz) and windows per batch. 28 + 2 x 2 s
    makes 32 s windows, a bucket length of every predictor (no padding waste)."""

    chunk_seconds: float = 28.0
    context_seconds: float = 2.0
    batch: int = 4

    def __post_init__(self):
        if self.chunk_seconds <= 0 or self.context_seconds < 0 or self.batch < 1:
            raise UserError(f"chunking needs chunk_seconds > 0, context_seconds >= 0 and "
                            f"batch >= 1, got {self.chunk_seconds}, {self.context_seconds}, "
                            f"{self.batch}")

    def sizes(self, align: int, rate: float = SAMPLE_RATE) -> tuple[int, int]:
        """(chunk, context) in steps of `rate` per second, rounded to whole `align` steps
        (the chunk at least one)."""
        chunk = max(1, round(self.chunk_seconds * rate / align)) * align
        return chunk, round(self.context_seconds * rate / align) * align

    def fits(self, length: int, align: int = 1, rate: float = SAMPLE_RATE) -> bool:
        """Whether `length` steps run as one window (chunk + 2 * context)."""
        chunk, context = self.sizes(align, rate)
        return length <= chunk + 2 * context


def plan_windows(length: int, chunk: int, context: int, align: int = 1) -> list[Window]:
    """The windows of a signal of `length` steps: one whole window if it fits in chunk + 2
    * context, else kept spans of `chunk` (a multiple of align) in windows of that width
    (the last one up to align - 1 steps less), shifted inwards at the edges to starts that
    are multiples of `align`."""
    width = chunk + 2 * context
    if length <= width:
        return [Window(0, 0, length, length)]
    last_lo = -(-(length - width) // align) * align  # the last window ends at `length`
    windows = []
    for start in range(0, length, chunk):
        lo = min(max(start - context, 0), last_lo, start)
        windows.append(Window(lo, start, min(start + chunk, length), min(lo + width, length)))
    return windows


def kept(window: Window, frame: int, per_frame: int = 1) -> slice:
    """The output steps of a window's kept span, for `per_frame` steps every `frame` input
    steps (window.start - window.lo is a whole number of frames)."""
    first = (window.start - window.lo) // frame
    return slice(first * per_frame, -(-(window.end - window.lo) // frame) * per_frame)


def batched(items: Sequence, size: int) -> Iterator[tuple[list, int]]:
    """(batch, real) pairs: `items` `size` at a time (at most len(items)); a short last batch
    repeats its last item up to that size, and `real` says how many are items' own."""
    size = min(size, len(items))
    for i in range(0, len(items), size):
        part = list(items[i:i + size])
        yield part + [part[-1]] * (size - len(part)), len(part)


def pool(values: Sequence[np.ndarray], windows: Sequence[Window]) -> np.ndarray:
    """The mean of per-window values weighted by kept lengths (one window: its value)."""
    if len(values) == 1:
        return values[0]
    w = np.array([win.end - win.start for win in windows], np.float64)
    stacked = np.stack(values).astype(np.float64)
    return (np.tensordot(w, stacked, axes=1) / w.sum()).astype(values[0].dtype)


def chunked_apply(predictor, fn: Callable, audio_BxT, lengths_B, chunking: Chunking,
                  combine: Sequence[str | None], *, frame: int = 320, per_frame: int = 1
                  ) -> tuple[list, np.ndarray]:
    """Runs predictor.apply(fn, ...) over the windows of every row (windows aligned to
    `frame` samples) and combines each output of fn by `combine`: "stitch" (axis 1 has
    `per_frame` steps every `frame` samples: the kept steps concatenated, zero-padded to
    [B, max steps, ...]), "pool" (length-weighted mean, [B, ...]) or None (dropped).

    Returns (combined outputs, in fn's order, None where dropped; stitched steps int32 [B]).
    """
    audio_BxT = np.asarray(audio_BxT, np.float32)
    b, t = audio_BxT.shape
    lengths_B = np.full(b, t) if lengths_B is None else np.asarray(lengths_B)
    chunk, context = chunking.sizes(frame)
    jobs = [(r, w) for r in range(b)
            for w in plan_windows(int(lengths_B[r]), chunk, context, frame)]
    per_row = [[[] for _ in combine] for _ in range(b)]
    for batch, real in batched(jobs, chunking.batch):
        pieces, lengths = pad_rows([audio_BxT[r, w.lo:w.hi] for r, w in batch])
        outs = predictor.apply(fn, pieces, lengths)
        outs = [np.asarray(o) for o in (outs if isinstance(outs, tuple) else (outs,))]
        for i, (r, w) in enumerate(batch[:real]):
            for k, how in enumerate(combine):
                if how == "stitch":
                    per_row[r][k].append(outs[k][i, kept(w, frame, per_frame)])
                elif how == "pool":
                    per_row[r][k].append(outs[k][i])
    windows = [[w for r, w in jobs if r == row] for row in range(b)]
    steps_B = np.array([-(-int(n) // frame) * per_frame for n in lengths_B], np.int32)
    combined = []
    for k, how in enumerate(combine):
        if how == "pool":
            combined.append(np.stack([pool(per_row[r][k], windows[r]) for r in range(b)]))
        elif how == "stitch":
            rows = [np.concatenate(per_row[r][k]) for r in range(b)]
            out = np.zeros((b, int(steps_B.max(initial=0))) + rows[0].shape[1:], rows[0].dtype)
            for r, row in enumerate(rows):
                out[r, :row.shape[0]] = row
            combined.append(out)
        else:
            combined.append(None)
    return combined, steps_B
