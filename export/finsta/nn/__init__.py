"""PyTorch modules and ops of finsta. Each graph op exports as one node in ONNX domain ``finsta``.

:data:`OPS` holds each op's one declaration (:class:`~finsta.nn.declaration.OpDeclaration`): its portable
ONNX function and its attribute checks, which the exporter (``finsta.export.portable``) and the tests share.
"""

from .declaration import OpDeclaration
from .edge_graph_attention import DECLARATION as _EDGE
from .edge_graph_attention import EdgeGraphAttention, edge_graph_attention
from .gaussian_diff_graph_attention import DECLARATION as _GAUSSIAN_DIFF
from .gaussian_diff_graph_attention import GaussianDiffGraphAttention, gaussian_diff_graph_attention
from .st_graph_attention import DECLARATION as _ST
from .st_graph_attention import STGraphAttention, st_graph_attention

OPS: dict[str, OpDeclaration] = {d.name: d for d in (_ST, _EDGE, _GAUSSIAN_DIFF)}

__all__ = [
    "OPS",
    "EdgeGraphAttention",
    "GaussianDiffGraphAttention",
    "OpDeclaration",
    "STGraphAttention",
    "edge_graph_attention",
    "gaussian_diff_graph_attention",
    "st_graph_attention",
]
