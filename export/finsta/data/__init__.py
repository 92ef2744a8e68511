"""Data for training the structural heads: `finsta.data.synthetic`, a seeded generator of short
structured videos with captions, exact scene graphs and hard-negative captions (numpy only);
`finsta.data.cut_and_paste`, S-ViLM's splices of those videos; `finsta.data.caption_files`, caption files of
real videos (JSONL, CSV, MSR-VTT, WebVid) and their video references."""

from .caption_files import CaptionFileError, CaptionRow, read_captions, resolve_video
from .synthetic import SceneGraph, SyntheticVideo, SyntheticVideoDataset, generate, generate_video, object_masks

__all__ = [
    "CaptionFileError",
    "CaptionRow",
    "SceneGraph",
    "SyntheticVideo",
    "SyntheticVideoDataset",
    "generate",
    "generate_video",
    "object_masks",
    "read_captions",
    "resolve_video",
]
