"""finsta: the PyTorch side of finsta-rt (modules, losses, training, export to model bundles)."""

__version__ = "0.1.0"
