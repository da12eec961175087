"""vidseek.trainer."""
