"""Training: read a data source, fit a scikit-learn pipeline, report, and publish an artifact."""
