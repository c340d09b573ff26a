"""The embedded emotional speech corpus: eSpeak NG driven in a helper process (espeak), the
voices, the emotion presets and their signal processing (emotions), the hand-written and
generated sentences (texts, generated), prosodic features (prosody), and build_corpus (synth)."""
