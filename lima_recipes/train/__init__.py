"""Strategy objects, callbacks and the assembly of a training run."""
