"""vidseek.index."""
