"""The embedded motion corpus, planted on a speech corpus (`emotive data motion`): audio cues
(cues), emotion and speaker styles (styles), one take's body (body) and face (face) from the
shared time curves (curves), the corpus's files (corpus_files), and the build (synth)."""
