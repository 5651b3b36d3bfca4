"""Records -> canonical conversations -> templated tokens and labels -> cached -> batches."""
