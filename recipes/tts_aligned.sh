#!/usr/bin/env bash
# Issue 30: the aligned (ELLA-V) TTS on the wide corpus, its levers, and the release.
# The wide corpus (10,200 train clips: 6,000 generated sentences + the full corpus's, 34 train
# voices) is synthesised with eSpeak's phone timings, encoded by the released 1,000-code codec
# (the ASR-teacher codec in releases/tts-small/codec), and the TTS trains on phonemes
# interleaved with their codes. Judges: releases/asr-judge and releases/ser-judge (seed 1),
# never used in training or search. As measured: the three runs side by side on 2 CPU cores
# (about 3 s a step each), the levers compared at step 1000, the released model at 1500.
# Stages are skipped when their output exists.
#   bash recipes/tts_aligned.sh [RUNS_DIR] [RELEASES_DIR]     (default runs/tts releases)
set -euo pipefail
R=${1:-runs/tts}; OUT=${2:-releases}; D=$R/data; E=$R/enc
CODEC=${CODEC:-$OUT/tts-small/codec}
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$R"
[ -f $R/wide/corpus.json ] || emotive data synth --preset wide --out $R/wide --workers 2
[ -d $D/emotive_speech ] || emotive data build emotive_speech --src $R/wide --out $D
for split in validation train test; do
  [ -d $E/$split ] || emotive codec encode-split --data-dir $D --split $split --ckpt $CODEC \
    --out $E/$split
done

train() {  # run, steps, overrides...
  local run=$1 steps=$2; shift 2
  [ -d $R/$run/checkpoints/$steps ] || emotive train tts --preset aligned --workdir $R/$run \
    --set data.train=$E/train data.eval=$E/validation data.seq_len=768 train.batch_size=6 \
    train.steps=1500 train.ckpt_every=250 "$@"
}
judge() {  # run, step, label, extra eval flags...
  local run=$1 step=$2 label=$3; shift 3
  [ -f $R/$run/eval-$label/report.json ] || emotive eval tts \
    --ckpt $R/$run/checkpoints/$step --codec $CODEC --asr $OUT/asr-judge --ser $OUT/ser-judge \
    --data-dir $D --split test --limit 64 --out $R/$run/eval-$label "$@"
}
# Levers at step 1000 (this session stopped the two other runs there for time; the recipe
# trains them to 1500 like the released one, and compares the 1000-step checkpoints).
train aligned-adv2 1500 data.local_advance=2
train aligned-adv0 1000 data.local_advance=0
train plain-wide 1000 vocab.layout=llasa
judge plain-wide 1000 test1000
judge aligned-adv0 1000 test1000
judge aligned-adv2 1000 test1000
judge aligned-adv2 1000 oracle1000 --oracle-durations
judge aligned-adv2 1000 t05-1000 --temperature 0.5
# The released model: its eval, duration control, search.
judge aligned-adv2 1500 test
judge aligned-adv2 1500 speed080 --speed 0.8
judge aligned-adv2 1500 speed125 --speed 1.25
if [ ! -f $OUT/tts-small/model.safetensors ] || ! grep -q ella_v $OUT/tts-small/tts_vocab.json; then
  rm -rf $R/codec-bundle && cp -r $CODEC $R/codec-bundle && rm -rf $OUT/tts-small
  emotive release $R/aligned-adv2 $OUT/tts-small --codec $R/codec-bundle \
    --eval $R/aligned-adv2/eval-test
fi
[ -f $R/search-eval/report.json ] || emotive eval search --ckpt $OUT/tts-small \
  --codec $OUT/tts-small/codec --verifier emotion=$OUT/ser-verifier --judge-asr $OUT/asr-judge \
  --judge-ser $OUT/ser-judge --strategies best_of_n --budgets 1,4,16 --limit 16 --split test \
  --data-dir $D --out $R/search-eval
