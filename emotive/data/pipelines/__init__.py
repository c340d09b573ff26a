"""Input pipelines: the one grain iterator (input), speech batches with labels (speech),
pre-encoded code tables (encoded), packed TTS rows (tts) and motion training data (motion)."""
