"""Data for training the structural heads: `finsta.data.synthetic`, a seeded generator of short
structured videos with captions, exact scene graphs and hard-negative captions (numpy only)."""

from .synthetic import (SceneGraph, SyntheticVideo, SyntheticVideoDataset, cut_and_paste, generate,
                        generate_video, object_masks)

__all__ = ["SceneGraph", "SyntheticVideo", "SyntheticVideoDataset", "cut_and_paste", "generate", "generate_video",
           "object_masks"]
