"""vidseek.engine."""
