"""Multirun ablations: which jobs a sweep launched, their results gathered into one report, and
the W&B views that go with them."""
