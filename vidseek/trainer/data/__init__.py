"""vidseek.trainer.data."""
