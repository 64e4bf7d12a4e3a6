"""sessions: session analytics for LLM application traces."""

__version__ = "0.1.0"
