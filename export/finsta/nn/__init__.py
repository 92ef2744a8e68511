"""PyTorch modules and ops of finsta. Each graph op exports as one node in ONNX domain ``finsta``."""

from .edge_graph_attention import EdgeGraphAttention, edge_graph_attention
from .gaussian_diff_graph_attention import GaussianDiffGraphAttention, gaussian_diff_graph_attention
from .st_graph_attention import STGraphAttention, st_graph_attention

__all__ = [
    "EdgeGraphAttention",
    "GaussianDiffGraphAttention",
    "STGraphAttention",
    "edge_graph_attention",
    "gaussian_diff_graph_attention",
    "st_graph_attention",
]
