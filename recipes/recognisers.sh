#!/usr/bin/env bash
# Issue 29's recognisers on the lexicon corpus (wide + 12,000 word clips), by role and seed,
# evaluated on the test split and on the held-out Klatt voice family, then released.
# Judges use seed 1 and never train, distil or guide anything; the verifier uses seed 2, the
# teacher seed 0. CPU: about 2 hours of 2 cores in all. Every stage is skipped when its
# output exists.
#   bash recipes/recognisers.sh [RUNS_DIR] [RELEASES_DIR]     (default runs/recognisers releases)
set -euo pipefail
R=${1:-runs/recognisers}; OUT=${2:-releases}; D=$R/data; H=$R/heldout-data
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$R"
[ -f $R/lexicon/corpus.json ] || emotive data synth --preset lexicon --out $R/lexicon --workers 2
[ -d $D/emotive_speech ] || emotive data build emotive_speech --src $R/lexicon --out $D
[ -f $R/heldout/corpus.json ] || emotive data synth --preset heldout_voices --out $R/heldout
[ -d $H/emotive_speech ] || emotive data build emotive_speech --src $R/heldout --out $H

evals() {  # kind, run: the test split and the held-out voices
  [ -f $R/$2/eval-test/report.json ] || emotive eval $1 --ckpt $R/$2 --data-dir $D --split test \
    --out $R/$2/eval-test
  [ -f $R/$2/eval-heldout/report.json ] || emotive eval $1 --ckpt $R/$2 --data-dir $H \
    --split test --label heldout_voices --out $R/$2/eval-heldout
}
train() {  # family, preset, run, overrides...
  local family=$1 preset=$2 run=$3; shift 3
  [ -d $R/$run/checkpoints ] || emotive train $family --preset $preset --workdir $R/$run \
    --set data.data_dir=$D "$@"
}

train asr lexicon asr-judge train.seed=1 && evals asr asr-judge
train asr lexicon asr-teacher train.seed=0 && evals asr asr-teacher
train ser wide ser-judge train.seed=1 && evals ser ser-judge
train ser wide ser-verifier train.seed=2 && evals ser ser-verifier
train student base student train.seed=2 teacher.ckpt=$R/ser-verifier && evals student student
train speaker wide speaker train.seed=0 && evals speaker speaker
# The augmentation levers, measured on the SER judge's recipe (seed 1): every kind, and the
# channel kinds alone (reverb, noise, eq, gain).
train ser wide ser-judge-aug train.seed=1 augment.preset=all && evals ser ser-judge-aug
train ser wide ser-judge-channel train.seed=1 augment.preset=channel && evals ser ser-judge-channel

release() {  # run, bundle, role
  [ -d $OUT/$2 ] || emotive release $R/$1 $OUT/$2 --role $3 --eval $R/$1/eval-test \
    $R/$1/eval-heldout
}
release asr-judge asr-judge judge
release asr-teacher asr-teacher teacher
release ser-judge ser-judge judge
release ser-verifier ser-verifier verifier
release student student verifier
release speaker speaker product

# The shipped TTS re-measured by the new judges (64 clean held-out clips).
[ -f $R/tts-eval/report.json ] || emotive eval tts --ckpt $OUT/tts-small --codec \
  $OUT/tts-small/codec --asr $OUT/asr-judge --ser $OUT/ser-judge --data-dir $D --split test \
  --limit 64 --out $R/tts-eval
# Search re-measured by the new judges (16 test requests; the verifier is not a judge).
[ -f $R/search-eval/report.json ] || emotive eval search --ckpt $OUT/tts-small \
  --codec $OUT/tts-small/codec --verifier emotion=$OUT/ser-verifier --judge-asr $OUT/asr-judge \
  --judge-ser $OUT/ser-judge --strategies best_of_n --budgets 1,4,16 --limit 16 --split test \
  --data-dir $D --out $R/search-eval
