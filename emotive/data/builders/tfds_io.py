"""TFDS plumbing shared by the dataset builders: checked audio loading, the build report,
building a dataset to array_record, and opening a built split for random access.

Which TFDS path, and why: `tfds.core.GeneratorBasedBuilder` with `file_format="array_record"`.
TFDS 4.9 writes array_record through its numpy example serializer, so `download_and_prepare()`
runs with no TensorFlow installed (checked by the tests, which run without it). No hand-written
array_record files or dataset_info.json are needed, and what is written is a normal TFDS
dataset: `tfds.builder_from_directory(DATA_DIR/NAME/VERSION).as_data_source(split)` (what
`open_split` uses) gives random access, and so does `tfds.data_source(NAME, data_dir=DATA_DIR)`
for every NAME but crema_d (see below).

Two TFDS quirks shape the code:
- TFDS ships its own (TensorFlow-based) `crema_d` builder, so our builders are declared with
  `skip_registration=True` and read back from their directory (`tfds.data_source("crema_d")`
  would pick TFDS's class).
- TFDS refuses to write a split with no examples, so only splits with candidate files are
  declared, and a split whose every file was rejected ends the build with a UserError.

Beside each built dataset (DATA_DIR/NAME/VERSION/) two files are written:
    build_report.json  kept/rejected/skipped files, warnings and conversions (see BuildReport)
    split_index.json   per split: the number of samples of each record (in record order;
                       motion frames for a dataset without audio) and
                       the sorted speaker names, so pipelines can bucket by length and index
                       speakers without reading every record again.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import shutil
import tempfile
from typing import Any, Iterator

import numpy as np
import soundfile as sf

from emotive.configs.common import SAMPLE_RATE
from emotive.errors import UserError

REPORT_FILE = "build_report.json"
INDEX_FILE = "split_index.json"
# Files listed per reason when a report is printed (the JSON lists all of them).
_PRINT_LIMIT = 8

# load_audio's one-line UserError messages -> short reason codes, checked in this order.
_REASONS = (
    ("no such file", "missing"),
    ("truncated", "truncated"),
    ("contains no audio samples", "empty"),
    ("NaN or Inf", "nan_or_inf"),
    ("too short", "too_short"),
    ("too long", "too_long"),
    ("silent", "silent"),
    ("unreadable or corrupt", "corrupt"),
)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One candidate example: its key (unique id), audio file, split and label features."""

    key: str
    path: pathlib.Path
    split: str
    labels: dict[str, Any]


class BuildReport:
    """Tally of a build: what was kept, rejected (bad audio), skipped (not part of the dataset),
    warned about (e.g. clipping) and converted (rate, channels, sample format). Nothing is
    dropped without an entry here."""

    def __init__(self, name: str, src_dir: pathlib.Path):
        self.name = name
        self.src_dir = pathlib.Path(src_dir)
        self.kept: collections.Counter = collections.Counter()  # split -> clips
        self.kept_seconds: collections.Counter = collections.Counter()
        self.rejected: dict[str, list[dict]] = collections.defaultdict(list)
        self.skipped: dict[str, list[str]] = collections.defaultdict(list)
        self.warnings: dict[str, list[dict]] = collections.defaultdict(list)
        self.converted: dict[str, list[str]] = collections.defaultdict(list)
        self.output_dir: str | None = None

    def rel(self, path) -> str:
        """`path` relative to the source folder (absolute if outside it)."""
        path = pathlib.Path(path)
        try:
            return path.relative_to(self.src_dir).as_posix()
        except ValueError:
            return path.as_posix()

    def reject(self, path, reason: str, message: str) -> None:
        self.rejected[reason].append({"file": self.rel(path), "message": message})

    def skip(self, path, reason: str) -> None:
        self.skipped[reason].append(self.rel(path))

    def to_dict(self) -> dict:
        """The report as JSON-ready data (the content of build_report.json)."""
        def by_count(d):
            return {k: d[k] for k in sorted(d, key=lambda k: (-len(d[k]), k))}

        return {
            "dataset": self.name, "source": str(self.src_dir), "output": self.output_dir,
            "kept": sum(self.kept.values()), "kept_per_split": dict(sorted(self.kept.items())),
            "kept_hours": round(sum(self.kept_seconds.values()) / 3600, 4),
            "rejected": sum(len(v) for v in self.rejected.values()),
            "rejected_by_reason": by_count(self.rejected),
            "skipped": sum(len(v) for v in self.skipped.values()),
            "skipped_by_reason": by_count(self.skipped),
            "warnings_by_kind": by_count(self.warnings),
            "converted": {k: len(v) for k, v in by_count(self.converted).items()},
            "converted_files": by_count(self.converted),
        }


