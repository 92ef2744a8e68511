"""Data for training the structural heads: `finsta.data.synthetic`, a seeded generator of short
structured videos with captions, exact scene graphs and hard-negative captions (numpy only), and
`finsta.data.cut_and_paste`, S-ViLM's splices of those videos."""

from .synthetic import SceneGraph, SyntheticVideo, SyntheticVideoDataset, generate, generate_video, object_masks

__all__ = ["SceneGraph", "SyntheticVideo", "SyntheticVideoDataset", "generate", "generate_video", "object_masks"]
