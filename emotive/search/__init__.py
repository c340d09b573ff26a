"""Inference-time search for expressive TTS: verifiers (and, later, search strategies)."""
