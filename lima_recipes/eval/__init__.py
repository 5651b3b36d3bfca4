"""Evaluation: generation with LIMA decoding, automatic metrics (judges and reports follow)."""
