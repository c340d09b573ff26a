"""Held-out reports, one module per family, sharing emotive.evals.common."""
