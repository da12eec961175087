"""vidseek: find moments in video by natural language."""

__version__ = "0.1.0"
