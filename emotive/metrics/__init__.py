"""Evaluation metrics shared by training evals, verifiers and reports (numpy, host side)."""
