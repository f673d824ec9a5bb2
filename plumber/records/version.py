"""plumber's version: the one copy, recorded in profiles, baselines and the capacity cache."""

__version__ = "0.1.0"
