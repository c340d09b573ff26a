#!/usr/bin/env bash
# Issue 20's figures: speech-driven motion (motion VAE + latent diffusion) on the embedded
# corpora, judged on held-out speakers by `emotive eval motion` (the motion-emotion probe is
# fitted on the train split's ground truth; FGD uses the corpus's fixed-seed autoencoder).
#   bash recipes/motion.sh [RUNS_DIR]          (default runs/motion; about 1.5 hours on 2 cores)
set -euo pipefail
R=${1:-runs/motion}
export TF_CPP_MIN_LOG_LEVEL=2
mkdir -p $R
# The speech corpus (full: 16 speakers, 154 sentences) and its TFDS build, then the motion
# corpus planted on it (2 takes per clip, 6.1 h of train motion) with its FGD autoencoder.
[ -f $R/speech/corpus.json ] || emotive data synth --preset full --out $R/speech --workers 2
[ -d $R/data/emotive_speech ] || emotive data build emotive_speech --src $R/speech --out $R/data
[ -f $R/motion-full/corpus.json ] || emotive data motion --preset full --speech $R/speech \
  --out $R/motion-full --workers 2
# The style encoder: a speaker encoder on the speech corpus (12 minutes).
[ -d $R/speaker-base/checkpoints ] || emotive train speaker --preset base \
  --set data.data_dir=$R/data --workdir $R/speaker-base
# The motion VAE (3,000 steps, about 12 minutes alone on 2 cores).
[ -d $R/vae-base/checkpoints ] || emotive train motion_vae --preset base \
  --set data.motion_dir=$R/motion-full --workdir $R/vae-base
# The denoiser on log-mel content with speaker style (4,000 steps).
[ -d $R/ldm-mel/checkpoints ] || emotive train motion_ldm --preset base --set \
  vae.ckpt=$R/vae-base data.motion_dir=$R/motion-full style.speaker_ckpt=$R/speaker-base \
  --workdir $R/ldm-mel
emotive eval motion --ckpt $R/ldm-mel --split test --limit 128 --out $R/eval-ldm-mel
python bench/motion.py --ckpt $R/ldm-mel --seconds 10,60
echo "report: $R/eval-ldm-mel/report.json"
