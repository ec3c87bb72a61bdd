"""Patchwire's version (``patchwire.__version__``), in a module of its own so that parts
of the package can name it without importing the package's face."""

__all__ = ["__version__"]

__version__ = "0.1.0"
