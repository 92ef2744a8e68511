"""ONNX Runtime sessions for a bundle: embed frames, embed text, score (docs/runtime.md).

What a bundle is fed and gives is read from its graphs' declared inputs and outputs (bundle.yaml), never
from its family name: any family, ours or a user's towers exported with finsta.export.export_bundle."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from . import op_check, ops
from .bundle import Bundle, BundleError

log = logging.getLogger(__name__)


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda:0' when onnxruntime-gpu offers CUDA and the CUDA op library exists, else 'cpu'."""
    device = device.lower()
    cuda_ok = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "auto":
        if cuda_ok:
            try:
                ops.library_path("cuda")
                return "cuda:0"
            except ops.OpsLibraryError as e:
                log.warning("CUDA is available but %s; using the CPU", e)
        return "cpu"
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind == "cuda" and (not index or index.isdigit()):
        if not cuda_ok:
            raise RuntimeError(
                f"device {device!r} asked for, but this onnxruntime has no CUDAExecutionProvider "
                "(install onnxruntime-gpu: pip install 'finsta-rt[gpu]')"
            )
        return f"cuda:{index or 0}"
    raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")


class Model:
    """The three graphs of a bundle in ONNX Runtime sessions.

    >>> m = Model("bundles/stgt-effl0-minilm")          # device 'auto'
    >>> v = m.embed_frames(frames)                      # uint8 [B, T, S, S, 3], preprocessed
    >>> t = m.embed_text(["a red circle moves left"])
    >>> m.score(v["video_embedding"], t)                # [texts, videos]
    """

    def __init__(self, bundle: Bundle | str | Path, device: str = "auto", threads: int = 0):
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        self.device = resolve_device(device)
        self.threads = threads
        self._tokenizer = None
        self.sessions = {g: self._session(g) for g in ("video", "text", "scorer")}
        log.info("bundle %s on %s (%s flavour)", self.bundle.name, self.device, self.bundle.flavour)

    def _session(self, graph: str) -> ort.InferenceSession:
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.log_severity_level = 3
        # ORT's pool threads spin after each op by default, burning the cores that the decode
        # threads of extraction (or the host app) need: measured ~25% faster extraction on 2 cores.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        kind = self.device.split(":")[0]
        path = self.bundle.graphs[graph].path
        if self.bundle.requires_op_library:
            library = ops.register(so, kind)
            try:  # an attribute a kernel would never read (misspelt, extra): ORT cannot show it to one
                op_check.check_model(path, library)
            except op_check.ModelCheckError as e:
                raise BundleError(str(e)) from e
        if kind == "cuda":
            providers = [
                ("CUDAExecutionProvider", {"device_id": int(self.device.split(":")[1])}),
                "CPUExecutionProvider",
            ]
        else:
            providers = ["CPUExecutionProvider"]
        try:
            return ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # ORT raises its own exception types; name the file
            raise BundleError(f"cannot load {path} in ONNX Runtime: {e}") from e

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self.bundle.tokenizer()
        return self._tokenizer

    def _input(self, graph: str, name: str):
        """The declared input ``name`` of ``graph`` (bundle.yaml's graphs section)."""
        return next(i for i in self.bundle.graphs[graph].inputs if i.name == name)

    def _slots(self) -> tuple[int, int]:
        """(T, K) of a video graph that takes a user video graph (family finsta)."""
        shape = self._input("video", "slot_mask").shape
        return int(shape[1]), int(shape[2])

    def load_user_graph(self, path: str | Path) -> dict[str, np.ndarray]:
        """A user video graph file (finsta_rt.user_graph) as the ``user_graph`` of one video for
        :meth:`embed_frames`. Raises UserGraphError (bad file) or ValueError (bundle mismatch)."""
        from .user_graph import load_user_graph

        if not self.bundle.takes("video", "slot_mask"):
            raise ValueError(
                f"bundle {self.bundle.name} ({self.bundle.family}) takes no user video graph (family finsta does)"
            )
        T, K = self._slots()
        g = load_user_graph(path).to_tensors(frames=T, slots=K)
        tracks = int(g["track"].max(initial=-1)) + 1
        if tracks > K:  # the video graph reads slot m at t and t+1 as one track
            raise ValueError(f"{path}: {tracks} tracks, more than the bundle's {K} slots")
        return {"slot_box": g["slot_box"][None], "slot_mask": g["slot_mask"][None], "slot_adj": g["rel_adj"][None]}

    def video_inputs(
        self, frames: np.ndarray, user_graph: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """The video graph's inputs besides ``frames``: for a graph that takes a user video graph
        (family finsta), ``user_graph`` holds ``slot_box`` [B, T, K, 4], ``slot_mask`` [B, T, K] and
        ``slot_adj`` [B, T, K, K] (finsta_rt.user_graph tensors, stacked); None: no user graph."""
        if not self.bundle.takes("video", "slot_mask"):
            if user_graph is not None:
                raise ValueError(f"bundle {self.bundle.name} ({self.bundle.family}) takes no user video graph")
            return {}
        B = frames.shape[0]
        T, K = self._slots()
        if user_graph is None:
            return {
                "slot_box": np.zeros((B, T, K, 4), np.float32),
                "slot_mask": np.zeros((B, T, K), bool),
                "slot_adj": np.broadcast_to(np.eye(K, dtype=bool), (B, T, K, K)).copy(),
            }
        want = {
            "slot_box": ((B, T, K, 4), np.float32),
            "slot_mask": ((B, T, K), np.bool_),
            "slot_adj": ((B, T, K, K), np.bool_),
        }
        out = {}
        for name, (shape, dtype) in want.items():
            v = np.asarray(user_graph[name]) if name in user_graph else None
            if v is None or v.shape != shape:
                got = "missing" if v is None else f"shape {v.shape}"
                raise ValueError(
                    f"user video graph: {name} must be {dtype.__name__} {list(shape)} for bundle "
                    f"{self.bundle.name} (T={T} frames, K={K} slots), got {got}"
                )
            out[name] = v.astype(dtype)
        return out

    def embed_frames(
        self, frames: np.ndarray, user_graph: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """uint8 RGB frames [B, T, S, S, 3] (resized and cropped as bundle.preprocess says); for family
        finsta optionally a user video graph (see :meth:`video_inputs`). Returns every output by name."""
        S = self.bundle.preprocess.size
        if (
            not isinstance(frames, np.ndarray)
            or frames.dtype != np.uint8
            or frames.ndim != 5
            or frames.shape[2:] != (S, S, 3)
        ):
            got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
            raise ValueError(f"frames must be uint8 [B, T, {S}, {S}, 3] for bundle {self.bundle.name}, got {got}")
        if frames.shape[0] == 0 or frames.shape[1] == 0:
            raise ValueError(f"frames has an empty batch or no frames: shape {frames.shape}")
        fixed_t = self._input("video", "frames").shape[1]
        if isinstance(fixed_t, int) and frames.shape[1] != fixed_t:
            raise ValueError(
                f"bundle {self.bundle.name} takes exactly T={fixed_t} frames per video, got {frames.shape[1]}"
            )
        sess = self.sessions["video"]
        outs = sess.run(None, {"frames": frames, **self.video_inputs(frames, user_graph)})
        return {o.name: v for o, v in zip(sess.get_outputs(), outs)}

    @property
    def text_graph_inputs(self) -> bool:
        """Whether the text graph takes a parsed scene graph (family finsta) besides the tokens."""
        return self.bundle.takes("text", "node_span")

    def text_inputs(self, texts: Sequence[str], graphs: Sequence | None = None) -> dict[str, np.ndarray]:
        """The text graph's feed for ``texts``: token ids and mask, and for a graph that takes a
        scene graph, the texts parsed (or ``graphs``, TextSceneGraphs given by the caller) and padded
        to the bundle's node count with the parser the bundle was trained with."""
        if not self.text_graph_inputs:
            ids, mask = self.tokenizer(list(texts))
            return {"input_ids": ids, "attention_mask": mask}
        from .scene_graph import text_graph_feed

        spec = {i.name: i for i in self.bundle.graphs["text"].inputs}
        cfg = (self.bundle.manifest.get("model") or {}).get("finsta")
        parser = cfg.get("parser", "rules") if isinstance(cfg, dict) else "rules"
        if not isinstance(parser, str):
            raise BundleError(
                f"{self.bundle.root}/bundle.yaml: model.finsta.parser must be a parser name, got {parser!r}"
            )
        feed = text_graph_feed(texts, self.tokenizer, int(spec["node_type"].shape[1]), parser, graphs)
        unknown = sorted(set(spec) - set(feed))
        if unknown:
            raise BundleError(
                f"{self.bundle.root}/bundle.yaml: graphs.text.inputs {unknown} are not inputs this "
                f"finsta-rt can feed (it feeds {sorted(feed)})"
            )
        return {k: feed[k] for k in spec}

    def embed_texts(
        self, texts: str | Sequence[str], batch_size: int = 256, graphs: Sequence | None = None
    ) -> dict[str, np.ndarray]:
        """Every output of the text graph by name (``text_embedding`` [N, E] normalised, and for
        family finsta the scene-graph features), ``batch_size`` texts at a time."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ValueError("embed_text needs at least one text")
        if graphs is not None and len(graphs) != len(texts):
            raise ValueError(f"got {len(graphs)} scene graphs for {len(texts)} texts")
        sess = self.sessions["text"]
        names = [o.name for o in sess.get_outputs()]
        out: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for i in range(0, len(texts), batch_size):
            feed = self.text_inputs(texts[i : i + batch_size], None if graphs is None else graphs[i : i + batch_size])
            for n, v in zip(names, sess.run(None, feed)):
                out[n].append(v)
        return {n: np.concatenate(v) for n, v in out.items()}

    def embed_text(self, texts: str | Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Normalised text embeddings [N, E]."""
        return self.embed_texts(texts, batch_size)["text_embedding"]

    def score_parts(self, video: dict[str, np.ndarray], text: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every scorer output [texts, videos] by name from the outputs of embed_frames and
        embed_texts (family finsta: ``scores`` and its parts ``score_global``, ``score_spatial``,
        ``score_temporal``, ``score_holistic``)."""
        sess = self.sessions["scorer"]
        feed = {}
        for i in sess.get_inputs():
            src = video if i.name.startswith("video_") else text
            if i.name not in src:
                raise ValueError(
                    f"score_parts needs {i.name!r} (an output of the "
                    f"{'video' if src is video else 'text'} graph), got {sorted(src)}"
                )
            feed[i.name] = np.asarray(src[i.name])
        return {o.name: v for o, v in zip(sess.get_outputs(), sess.run(None, feed))}

    def score(self, video_embedding: np.ndarray, text_embedding: np.ndarray) -> np.ndarray:
        """Similarity [texts, videos] from video embeddings [Nv, Q, E] (or whatever the scorer's declared
        video input is) and text embeddings [Nt, E], for a scorer that takes one video and one text input."""
        inputs = self.bundle.graphs["scorer"].inputs
        video = [i.name for i in inputs if i.name.startswith("video_")]
        text = [i.name for i in inputs if not i.name.startswith("video_")]
        if len(video) != 1 or len(text) != 1:
            raise ValueError(
                f"bundle {self.bundle.name} ({self.bundle.family}) scores from {[i.name for i in inputs]}: "
                "use score_parts(embed_frames(...), embed_texts(...))"
            )
        feed = {video[0]: np.asarray(video_embedding, np.float32), text[0]: np.asarray(text_embedding, np.float32)}
        return self.sessions["scorer"].run(None, feed)[0]
