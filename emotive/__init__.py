"""emotive: scaled, emotionally expressive generative speech and motion models in JAX."""

__version__ = "0.1.0"
