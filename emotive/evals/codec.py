"""Codec evaluation on held-out speakers: PESQ (NB, WB), STOI, mel distance, SI-SDR, usage.

    report = evaluate(codec, data_dir, "test", out_dir="runs/codec-tiny/eval-codec-test-600")

Every clip of the split is encoded whole (padded batches, each clip coded as alone), decoded
and compared with its input at 16 kHz. Metric definitions follow the codec literature
(X-codec2, BigCodec): PESQ ITU-T P.862 narrow-band (`pesq` package, mode "nb") and
wide-band (P.862.2, "wb"); STOI (Taal et al., `pystoi`, not extended); mel distance = mean
|log-mel| L1 (n_fft 1024, hop 256, 80 mels, natural log, floor 1e-5); SI-SDR in dB;
codebook usage = fraction of the codebook used over the whole split, with its perplexity.
Writes `report.json` and `spectrograms.png` (input vs decoded log-mel of a few clips).
"""

from __future__ import annotations

import pathlib
import time

import jax.numpy as jnp
import numpy as np

from emotive.codecs.fsq import codebook_usage
from emotive.errors import UserError
from emotive.evals.common import pad_seconds, plot_mel_grid, write_report
from emotive.infer.codec import LoadedCodec, iterate_split
from emotive.models.codec import mel_distance, si_sdr

PLOT_CLIPS = 3


def clip_metrics(reference_T: np.ndarray, decoded_T: np.ndarray, sample_rate: int) -> dict:
    """PESQ NB/WB, STOI, mel distance and SI-SDR of one decoded clip against its input.

    PESQ is None where the `pesq` package finds no utterance (near-silent clips).
    """
    from pesq import PesqError, pesq
    from pystoi import stoi

    ref = np.asarray(reference_T, np.float64)
    deg = np.asarray(decoded_T, np.float64)[:ref.size]
    out = {}
    for mode in ("nb", "wb"):
        score = pesq(sample_rate, ref, deg, mode, on_error=PesqError.RETURN_VALUES)
        out[f"pesq_{mode}"] = float(score) if score >= -0.5 else None  # negative: error codes
    out["stoi"] = float(stoi(ref, deg, sample_rate, extended=False))
    # Padded to whole seconds with the length passed along: a few compiled shapes, not one
    # per clip, and the padding does not count.
    ref_1xL, deg_1xL = pad_seconds(ref, sample_rate), pad_seconds(deg, sample_rate)
    lengths = jnp.asarray([ref.size])
    out["mel_distance"] = float(mel_distance(deg_1xL, ref_1xL, lengths, sample_rate))
    out["si_sdr"] = float(si_sdr(deg_1xL, ref_1xL, lengths)[0])
    return out


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def evaluate(codec: LoadedCodec, data_dir, split: str = "test", *,
             dataset: str = "emotive_speech", batch_size: int = 8, limit: int | None = None,
             out_dir=None) -> dict:
    """Evaluates `codec` on every clip of `split` (or the first `limit`); returns the report.

    The report dict holds the means (pesq_nb, pesq_wb, stoi, mel_distance, si_sdr), codebook
    usage/perplexity over all codes, clip and second counts, timings and the checkpoint step;
    with `out_dir` it is written to out_dir/report.json beside out_dir/spectrograms.png.
    """
    sr = codec.cfg.model.sample_rate
    start = time.perf_counter()
    per_clip, all_codes, plotted = [], [], []
    seconds = 0.0
    for row in iterate_split(codec, data_dir, split, dataset=dataset, batch_size=batch_size,
                             limit=limit, decode=True):
        decoded = row["decoded"]
        per_clip.append({"id": row["id"], **clip_metrics(row["audio"], decoded, sr)})
        all_codes.append(row["codes"])
        seconds += row["audio"].size / sr
        if len(plotted) < PLOT_CLIPS:
            plotted.append((row["id"], row["audio"], decoded))
    if not per_clip:
        raise UserError(f"split {split!r} of {dataset} under {data_dir} has no clips to evaluate")
    codes = np.concatenate(all_codes)
    usage = codebook_usage(jnp.asarray(codes), codec.codebook_size)
    keys = ("pesq_nb", "pesq_wb", "stoi", "mel_distance", "si_sdr")
    report = {
        "dataset": dataset, "split": split, "step": codec.step, "clips": len(per_clip),
        "seconds": round(seconds, 2),
        **{k: _mean(c[k] for c in per_clip) for k in keys},
        "pesq_failures": sum(c["pesq_wb"] is None for c in per_clip),
        "codebook_size": codec.codebook_size,
        "codebook_usage": float(usage["usage"]),
        "codebook_perplexity": float(usage["perplexity"]),
        "codes_per_second": codes.size / seconds,
        "eval_seconds": round(time.perf_counter() - start, 1),
        "per_clip": per_clip,
    }
    if out_dir is not None:
        out_dir = pathlib.Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        report["report_file"] = str(out_dir / "report.json")
        report["plot_file"] = str(out_dir / "spectrograms.png")
        plot_spectrograms(plotted, sr, report["plot_file"])
        write_report(out_dir, report)
    return report


def plot_spectrograms(clips, sample_rate: int, path) -> None:
    """Input vs decoded log-mel spectrograms, one row per (id, input [T], decoded [T])."""
    plot_mel_grid([[(f"{clip_id}: input", ref), (f"{clip_id}: decoded", dec)]
                   for clip_id, ref, dec in clips], sample_rate, path)


def format_report(report: dict) -> str:
    """A few human-readable lines of an `evaluate` report."""
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
    lines = [f"codec eval on {report['dataset']}/{report['split']} (step {report['step']}): "
             f"{report['clips']} clips, {report['seconds']:.1f} s",
             f"  PESQ NB {fmt(report['pesq_nb'], '.3f')}  PESQ WB {fmt(report['pesq_wb'], '.3f')}"
             f"  STOI {fmt(report['stoi'], '.3f')}  mel distance "
             f"{fmt(report['mel_distance'], '.3f')}  SI-SDR {fmt(report['si_sdr'], '.2f')} dB",
             f"  codebook usage {report['codebook_usage']:.4f} of {report['codebook_size']} "
             f"codes, perplexity {report['codebook_perplexity']:.1f}"]
    if report.get("pesq_failures"):
        lines.append(f"  PESQ found no utterance in {report['pesq_failures']} clips (left out)")
    if "plot_file" in report:
        lines.append(f"  spectrograms: {report['plot_file']}")
    return "\n".join(lines)
