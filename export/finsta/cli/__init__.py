"""The commands of the PyTorch side (`finsta-train`, `finsta-export`): the top layer, the only one that looks
up a family in :mod:`finsta.families` by name."""
