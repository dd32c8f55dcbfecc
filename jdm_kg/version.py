"""jdm-kg's version, at the bottom so that any layer can print it (``jdm_kg.__version__`` is the same)."""

__version__ = "0.1.0"
