"""vidseek.cli."""
