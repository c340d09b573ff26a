"""The embedded motion corpus, planted on a speech corpus (`emotive data motion`)."""
