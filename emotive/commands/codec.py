"""`emotive codec encode|decode|encode-split|eval`: use a trained speech codec.

    emotive codec encode IN.wav --ckpt DIR --out codes.npy
    emotive codec decode codes.npy --ckpt DIR --out OUT.wav [--chunk-frames 25 --left-context 50]
    emotive codec encode-split --ckpt DIR --data-dir DATA_DIR --split train --out data/codes/train
                               [--align-asr PHONEME_ASR_RUN]
    emotive codec eval --ckpt DIR [--data-dir DATA_DIR] [--split test] [--out DIR]

`--align-asr` fills the `phones` column (per-phoneme frames, which the ELLA-V layout needs)
by CTC forced alignment with a phoneme recogniser wherever the dataset has no eSpeak timings
(ESD, LibriTTS-R, audio folders); clips it cannot align keep none and are listed, with the
reason, on stdout and in OUT/alignment_failures.txt.

DIR is a training workdir (its newest checkpoint is used), its checkpoints/ folder or one
step folder. Codes are int32 indices, 50 per second of 16 kHz audio. Files of any length
encode and decode in flat memory: past 32 s (1,600 codes) both run in 28 s windows with 2 s
of context on each side, stitched at frame boundaries (emotive.infer.codec).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True,
                                parser_class=type(parser))
    enc = sub.add_parser("encode", help="audio file -> code indices (.npy)")
    enc.add_argument("input", help="audio file (wav, flac, ogg; any rate, resampled to 16 kHz)")
    dec = sub.add_parser("decode", help="code indices (.npy) -> 16 kHz wav")
    dec.add_argument("input", help=".npy of int code indices [N] from `emotive codec encode`")
    dec.add_argument("--chunk-frames", type=int, default=0,
                     help="decode in streaming chunks of this many frames (0: at once, or "
                     "in 28 s windows past 32 s)")
    dec.add_argument("--left-context", type=int, default=50,
                     help="streaming: frames of left context per chunk (default 50)")
    dec.add_argument("--lookahead", type=int, default=2,
                     help="streaming: frames of lookahead per chunk (default 2)")
    split = sub.add_parser("encode-split", help="pre-encode a TFDS split into an array_record dataset of codes + labels")
    split.add_argument("--data-dir", required=True, help="TFDS data dir holding the dataset")
    split.add_argument("--dataset", default="emotive_speech")
    split.add_argument("--split", default="train")
    split.add_argument("--batch-size", type=int, default=8)
    split.add_argument("--limit", type=int, default=None, help="encode only this many clips")
    split.add_argument("--align-asr", default=None, metavar="RUN",
                       help="phoneme recogniser (run, checkpoint or bundle trained with "
                       "model.targets=phonemes) whose forced alignment gives the phone "
                       "timings of clips the dataset has none for")
    ev = sub.add_parser("eval", help="PESQ, STOI, mel distance, SI-SDR, codebook usage on "
                        "held-out speakers; JSON report and spectrogram PNG")
    ev.add_argument("--data-dir", default=None,
                    help="TFDS data dir (default: the checkpoint config's data.data_dir)")
    ev.add_argument("--dataset", default="emotive_speech")
    ev.add_argument("--split", default="test", help="split to evaluate (default test: "
                    "speakers never heard in training)")
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--limit", type=int, default=None, help="evaluate only this many clips")
    for p in (enc, dec, split, ev):
        p.add_argument("--ckpt", required=True, help="codec run dir, checkpoints/ or step dir")
    for p in (enc, dec):
        p.add_argument("--out", required=True, help="output file")
    split.add_argument("--out", required=True, help="output folder (array_record dataset)")
    ev.add_argument("--out", default=None,
                    help="report folder (default: CKPT/eval-<split>-<step>)")


def run(args: argparse.Namespace) -> int:
    from emotive.errors import UserError
    from emotive.infer import codec as codec_lib

    if args.action in ("encode", "decode") and not pathlib.Path(args.input).is_file():
        raise UserError(f"{args.input}: no such file; check the path")
    codec = codec_lib.load_codec(args.ckpt)
    if args.action == "encode":
        return _encode(codec, args)
    if args.action == "decode":
        return _decode(codec, args, codec_lib)
    if args.action == "encode-split":
        return _encode_split(codec, args, codec_lib)
    from emotive.commands.eval import run_split_eval

    return run_split_eval("codec", args, codec)


def _encode_split(codec, args, codec_lib) -> int:
    aligner = None
    if args.align_asr:
        from emotive.infer.align import require_phonemes
        from emotive.infer.asr import load_recognizer

        aligner = load_recognizer(args.align_asr)
        require_phonemes(aligner)
    table = codec_lib.encode_split(codec, args.data_dir, args.split, dataset=args.dataset,
                                   batch_size=args.batch_size, limit=args.limit,
                                   aligner=aligner)
    codec_lib.save_encoded(args.out, table)
    seconds = table["codes"].size / codec.cfg.model.sample_rate * codec.hop
    timed = sum(bool(p) for p in table["phones"])
    print(f"encoded {len(table['id'])} clips ({seconds:.1f} s, {table['codes'].size} codes) "
          f"of {args.dataset}/{args.split} -> {args.out}; {timed} with phone timings")
    failures = table.get("alignment_failures", ())
    if len(failures):
        path = pathlib.Path(args.out) / "alignment_failures.txt"
        path.write_text("".join(f"{line}\n" for line in failures))
        print(f"forced alignment failed on {len(failures)} clips (they keep no timings; all "
              f"in {path}):")
        for line in failures[:10]:
            print(f"  {line}")
    return 0


def _encode(codec, args) -> int:
    import soundfile as sf

    info = sf.info(str(args.input)) if _readable(args.input) else None
    codes = codec.encode_file(args.input)
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, codes)
    note = ""
    if info is not None and info.samplerate != codec.cfg.model.sample_rate:
        note = f" (resampled from {info.samplerate} Hz)"
    if info is not None and info.channels > 1:
        note += f" (mixed {info.channels} channels to mono)"
    print(f"{args.input}{note}: {codes.size} codes ({codes.size / 50:.2f} s at 50 tokens/s) "
          f"-> {out}")
    return 0


def _readable(path) -> bool:
    import soundfile as sf

    try:
        sf.info(str(path))
        return True
    except (sf.SoundFileError, RuntimeError, OSError):
        return False  # load_audio reports it properly


def _decode(codec, args, codec_lib) -> int:
    from emotive.codecs.audio import save_audio

    codes = codec_lib.load_codes(args.input, codec.codebook_size)
    if args.chunk_frames > 0:
        pieces = codec_lib.stream_decode(codec, codes, chunk_frames=args.chunk_frames,
                                         left_context=args.left_context,
                                         lookahead=args.lookahead)
        audio = np.concatenate(list(pieces))
    else:
        audio = codec.decode(codes[None])[0]
    save_audio(args.out, audio, codec.cfg.model.sample_rate)
    print(f"{args.input}: {codes.size} codes -> {audio.size / codec.cfg.model.sample_rate:.2f} s "
          f"of 16 kHz audio -> {args.out}")
    return 0