def format_report(report: dict) -> str:
    """Human-readable summary of `BuildReport.to_dict()` (a few file names per reason)."""
    def names(items):
        items = [i["file"] + f" ({i['message'].split(': ', 1)[-1]})" if isinstance(i, dict)
                 else i for i in items]
        more = f", ... {len(items) - _PRINT_LIMIT} more" if len(items) > _PRINT_LIMIT else ""
        return ", ".join(items[:_PRINT_LIMIT]) + more

    splits = ", ".join(f"{k} {v}" for k, v in report["kept_per_split"].items())
    lines = [f"build {report['dataset']}: {report['source']} -> {report['output']}",
             f"  kept     {report['kept']} clips ({splits}), {report['kept_hours']:.3f} h"]
    for title, key in (("rejected", "rejected_by_reason"), ("skipped", "skipped_by_reason"),
                       ("warnings", "warnings_by_kind")):
        total = sum(len(v) for v in report[key].values())
        lines.append(f"  {title:<8} {total}")
        for reason, items in report[key].items():
            lines.append(f"    {reason} ({len(items)}): {names(items)}")
    if report["converted"]:
        converted = ", ".join(f"{k} ({v})" for k, v in report["converted"].items())
        lines.append(f"  converted {converted}")
    return "\n".join(lines)


def _reason(message: str) -> str:
    return next((code for text, code in _REASONS if text in message), "unreadable")


def read_clip(path: pathlib.Path, report: BuildReport, *, min_seconds: float,
              max_seconds: float | None) -> np.ndarray | None:
    """Loads `path` as 16 kHz mono int16 [T] through `load_audio`, or returns None and records
    why in `report` (empty, silent, NaN, truncated, corrupt, too short or too long). Conversions
    (sample rate, channels, sample format) and `inspect_audio` warnings are recorded too."""
    # Imported here: it pulls in JAX, which `emotive data --help` should not wait for.
    from emotive.codecs.audio import load_audio

    path = pathlib.Path(path)
    if path.is_file() and path.stat().st_size == 0:
        report.reject(path, "empty", f"{path}: file is 0 bytes")
        return None
    issues: list[str] = []
    try:
        x = load_audio(path, SAMPLE_RATE, normalize_loudness=False, min_seconds=min_seconds,
                       max_seconds=max_seconds, issues=issues)
    except UserError as e:
        report.reject(path, _reason(str(e)), str(e))
        return None
    for issue in issues:
        report.warnings[issue.split(":")[0]].append({"file": report.rel(path), "message": issue})
    info = sf.info(str(path))  # readable: load_audio succeeded
    if info.samplerate != SAMPLE_RATE:
        report.converted[f"{info.samplerate} Hz -> {SAMPLE_RATE} Hz"].append(report.rel(path))
    if info.channels != 1:
        report.converted[f"{info.channels} channels -> mono"].append(report.rel(path))
    if info.subtype != "PCM_16":
        report.converted[f"{info.subtype} -> PCM_16"].append(report.rel(path))
    # soundfile decodes int16 as k / 32768, so this scale round-trips 16-bit files exactly.
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def base_features() -> dict:
    """Features every builder has: id, audio (int16 [T] at 16 kHz) and sample_rate."""
    import tensorflow_datasets as tfds

    return {"id": tfds.features.Text(),
            # Stored as one bytes field: parsing 16-bit samples as an int64 list is ~5x slower.
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding="bytes"),
            "sample_rate": tfds.features.Scalar(dtype=np.int32)}


