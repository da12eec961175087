"""vidseek.export."""
