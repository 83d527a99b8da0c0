"""tabserve: take a tabular scikit-learn model from a notebook to production."""

__version__ = "0.1.0"

__all__ = ["__version__"]
