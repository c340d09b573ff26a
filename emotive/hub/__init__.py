"""Hugging Face import/export, safetensors/config readers, release bundles (release.py)."""
