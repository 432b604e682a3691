"""Official segment-anything checkpoints (``sam_vit_h_4b8939.pth``...) -> transformers ``SamModel``.

The official state dict and transformers' SamModel differ only in names (plus the duplicated
positional matrix and the dropped ``pixel_mean``/``pixel_std`` buffers); the architecture numbers
are read from the tensor shapes, so ViT-B/L/H and smaller variants all convert.

Example:
    >>> rename_official_key("image_encoder.blocks.3.norm1.weight", {})
    'vision_encoder.layers.3.layer_norm1.weight'
    >>> rename_official_key("mask_decoder.iou_prediction_head.layers.2.bias", {"mask_decoder.iou_prediction_head": 3})
    'mask_decoder.iou_prediction_head.proj_out.bias'
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import DiversegError, require

# Whole-name-part substitutions, official -> transformers, applied in order.
_RENAMES: list[tuple[str, str]] = [
    (r"^image_encoder\.", "vision_encoder."),
    (r"\.blocks\.", ".layers."),
    (r"\.patch_embed\.proj\.", ".patch_embed.projection."),
    (r"\.neck\.0\.", ".neck.conv1."),
    (r"\.neck\.1\.", ".neck.layer_norm1."),
    (r"\.neck\.2\.", ".neck.conv2."),
    (r"\.neck\.3\.", ".neck.layer_norm2."),
    (r"\.norm(\d|_final_attn)\.", r".layer_norm\1."),
    (r"\.pe_layer\.positional_encoding_gaussian_matrix$", ".shared_embedding.positional_embedding"),
    (r"\.point_embeddings\.", ".point_embed."),
    (r"\.mask_downscaling\.0\.", ".mask_embed.conv1."),
    (r"\.mask_downscaling\.1\.", ".mask_embed.layer_norm1."),
    (r"\.mask_downscaling\.3\.", ".mask_embed.conv2."),
    (r"\.mask_downscaling\.4\.", ".mask_embed.layer_norm2."),
    (r"\.mask_downscaling\.6\.", ".mask_embed.conv3."),
    (r"\.output_upscaling\.0\.", ".upscale_conv1."),
    (r"\.output_upscaling\.1\.", ".upscale_layer_norm."),
    (r"\.output_upscaling\.3\.", ".upscale_conv2."),
]
# Feed-forward heads: official ``layers.0..d-1`` -> ``proj_in``, ``layers.0..d-3``, ``proj_out``.
_MLP = re.compile(r"^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))\.layers\.(\d+)\.(.+)$")
_DROPPED = ("pixel_mean", "pixel_std")
_SHARED_PE = "shared_image_embedding.positional_embedding"


def rename_official_key(key: str, mlp_depths: dict[str, int]) -> str:
    """The transformers name of an official key; ``mlp_depths`` maps a head prefix to its layer count."""
    mlp = _MLP.match(key)
    if mlp:
        prefix, index, rest = mlp.group(1), int(mlp.group(2)), mlp.group(3)
        depth = mlp_depths[prefix]
        part = "proj_in" if index == 0 else "proj_out" if index == depth - 1 else f"layers.{index - 1}"
        return f"{prefix}.{part}.{rest}"
    for pattern, repl in _RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def _mlp_depths(keys: list[str]) -> dict[str, int]:
    depths: dict[str, int] = {}
    for key in keys:
        m = _MLP.match(key)
        if m:
            depths[m.group(1)] = max(depths.get(m.group(1), 0), int(m.group(2)) + 1)
    return depths


def convert_official_state_dict(state: dict[str, Any]) -> dict[str, Any]:
    """Rename an official segment-anything state dict to transformers' SamModel names."""
    depths = _mlp_depths(list(state))
    out = {rename_official_key(k, depths): v for k, v in state.items() if k not in _DROPPED}
    pe = "prompt_encoder.shared_embedding.positional_embedding"
    if pe not in out:
        raise DiversegError("not a segment-anything checkpoint: no prompt_encoder.pe_layer matrix")
    out[_SHARED_PE] = out[pe]
    return out


