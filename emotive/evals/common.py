"""What every held-out report shares: the split's clips in batches, groups, rates, files.

    for batch, rows in clip_batches(data_dir, "emotive_speech", "test", batch_size=8):
        out = predictor.predict(batch["audio"], batch["length"])   # then keep out[rows]
    write_report(out_dir, report)                # out_dir/report.json, returns its path

Clips come from `emotive.data.pipelines.speech.whole_clip_batches`, the one split reader: whole,
in split order, padded to a few bucket lengths. An evaluator is a module with
`evaluate(predictor, data_dir, split, *, dataset, batch_size, limit, out_dir) -> report`
and `format_report(report) -> str`, registered in `emotive.registry.FAMILIES`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Iterator

import numpy as np
from tqdm import tqdm

from emotive.configs.common import SAMPLE_RATE
from emotive.data.speech.emotions import CONDITIONS
from emotive.data.pipelines.speech import whole_clip_batches
from emotive.infer.bundle import is_bundle
from emotive.metrics.recognition import error_counts


def clip_batches(data_dir, dataset: str, split: str, *, batch_size: int,
                 limit: int | None = None, unit: int = SAMPLE_RATE,
                 desc: str | None = None) -> Iterator[tuple[dict, np.ndarray]]:
    """Yields (batch, rows): a padded batch of whole clips and the indices of its real rows,
    at most `limit` real rows in all. With `desc`, a progress bar counts the clips."""
    done = 0
    bar = tqdm(desc=desc, unit="clip", leave=False, disable=desc is None)
    try:
        for batch in whole_clip_batches(data_dir, dataset, split, batch_size=batch_size,
                                        unit=unit):
            rows = np.flatnonzero(batch["example_mask"])
            if limit is not None:
                rows = rows[:max(limit - done, 0)]
            if rows.size:
                yield batch, rows
            done += rows.size
            bar.update(rows.size)
            if limit is not None and done >= limit:
                return
    finally:
        bar.close()


def rates(counts: dict) -> dict:
    """Edit counts (emotive.metrics.recognition.error_counts) plus cer and wer."""
    out = dict(counts)
    out["cer"] = counts["char_edits"] / max(counts["chars"], 1)
    out["wer"] = counts["word_edits"] / max(counts["words"], 1)
    return out


def corpus_rates(refs, hyps) -> dict:
    """Corpus-level CER/WER (and the counts) of hypotheses against references."""
    return rates(error_counts(refs, hyps))


def by_condition(conditions, unknown: str | None = "unknown") -> dict[str, np.ndarray]:
    """{condition: row indices}, the corpus's conditions first in their order; rows without
    a condition form the group `unknown` (None: left out)."""
    conditions = np.asarray(conditions, dtype=object)
    found = [c for c in dict.fromkeys(conditions.tolist()) if c]
    ordered = [c for c in CONDITIONS if c in found] + sorted(set(found) - set(CONDITIONS))
    groups = {c: np.flatnonzero(conditions == c) for c in ordered}
    missing = np.flatnonzero(conditions == "")
    if unknown is not None and missing.size:
        groups[unknown] = missing
    return groups


def eval_dir(ckpt, kind: str, split: str, step: int) -> pathlib.Path:
    """RUN_DIR/eval-KIND-SPLIT-STEP, where `ckpt` is a run dir, its checkpoints/ or a step dir.

    The default output folder of every `emotive eval` command, beside checkpoints/. For a
    release bundle it is the sibling BUNDLE-eval-KIND-SPLIT-STEP: a file written inside the
    bundle would fail its SHA256SUMS check.
    """
    path = pathlib.Path(ckpt)
    if is_bundle(path):
        path = path.absolute()
        return path.parent / f"{path.name}-eval-{kind}-{split}-{step}"
    if path.name.isdigit() and path.parent.name == "checkpoints":
        path = path.parent
    run_dir = path.parent if path.name == "checkpoints" else path
    return run_dir / f"eval-{kind}-{split}-{step}"


def write_report(out_dir, report: dict, name: str = "report.json") -> pathlib.Path:
    """Writes `report` as indented JSON to out_dir/name (making out_dir); returns the path."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps(report, indent=2) + "\n")
    return out / name


def pad_seconds(x_T: np.ndarray, sample_rate: int = SAMPLE_RATE):
    """float32 jax array [1, L]: x zero-padded to a whole number of seconds (few shapes)."""
    import jax.numpy as jnp

    padded = -(-x_T.size // sample_rate) * sample_rate
    return jnp.asarray(np.pad(np.asarray(x_T, np.float32), (0, padded - x_T.size))[None])


def plot_mel_grid(rows, sample_rate: int, path) -> None:
    """Log-mel spectrograms in a grid: `rows` is a list of rows of (title, audio [T])."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    from emotive.codecs.audio import log_mel_spectrogram

    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(5.5 * cols, 2.6 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(row):
                ax.axis("off")
                continue
            title, x = row[c]
            mel = np.asarray(log_mel_spectrogram(pad_seconds(x, sample_rate)[0], sample_rate,
                                                 1024, 256, 80))[:1 + x.size // 256]
            ax.imshow(mel.T, origin="lower", aspect="auto", cmap="magma", vmin=np.log(1e-5),
                      extent=(0, x.size / sample_rate, 0, 80))
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("seconds")
            ax.set_ylabel("mel bin")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
