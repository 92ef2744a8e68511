"""PyTorch modules and ops of finsta. Each graph op exports as one node in ONNX domain ``finsta``."""

from .st_graph_attention import STGraphAttention, st_graph_attention

__all__ = ["STGraphAttention", "st_graph_attention"]
