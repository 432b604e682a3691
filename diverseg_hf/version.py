"""The package version (one place; ``diverseg_hf.__version__`` re-exports it)."""

__version__ = "0.1.0"
