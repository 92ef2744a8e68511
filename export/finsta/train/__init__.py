"""Training: configs, cached backbone features, the loop, and the ``finsta-train`` command."""
