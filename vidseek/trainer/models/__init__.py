"""vidseek.trainer.models."""
