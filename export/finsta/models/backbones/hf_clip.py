"""A transformers CLIP model directory (``save_pretrained`` layout) as frame and text backbones.

The directory holds ``config.json`` (a ``CLIPModel``, ``CLIPVisionModel`` or ``CLIPTextModel``), its weights
(``model.safetensors``) and, for the text side, CLIP's tokenizer files (``vocab.json`` + ``merges.txt``);
``preprocessor_config.json`` (CLIPImageProcessor), when there, gives the frame size and mean/std.

The networks are written here with the names of transformers' modules, so the safetensors keys load
strictly without importing transformers, and with plain MatMul/Softmax attention (``base.attention``) so
they export like every other backbone. tests/test_plugins.py checks them against transformers' own classes.

* frames: ``(patch_tokens, cls)`` are the encoder's last hidden states after ``post_layernorm`` (transformers
  applies it to CLS only; applying it to every token keeps patch and CLS features on one scale).
* text: ``token_features`` are ``last_hidden_state`` (after ``final_layer_norm``); ``pooled`` is the state at
  each row's first ``<|endoftext|>`` (transformers' ``pooler_output``), causal attention as CLIP's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FrameBackbone, FramePreprocess, TextBackbone, TextConfig, attention

log = logging.getLogger(__name__)

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # transformers' defaults (0..1 scale)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
WEIGHTS_FILE = "model.safetensors"
_ACTIVATIONS = {"quick_gelu": lambda x: x * torch.sigmoid(1.702 * x), "gelu": F.gelu}


class ClipDirError(ValueError):
    """A CLIP directory that cannot be read as a backbone; the message names the file."""


def _act(name: str, where: str):
    if name not in _ACTIVATIONS:
        raise ClipDirError(f"{where}: hidden_act {name!r} is not one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(dim, dim) for _ in range(4))
        self.heads = heads

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        return self.out_proj(attention(self.q_proj(x), self.k_proj(x), self.v_proj(x), self.heads, bias))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(dim, hidden), nn.Linear(hidden, dim), act

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Layer(nn.Module):
    """CLIP's pre-LN encoder layer."""

    def __init__(self, dim: int, heads: int, hidden: int, eps: float, act):
        super().__init__()
        self.self_attn, self.mlp = _Attention(dim, heads), _Mlp(dim, hidden, act)
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x), bias)
        return x + self.mlp(self.layer_norm2(x))


class _Encoder(nn.Module):
    def __init__(self, c: dict, where: str):
        super().__init__()
        dim, heads = c["hidden_size"], c["num_attention_heads"]
        if dim % heads:
            raise ClipDirError(f"{where}: hidden_size {dim} must divide by num_attention_heads {heads}")
        act = _act(c.get("hidden_act", "quick_gelu"), where)
        eps = c.get("layer_norm_eps", 1e-5)
        self.layers = nn.ModuleList(
            _Layer(dim, heads, c["intermediate_size"], eps, act) for _ in range(c["num_hidden_layers"])
        )

    def forward(self, x: Tensor, bias: Tensor | None) -> Tensor:
        for layer in self.layers:
            x = layer(x, bias)
        return x


