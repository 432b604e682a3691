"""The dataset card: per-config entries (features, statistics, figures) and the Jinja renderer."""
