#!/usr/bin/env bash
# Issue 30: the aligned (ELLA-V) TTS on the wide corpus, its levers, and the release.
# The wide corpus (10,200 train clips of 6,000 generated + the full corpus's sentences, 34
# train voices) is synthesised with eSpeak's phone timings, encoded by the released
# 1,000-code codec (releases/tts-small/codec, the ASR-teacher codec), and the TTS trains on
# phonemes interleaved with their codes. Judges: releases/asr-judge and releases/ser-judge
# (seed 1), never used in training. CPU: about 2 hours of 2 cores. Stages are skipped when
# their output exists.
#   bash recipes/tts_aligned.sh [RUNS_DIR] [RELEASES_DIR]     (default runs/tts releases)
set -euo pipefail
R=${1:-runs/tts}; OUT=${2:-releases}; D=$R/data; E=$R/enc
CODEC=${CODEC:-$OUT/tts-small/codec}; STEPS=${STEPS:-3000}
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$R"
[ -f $R/wide/corpus.json ] || emotive data synth --preset wide --out $R/wide --workers 2
[ -d $D/emotive_speech ] || emotive data build emotive_speech --src $R/wide --out $D
for split in train validation test; do
  [ -d $E/$split ] || emotive codec encode-split --data-dir $D --split $split --ckpt $CODEC \
    --out $E/$split
done

train() {  # run, preset, overrides...
  local run=$1 preset=$2; shift 2
  [ -d $R/$run/checkpoints ] || emotive train tts --preset $preset --workdir $R/$run \
    --set data.train=$E/train data.eval=$E/validation train.steps=$STEPS "$@"
}
judge() {  # run, label, extra eval flags...
  local run=$1 label=$2; shift 2
  [ -f $R/$run/eval-$label/report.json ] || emotive eval tts --ckpt $R/$run --codec $CODEC \
    --asr $OUT/asr-judge --ser $OUT/ser-judge --data-dir $D --split test --limit 64 \
    --out $R/$run/eval-$label "$@"
}
# Levers: local advance 0 vs 2 frames (ELLA-V), then the plain Llasa layout on the same data.
train aligned-adv0 aligned data.local_advance=0 && judge aligned-adv0 test
train aligned-adv2 aligned data.local_advance=2 && judge aligned-adv2 test
judge aligned-adv2 oracle --oracle-durations
train plain-wide aligned vocab.layout=llasa && judge plain-wide test