class _VisionEmbeddings(nn.Module):
    def __init__(self, dim: int, image_size: int, patch: int):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.zeros(dim))
        self.patch_embedding = nn.Conv2d(3, dim, patch, stride=patch, bias=False)
        self.position_embedding = nn.Embedding((image_size // patch) ** 2 + 1, dim)

    def forward(self, pixels: Tensor) -> Tensor:
        x = self.patch_embedding(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        return torch.cat([cls, x], dim=1) + self.position_embedding.weight


class _VisionModel(nn.Module):
    def __init__(self, c: dict, where: str):
        super().__init__()
        dim, eps = c["hidden_size"], c.get("layer_norm_eps", 1e-5)
        self.embeddings = _VisionEmbeddings(dim, c["image_size"], c["patch_size"])
        self.pre_layrnorm = nn.LayerNorm(dim, eps=eps)  # sic: transformers' name
        self.encoder = _Encoder(c, where)
        self.post_layernorm = nn.LayerNorm(dim, eps=eps)


class ClipVisionBackbone(FrameBackbone):
    """CLIP's vision transformer: normalised pixels [N, 3, S, S] -> (patch tokens [N, P, C], cls [N, C])."""

    def __init__(self, c: dict, preprocess: FramePreprocess, where: str):
        super().__init__()
        if c["image_size"] % c["patch_size"]:
            raise ClipDirError(f"{where}: image_size {c['image_size']} must divide by patch_size {c['patch_size']}")
        self.vision_model = _VisionModel(c, where)
        side = c["image_size"] // c["patch_size"]
        self.out_dim, self.grid, self.tokens_per_frame = c["hidden_size"], (side, side), side * side
        self.preprocess = preprocess

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        vm = self.vision_model
        x = vm.post_layernorm(vm.encoder(vm.pre_layrnorm(vm.embeddings(pixels)), None))
        return x[:, 1:], x[:, 0]


class _TextEmbeddings(nn.Module):
    def __init__(self, vocab: int, dim: int, positions: int):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.position_embedding = nn.Embedding(positions, dim)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.token_embedding(input_ids) + self.position_embedding.weight[: input_ids.shape[1]]


class _TextModel(nn.Module):
    def __init__(self, c: dict, where: str):
        super().__init__()
        dim = c["hidden_size"]
        self.embeddings = _TextEmbeddings(c["vocab_size"], dim, c["max_position_embeddings"])
        self.encoder = _Encoder(c, where)
        self.final_layer_norm = nn.LayerNorm(dim, eps=c.get("layer_norm_eps", 1e-5))


class ClipTextBackbone(TextBackbone):
    """CLIP's text transformer: (input_ids, attention_mask) [B, S] -> (token features [B, S, C], eot state [B, C])."""

    def __init__(self, c: dict, config: TextConfig, eos_id: int, where: str):
        super().__init__()
        self.text_model = _TextModel(c, where)
        self.out_dim, self.config, self.eos_id = c["hidden_size"], config, eos_id

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        tm = self.text_model
        x = tm.embeddings(input_ids)
        S = input_ids.shape[1]
        pos = torch.arange(S, device=input_ids.device)
        # causal and padding masks, finite (not -inf) so that a fully padded row stays NaN-free
        allowed = (pos[None, :] <= pos[:, None])[None] & (attention_mask[:, None, :] != 0)
        bias = (~allowed).to(x.dtype)[:, None] * -1e9
        x = tm.final_layer_norm(tm.encoder(x, bias))
        eot = (input_ids == self.eos_id).to(torch.int64).argmax(dim=-1)  # the first <|endoftext|>
        pooled = torch.gather(x, 1, eot[:, None, None].expand(-1, 1, x.shape[2]))[:, 0]
        return x, pooled


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ClipDirError(f"{path} not found: a CLIP directory ({what}) needs it")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ClipDirError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ClipDirError(f"{path}: expected a JSON object")
    return data


def _side_config(root: Path, side: str) -> dict:
    """The vision or text sub-config of a CLIPModel / CLIPVisionModel / CLIPTextModel config.json."""
    cfg = _read_json(root / "config.json", "save_pretrained layout")
    kind = cfg.get("model_type")
    if kind == "clip":
        sub = cfg.get(f"{side}_config")
        if not isinstance(sub, dict):
            raise ClipDirError(f"{root / 'config.json'}: {side}_config is missing")
    elif kind == f"clip_{side}_model":
        sub = cfg
    else:
        raise ClipDirError(
            f"{root / 'config.json'}: model_type {kind!r} has no {side} side (need 'clip' or 'clip_{side}_model')"
        )
    # transformers' defaults, for keys a saved config may leave out
    defaults = {"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
    if side == "vision":
        defaults |= {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "image_size": 224}
        defaults |= {"num_attention_heads": 12, "patch_size": 32}
    else:
        defaults |= {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "vocab_size": 49408}
        defaults |= {"num_attention_heads": 8, "max_position_embeddings": 77}
    return {**defaults, **sub}


def _load_weights(model: nn.Module, root: Path, prefix: str) -> None:
    from safetensors.torch import load_file

    path = root / WEIGHTS_FILE
    if not path.is_file():
        raise ClipDirError(f"{path} not found: the CLIP directory {root} holds no weights (save_pretrained writes it)")
    sd = {k: v for k, v in load_file(path).items() if k.startswith(prefix)}
    if not sd:
        raise ClipDirError(f"{path} holds no {prefix}* tensors")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]  # a constant buffer in old saves
    if missing or unexpected:
        raise ClipDirError(f"{path}: weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    log.info("loaded %d %s tensors from %s", len(sd), prefix.rstrip("."), path)


def _preprocess(root: Path, image_size: int) -> FramePreprocess:
    """CLIPImageProcessor's size and mean/std (preprocessor_config.json), or OpenAI CLIP's defaults.
    The runtime resizes bilinearly (CLIP's processor: bicubic); training and serving resize alike."""
    mean, std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    p = root / "preprocessor_config.json"
    if p.is_file():
        pc = _read_json(p, "image processor")
        mean, std = tuple(pc.get("image_mean", mean)), tuple(pc.get("image_std", std))
        if len(mean) != 3 or len(std) != 3:
            raise ClipDirError(f"{p}: image_mean and image_std must hold 3 values")
    return FramePreprocess(size=image_size, mean=tuple(255.0 * m for m in mean), std=tuple(255.0 * s for s in std))


def clip_frame_backbone(directory: str | Path) -> FrameBackbone:
    """The vision side of a CLIP directory, weights loaded, in eval mode."""
    root = Path(directory)
    c = _side_config(root, "vision")
    model = ClipVisionBackbone(c, _preprocess(root, c["image_size"]), str(root / "config.json"))
    _load_weights(model, root, "vision_model.")
    return model.eval()


def clip_text_backbone(directory: str | Path) -> TextBackbone:
    """The text side of a CLIP directory (tokenizer: its vocab.json + merges.txt, CLIP BPE), in eval mode."""
    root = Path(directory)
    c = _side_config(root, "text")
    for f in ("vocab.json", "merges.txt"):
        if not (root / f).is_file():
            raise ClipDirError(
                f"{root / f} not found: the text side needs CLIP's tokenizer files (vocab.json, merges.txt)"
            )
    tc = TextConfig(
        root / "vocab.json",
        True,
        min(77, int(c["max_position_embeddings"])),
        tokenizer_kind="clip_bpe",
        merges_file=root / "merges.txt",
    )
    # pool where the runtime tokenizer puts <|endoftext|> (old OpenAI configs say eos_token_id 2 and pool at argmax)
    eos_id = tc.tokenizer().eos_id
    model = ClipTextBackbone(c, tc, eos_id, str(root / "config.json"))
    _load_weights(model, root, "text_model.")
    return model.eval()


def save_tiny_random_clip(directory: str | Path, merges: int = 2000, max_length: int = 16, seed: int = 0) -> Path:
    """A tiny random transformers ``CLIPModel`` (2 layers of 32 wide, 32 px frames of 8 px patches) with
    CLIP's tokenizer cut to its first ``merges`` merges, saved with ``save_pretrained`` into ``directory``:
    for tests and examples (needs transformers and open_clip's merges data; downloads nothing)."""
    import importlib.util

    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    from finsta_rt.clip_tokenizer import BOS, EOS, ClipBpeTokenizer, open_clip_vocab

    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("open_clip (its bpe_simple_vocab_16e6.txt.gz) is needed for CLIP's merges")
    vocab, all_merges = open_clip_vocab(Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz")
    kept = all_merges[:merges]
    tokens = list(vocab)[:512] + ["".join(m) for m in kept] + [BOS, EOS]  # bytes, bytes</w>, merges, specials
    d = Path(directory)
    ClipBpeTokenizer({t: i for i, t in enumerate(tokens)}, kept, max_length=max_length).save(d)
    n = len(tokens)
    side = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    cfg = CLIPConfig(
        text_config=dict(
            **side,
            max_position_embeddings=max_length,
            vocab_size=n,
            bos_token_id=n - 2,
            eos_token_id=n - 1,
            pad_token_id=n - 1,
        ),
        vision_config=dict(**side, image_size=32, patch_size=8),
        projection_dim=16,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        CLIPModel(cfg).eval().save_pretrained(d)
    CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=max_length).save_pretrained(d)
    return d