def config_from_official_state_dict(state: dict[str, Any], decoder_heads: int = 8) -> Any:
    """A ``SamConfig`` read from the tensor shapes (the decoder's head count is not in the shapes)."""
    transformers = require("transformers", "sam")
    try:
        patch = state["image_encoder.patch_embed.proj.weight"]
        hidden, patch_size = patch.shape[0], patch.shape[-1]
        grid = state["image_encoder.pos_embed"].shape[1]
        blocks = sorted({int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks.")})
        rel = [state[f"image_encoder.blocks.{b}.attn.rel_pos_h"] for b in blocks]
        local = [r.shape[0] for r in rel if r.shape[0] != 2 * grid - 1]
        out_channels = state["image_encoder.neck.0.weight"].shape[0]
        layers = {int(k.split(".")[3]) for k in state if k.startswith("mask_decoder.transformer.layers.")}
        iou_depth = _mlp_depths(list(state))["mask_decoder.iou_prediction_head"]
        mask_tokens = state["mask_decoder.mask_tokens.weight"].shape[0]
        vision = {
            "hidden_size": hidden, "num_hidden_layers": len(blocks), "num_attention_heads": hidden // rel[0].shape[1],
            "image_size": grid * patch_size, "patch_size": patch_size,
            "window_size": (local[0] + 1) // 2 if local else 14,
            "global_attn_indexes": [b for b, r in zip(blocks, rel) if r.shape[0] == 2 * grid - 1],
            "mlp_dim": state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0],
            "output_channels": out_channels,
            "num_pos_feats": state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].shape[1],
            "qkv_bias": "image_encoder.blocks.0.attn.qkv.bias" in state,
        }
        prompt = {
            "hidden_size": out_channels, "image_size": grid * patch_size, "patch_size": patch_size,
            "image_embedding_size": grid,
            "mask_input_channels": state["prompt_encoder.mask_downscaling.3.weight"].shape[0],
        }
        decoder_hidden = state["mask_decoder.iou_token.weight"].shape[1]
        q_dim = state["mask_decoder.transformer.final_attn_token_to_image.q_proj.weight"].shape[0]
        decoder = {
            "hidden_size": decoder_hidden, "num_hidden_layers": len(layers), "num_attention_heads": decoder_heads,
            "mlp_dim": state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0],
            "attention_downsample_rate": decoder_hidden // q_dim, "num_multimask_outputs": mask_tokens - 1,
            "iou_head_depth": iou_depth,
            "iou_head_hidden_dim": state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0],
        }
    except (KeyError, IndexError) as exc:
        raise DiversegError(f"not a segment-anything checkpoint: missing {exc}") from None
    return transformers.SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def load_official_checkpoint(path: str | os.PathLike, decoder_heads: int = 8) -> Any:
    """A transformers ``SamModel`` (eval mode) with the weights of an official ``.pth`` checkpoint.

    Example (needs the file): ``model = load_official_checkpoint("sam_vit_h_4b8939.pth")``.
    """
    torch = require("torch", "sam")
    transformers = require("transformers", "sam")
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    model = transformers.SamModel(config_from_official_state_dict(state, decoder_heads))
    converted = convert_official_state_dict(state)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise DiversegError(f"checkpoint {path} does not fit SamModel: "
                            f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.eval()


def segment_anything_model(model: Any) -> Any:
    """The same network as a segment-anything ``Sam`` (for its generator as a slow reference backend).

    Needs the ``segment_anything`` package (which imports torchvision). The weights are the
    transformers model's, mapped back by :func:`rename_official_key`.
    """
    torch = require("torch", "sam")
    modeling = require("segment_anything.modeling", "segment-anything")
    from functools import partial

    v, p, d = model.config.vision_config, model.config.prompt_encoder_config, model.config.mask_decoder_config
    encoder = modeling.ImageEncoderViT(
        img_size=v.image_size, patch_size=v.patch_size, embed_dim=v.hidden_size, depth=v.num_hidden_layers,
        num_heads=v.num_attention_heads, mlp_ratio=v.mlp_dim / v.hidden_size, out_chans=v.output_channels,
        qkv_bias=v.qkv_bias, norm_layer=partial(torch.nn.LayerNorm, eps=v.layer_norm_eps), use_rel_pos=v.use_rel_pos,
        window_size=v.window_size, global_attn_indexes=tuple(v.global_attn_indexes))
    grid = v.image_size // v.patch_size
    prompt = modeling.PromptEncoder(embed_dim=p.hidden_size, image_embedding_size=(grid, grid),
                                    input_image_size=(v.image_size, v.image_size), mask_in_chans=p.mask_input_channels)
    decoder = modeling.MaskDecoder(
        num_multimask_outputs=d.num_multimask_outputs, transformer_dim=d.hidden_size, iou_head_depth=d.iou_head_depth,
        iou_head_hidden_dim=d.iou_head_hidden_dim,
        transformer=modeling.TwoWayTransformer(depth=d.num_hidden_layers, embedding_dim=d.hidden_size,
                                               mlp_dim=d.mlp_dim, num_heads=d.num_attention_heads))
    sam = modeling.Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder)
    ours = model.state_dict()
    keys = list(sam.state_dict())
    depths = _mlp_depths(keys)
    sam.load_state_dict({k: ours[rename_official_key(k, depths)].float() for k in keys if k not in _DROPPED},
                        strict=False)
    return sam.to(model.device).eval()
