"""Model families. ``finsta.models.stgt``: STGT; ``finsta.models.backbones``: frame and text backbones."""
