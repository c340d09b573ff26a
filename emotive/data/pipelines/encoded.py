"""Pre-encoded speech datasets: code sequences with their labels, stored as array_record.

`emotive codec encode-split` writes one folder per split; the TTS LM trains on it:

    OUT/
      codes.array_record   one record per clip, in clip order (random access, grain-readable)
      info.json            format version, clip count, total codes, codebook_size,
                           speakers (the names `speaker` indexes), label names

A record is a UTF-8 JSON header line (id, text, emotion, intensity, speaker, adv, has_adv,
phones, frames), a newline, then `frames` little-endian int32 code indices. `phones` is the
clip's phone timings at the codec's rate, JSON [[ipa, frames], ...] summing to the codes
(`emotive.data.pipelines.ella.phone_frames`; "" when unknown, and in records written before
it existed). JSON keeps the labels
readable by any tool; the codes stay raw bytes so a record decodes without parsing numbers.

In memory the whole split is one table (what `encode_split` returns and `load_encoded`
gives back): codes int32 [sum N] end to end, offsets int64 [C + 1] (clip c is
codes[offsets[c]:offsets[c+1]]), id, text (str [C]), emotion, intensity, speaker
(int32 [C]), adv float32 [C, 3], has_adv bool [C], phones (str [C]), speakers (str [S]),
codebook_size.
`EncodedSource` gives grain random access to single clips without loading the table.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from emotive.errors import UserError

RECORDS = "codes.array_record"
INFO = "info.json"
FORMAT = 1
_LABELS = ("id", "text", "emotion", "intensity", "speaker", "adv", "has_adv")


def encode_record(row: dict, codes_N: np.ndarray) -> bytes:
    header = {k: row[k] for k in _LABELS}
    header["phones"] = row.get("phones", "")
    header["frames"] = int(codes_N.size)
    return (json.dumps(header).encode() + b"\n" +
            np.ascontiguousarray(codes_N, dtype="<i4").tobytes())


def decode_record(record: bytes) -> dict:
    """One record -> dict of labels plus codes int32 [N]."""
    head, _, body = record.partition(b"\n")
    row = json.loads(head)
    row["codes"] = np.frombuffer(body, dtype="<i4").astype(np.int32)
    if row["codes"].size != row.pop("frames"):
        raise UserError("a code record is truncated; re-run `emotive codec encode-split`")
    return row


def save_encoded(path, table: dict) -> None:
    """Writes an encode_split table as an array_record folder (see the module docstring)."""
    from array_record.python.array_record_module import ArrayRecordWriter

    out = pathlib.Path(path)
    if out.is_file():
        raise UserError(f"{out} is a file; pass a folder for the encoded dataset")
    out.mkdir(parents=True, exist_ok=True)
    offsets = table["offsets"]
    writer = ArrayRecordWriter(str(out / RECORDS), "group_size:1")
    try:
        for c in range(len(table["id"])):
            row = {"id": str(table["id"][c]), "text": str(table["text"][c]),
                   "emotion": int(table["emotion"][c]), "intensity": int(table["intensity"][c]),
                   "speaker": int(table["speaker"][c]),
                   "adv": [float(v) for v in table["adv"][c]],
                   "has_adv": bool(table["has_adv"][c]),
                   "phones": str(table["phones"][c]) if "phones" in table else ""}
            writer.write(encode_record(row, table["codes"][offsets[c]:offsets[c + 1]]))
    finally:
        writer.close()
    info = {"format": FORMAT, "clips": int(len(table["id"])), "codes": int(table["codes"].size),
            "codebook_size": int(table["codebook_size"]),
            "speakers": [str(s) for s in table["speakers"]], "labels": list(_LABELS)}
    (out / INFO).write_text(json.dumps(info, indent=1) + "\n")


def _open(path) -> tuple[pathlib.Path, dict]:
    folder = pathlib.Path(path)
    if not (folder / INFO).is_file() or not (folder / RECORDS).is_file():
        raise UserError(f"{folder} is not an encoded dataset (no {INFO} and {RECORDS}); make "
                        "it with `emotive codec encode-split --ckpt CODEC --data-dir DATA "
                        f"--split SPLIT --out {folder}`")
    try:
        info = json.loads((folder / INFO).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{folder / INFO} is unreadable ({exc}); re-run `emotive codec "
                        "encode-split`") from None
    if info.get("format") != FORMAT:
        raise UserError(f"{folder} has encoded-dataset format {info.get('format')!r}, this "
                        f"version reads {FORMAT}; re-run `emotive codec encode-split`")
    return folder, info


class EncodedSource:
    """Random access to the clips of an encoded dataset (a grain RandomAccessDataSource)."""

    def __init__(self, path):
        from array_record.python.array_record_data_source import ArrayRecordDataSource

        folder, self.info = _open(path)
        self._source = ArrayRecordDataSource([str(folder / RECORDS)])
        if len(self._source) != self.info["clips"]:
            raise UserError(f"{folder} holds {len(self._source)} records but its {INFO} says "
                            f"{self.info['clips']}; re-run `emotive codec encode-split`")

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        return decode_record(self._source[index])


def load_encoded(path) -> dict:
    """Reads a whole encoded dataset into the in-memory table (see the module docstring)."""
    source = EncodedSource(path)
    rows = [source[i] for i in range(len(source))]
    lengths = [r["codes"].size for r in rows]
    codes = (np.concatenate([r["codes"] for r in rows]) if rows else np.zeros(0, np.int32))
    return {"codes": codes.astype(np.int32),
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "id": np.array([r["id"] for r in rows], dtype=str),
            "text": np.array([r["text"] for r in rows], dtype=str),
            **{k: np.array([r[k] for r in rows], np.int32)
               for k in ("emotion", "intensity", "speaker")},
            "adv": np.array([r["adv"] for r in rows], np.float32).reshape(-1, 3),
            "has_adv": np.array([r["has_adv"] for r in rows], bool),
            "phones": np.array([r.get("phones", "") for r in rows], dtype=str),
            "speakers": np.array(source.info["speakers"], dtype=str),
            "codebook_size": np.int64(source.info["codebook_size"])}