def generate_examples(clips: list[Clip], report: BuildReport, *, min_seconds: float,
                      max_seconds: float | None) -> Iterator[tuple[str, dict]]:
    """Yields (key, example) for the clips whose audio loads; the others go in `report`."""
    for clip in clips:
        audio = read_clip(clip.path, report, min_seconds=min_seconds, max_seconds=max_seconds)
        if audio is None:
            continue
        report.kept[clip.split] += 1
        report.kept_seconds[clip.split] += audio.size / SAMPLE_RATE
        yield clip.key, {"id": clip.key, "audio": audio, "sample_rate": SAMPLE_RATE,
                         **clip.labels}


def _write_split_index(builder, out_dir: pathlib.Path) -> None:
    """Reads each built split once and writes per-record lengths and the speaker names."""
    index = {}
    for split in builder.info.splits:
        source = builder.as_data_source(split)
        lengths, speakers = [], set()
        for start in range(0, len(source), 256):
            for record in source.__getitems__(range(start, min(start + 256, len(source)))):
                # Motion-only datasets (AMASS) index their motion frames instead.
                lengths.append(int(record["audio"].shape[0] if "audio" in record
                                   else record["poses"].shape[0]))
                if "speaker" in record:
                    speakers.add(_text(record["speaker"]))
        index[split] = {"num_samples": lengths, "speakers": sorted(speakers)}
    (out_dir / INDEX_FILE).write_text(json.dumps(index) + "\n")


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def build_dataset(builder_cls, src_dir, data_dir, *, overwrite: bool = False,
                  progress: bool = True, verbose: bool = True, **options) -> dict:
    """Builds `builder_cls` from `src_dir` into `data_dir` as array_record, without TensorFlow.

    `options` go to the builder (e.g. min_seconds, holdout). Writes build_report.json and
    split_index.json beside the dataset, prints the report when `verbose`, and returns it as a
    dict (see BuildReport.to_dict). Raises UserError for a missing source, an existing dataset
    (unless `overwrite`), or a split whose every file was rejected.
    """
    import tensorflow_datasets as tfds

    src_dir, data_dir = pathlib.Path(src_dir), pathlib.Path(data_dir)
    if not src_dir.is_dir():
        raise UserError(f"--src {src_dir} is not a directory; pass the folder holding the audio")
    report = BuildReport(builder_cls.name, src_dir)
    builder = builder_cls(src_dir=src_dir, report=report, data_dir=str(data_dir),
                          file_format="array_record", **options)
    out_dir = pathlib.Path(builder.data_dir)
    if (out_dir / "dataset_info.json").exists():
        if not overwrite:
            raise UserError(f"{out_dir} already holds a built dataset; pass --overwrite to "
                            "rebuild it or choose another --out")
        shutil.rmtree(out_dir)
        builder = builder_cls(src_dir=src_dir, report=report, data_dir=str(data_dir),
                              file_format="array_record", **options)
    report.output_dir = str(out_dir)
    tfds.display_progress_bar(progress)
    shuffle_limit = _shuffle_in_memory()
    try:
        # Nothing is downloaded; a scratch download dir keeps empty folders out of data_dir.
        with tempfile.TemporaryDirectory() as scratch:
            builder.download_and_prepare(download_dir=scratch)
    except ModuleNotFoundError as e:
        if e.name != "tensorflow":
            raise
        raise UserError(f"a split is larger than the {shuffle_limit / 2**30:.1f} GiB that can be "
                        "shuffled in memory here; install tensorflow-cpu (TFDS then shuffles "
                        "on disk) or build on a machine with more memory") from None
    except Exception as e:  # TFDS wraps the generator's error; this one means "all rejected"
        if "No examples were yielded" not in str(e):
            raise
        failed = out_dir.parent / REPORT_FILE
        failed.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        if verbose:
            print(format_report(report.to_dict()))
        split = str(e).split('split "')[-1].split('"')[0]
        rejected = report.to_dict()["rejected"]
        raise UserError(f"every file of split {split!r} was rejected ({rejected} rejected in "
                        f"all); see {failed}") from None
    _write_split_index(builder, out_dir)
    (out_dir.parent / REPORT_FILE).unlink(missing_ok=True)  # a failed earlier attempt's report
    result = report.to_dict()
    (out_dir / REPORT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    if verbose:
        print(format_report(result))
    return result


def _shuffle_in_memory() -> int:
    """TFDS shuffles a split's examples in memory up to 1 GB, then spills them to temporary
    files through tf.io.gfile, which needs TensorFlow. Without TensorFlow, raise that limit to
    half of this machine's memory (about 100 hours of 16 kHz audio per 24 GB); returns the
    limit in bytes. With TensorFlow installed, TFDS's own limit and spill stay."""
    import importlib.util
    import os

    from tensorflow_datasets.core import shuffle

    if importlib.util.find_spec("tensorflow") is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        shuffle.MAX_MEM_BUFFER_SIZE = max(shuffle.MAX_MEM_BUFFER_SIZE, memory // 2)
    return shuffle.MAX_MEM_BUFFER_SIZE


@dataclasses.dataclass(frozen=True)
class SplitSource:
    """A built split opened for random access.

    source: a TFDS ArrayRecordDataSource (len, [i], __getitems__) of example dicts;
    num_samples: int64 [N] audio length of each record, in record order; speakers: the sorted
    speaker names of the split (empty for a dataset without speakers); info: tfds DatasetInfo.
    """

    source: Any
    num_samples: np.ndarray
    speakers: tuple[str, ...]
    info: Any


def dataset_dir(data_dir, name: str) -> pathlib.Path:
    """DATA_DIR/NAME/VERSION of the newest built version; raises UserError if none."""
    root = pathlib.Path(data_dir) / name
    versions = sorted((p for p in root.glob("*") if (p / "dataset_info.json").is_file()),
                      key=lambda p: tuple(int(v) for v in p.name.split(".") if v.isdigit()))
    if not versions:
        raise UserError(f"no built {name} dataset under {data_dir}; run "
                        f"`emotive data build {name} --src DIR --out {data_dir}` first")
    return versions[-1]


def open_split(data_dir, name: str, split: str) -> SplitSource:
    """Opens split `split` of dataset `name` built under `data_dir`; returns a SplitSource."""
    import tensorflow_datasets as tfds

    path = dataset_dir(data_dir, name)
    builder = tfds.builder_from_directory(str(path))
    if split not in builder.info.splits:
        raise UserError(f"{name} has no split {split!r}; it has {', '.join(builder.info.splits)}")
    source = builder.as_data_source(split)
    index_path = path / INDEX_FILE
    if index_path.is_file():
        entry = json.loads(index_path.read_text())[split]
        num_samples = np.asarray(entry["num_samples"], np.int64)
        speakers = tuple(entry["speakers"])
    else:  # built by other means: read every record once
        records = [source[i] for i in range(len(source))]
        num_samples = np.asarray([r["audio"].shape[0] for r in records], np.int64)
        speakers = tuple(sorted({_text(r["speaker"]) for r in records if "speaker" in r}))
    return SplitSource(source, num_samples, speakers, builder.info)


def open_data_split(data: Any, split: str) -> "SplitSource":
    """Opens `split` of a config's data section (fields data_dir, dataset); when it is not
    built, the UserError names the commands that build the embedded corpus there."""
    try:
        return open_split(data.data_dir, data.dataset, split)
    except UserError as exc:
        if "no built" not in str(exc):
            raise
        corpus = "data/emotive_speech"
        raise UserError(f"no built {data.dataset} dataset under data.data_dir={data.data_dir}; "
                        f"build it with `emotive data synth --preset tiny --out {corpus}` then "
                        f"`emotive data build {data.dataset} --src {corpus} --out "
                        f"{data.data_dir}`") from None
