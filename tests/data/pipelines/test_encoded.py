"""Encoded datasets: the phone timings column round-trips, and records without it load as ""."""

import json

import numpy as np

from emotive.data.pipelines.encoded import RECORDS, load_encoded, save_encoded


def _table(phones=None) -> dict:
    lengths = [3, 5]
    table = {"codes": np.arange(sum(lengths), dtype=np.int32),
             "offsets": np.array([0, 3, 8], np.int64), "id": np.array(["a", "b"]),
             "text": np.array(["the cat", "ah"]), "emotion": np.array([0, 2], np.int32),
             "intensity": np.array([1, 2], np.int32), "speaker": np.array([0, 1], np.int32),
             "adv": np.zeros((2, 3), np.float32), "has_adv": np.array([True, False]),
             "speakers": np.array(["spk01", "spk02"]), "codebook_size": np.int64(64)}
    if phones is not None:
        table["phones"] = np.array(phones)
    return table


def test_phones_round_trip_and_default_to_empty(tmp_path):
    timings = [json.dumps([["ð", 1], ["ə", 0], ["k", 2]]), ""]
    save_encoded(tmp_path / "with", _table(timings))
    again = load_encoded(tmp_path / "with")
    assert again["phones"].tolist() == timings and again["phones"].dtype.kind == "U"
    np.testing.assert_array_equal(again["codes"], _table()["codes"])
    # a table without the column saves "" per clip
    save_encoded(tmp_path / "without", _table())
    assert load_encoded(tmp_path / "without")["phones"].tolist() == ["", ""]


def test_records_written_before_phones_existed_load_as_empty(tmp_path):
    from array_record.python.array_record_module import ArrayRecordWriter

    save_encoded(tmp_path / "old", _table())
    writer = ArrayRecordWriter(str(tmp_path / "old" / RECORDS), "group_size:1")
    for c, (start, end) in enumerate([(0, 3), (3, 8)]):  # the old header: no "phones" key
        header = {"id": "ab"[c], "text": "x", "emotion": 0, "intensity": 1, "speaker": c,
                  "adv": [0.0, 0.0, 0.0], "has_adv": False, "frames": end - start}
        writer.write(json.dumps(header).encode() + b"\n" +
                     np.arange(start, end, dtype="<i4").tobytes())
    writer.close()
    old = load_encoded(tmp_path / "old")
    assert old["phones"].tolist() == ["", ""] and old["offsets"].tolist() == [0, 3, 8]
