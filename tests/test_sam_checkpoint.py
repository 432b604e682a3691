"""Official segment-anything state dict -> transformers SamModel: names, config from shapes, round trip."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from diverseg_hf.errors import DiversegError  # noqa: E402
from diverseg_hf.scoring.sam_checkpoint import (  # noqa: E402
    config_from_official_state_dict,
    convert_official_state_dict,
    load_official_checkpoint,
    rename_official_key,
)

# Names as they appear in segment-anything's modules (ImageEncoderViT, PromptEncoder, MaskDecoder).
KNOWN = {
    "image_encoder.pos_embed": "vision_encoder.pos_embed",
    "image_encoder.patch_embed.proj.weight": "vision_encoder.patch_embed.projection.weight",
    "image_encoder.blocks.7.norm2.bias": "vision_encoder.layers.7.layer_norm2.bias",
    "image_encoder.blocks.0.attn.rel_pos_w": "vision_encoder.layers.0.attn.rel_pos_w",
    "image_encoder.blocks.1.mlp.lin1.weight": "vision_encoder.layers.1.mlp.lin1.weight",
    "image_encoder.neck.2.weight": "vision_encoder.neck.conv2.weight",
    "image_encoder.neck.3.bias": "vision_encoder.neck.layer_norm2.bias",
    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix":
        "prompt_encoder.shared_embedding.positional_embedding",
    "prompt_encoder.point_embeddings.3.weight": "prompt_encoder.point_embed.3.weight",
    "prompt_encoder.mask_downscaling.4.weight": "prompt_encoder.mask_embed.layer_norm2.weight",
    "prompt_encoder.mask_downscaling.6.bias": "prompt_encoder.mask_embed.conv3.bias",
    "prompt_encoder.not_a_point_embed.weight": "prompt_encoder.not_a_point_embed.weight",
    "mask_decoder.transformer.layers.1.norm4.weight": "mask_decoder.transformer.layers.1.layer_norm4.weight",
    "mask_decoder.transformer.layers.0.cross_attn_image_to_token.v_proj.bias":
        "mask_decoder.transformer.layers.0.cross_attn_image_to_token.v_proj.bias",
    "mask_decoder.transformer.norm_final_attn.weight": "mask_decoder.transformer.layer_norm_final_attn.weight",
    "mask_decoder.output_upscaling.1.weight": "mask_decoder.upscale_layer_norm.weight",
    "mask_decoder.output_upscaling.3.bias": "mask_decoder.upscale_conv2.bias",
    "mask_decoder.output_hypernetworks_mlps.2.layers.0.weight":
        "mask_decoder.output_hypernetworks_mlps.2.proj_in.weight",
    "mask_decoder.output_hypernetworks_mlps.2.layers.1.weight":
        "mask_decoder.output_hypernetworks_mlps.2.layers.0.weight",
    "mask_decoder.iou_prediction_head.layers.2.weight": "mask_decoder.iou_prediction_head.proj_out.weight",
}
DEPTHS = {"mask_decoder.iou_prediction_head": 3, "mask_decoder.output_hypernetworks_mlps.2": 3}

# transformers -> official, written independently of the module under test (applied in order).
INVERSE = [
    (r"^vision_encoder\.layers\.", "image_encoder.blocks."),
    (r"^vision_encoder\.", "image_encoder."),
    (r"\.patch_embed\.projection\.", ".patch_embed.proj."),
    (r"\.neck\.conv1\.", ".neck.0."), (r"\.neck\.layer_norm1\.", ".neck.1."),
    (r"\.neck\.conv2\.", ".neck.2."), (r"\.neck\.layer_norm2\.", ".neck.3."),
    (r"\.mask_embed\.conv1\.", ".mask_downscaling.0."), (r"\.mask_embed\.layer_norm1\.", ".mask_downscaling.1."),
    (r"\.mask_embed\.conv2\.", ".mask_downscaling.3."), (r"\.mask_embed\.layer_norm2\.", ".mask_downscaling.4."),
    (r"\.mask_embed\.conv3\.", ".mask_downscaling.6."),
    (r"\.upscale_conv1\.", ".output_upscaling.0."), (r"\.upscale_layer_norm\.", ".output_upscaling.1."),
    (r"\.upscale_conv2\.", ".output_upscaling.3."),
    (r"\.layer_norm(\d|_final_attn)\.", r".norm\1."),
    (r"\.shared_embedding\.positional_embedding$", ".pe_layer.positional_encoding_gaussian_matrix"),
    (r"\.point_embed\.", ".point_embeddings."),
]


MLP = re.compile(r"^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))"
                 r"\.(proj_in|proj_out|layers\.(\d+))\.(.+)$")


def to_official(state: dict, depth: int = 3) -> dict:
    out = {}
    for key, value in state.items():
        if key == "shared_image_embedding.positional_embedding":
            continue
        m = MLP.match(key)
        if m:
            index = 0 if m.group(2) == "proj_in" else depth - 1 if m.group(2) == "proj_out" else int(m.group(3)) + 1
            key = f"{m.group(1)}.layers.{index}.{m.group(4)}"
        else:
            for pattern, repl in INVERSE:
                key = re.sub(pattern, repl, key)
        out[key] = value
    out["pixel_mean"] = torch.zeros(3, 1, 1)
    out["pixel_std"] = torch.ones(3, 1, 1)
    return out


def tiny_config():
    vision = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "image_size": 128, "patch_size": 16,
              "window_size": 3, "global_attn_indexes": [2], "mlp_dim": 48, "output_channels": 32, "num_pos_feats": 16}
    prompt = {"hidden_size": 32, "image_size": 128, "patch_size": 16, "image_embedding_size": 8,
              "mask_input_channels": 8}
    decoder = {"hidden_size": 32, "mlp_dim": 40, "num_hidden_layers": 2, "num_attention_heads": 8,
               "iou_head_hidden_dim": 20}
    return transformers.SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


@pytest.mark.parametrize(("official", "ours"), list(KNOWN.items()))
def test_known_names(official, ours):
    assert rename_official_key(official, DEPTHS) == ours


def test_round_trip_config_and_weights(tmp_path):
    torch.manual_seed(0)
    model = transformers.SamModel(tiny_config()).eval()
    official = to_official(model.state_dict())
    assert all(k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder.", "pixel_")) for k in official)
    converted = convert_official_state_dict(official)
    assert set(converted) == set(model.state_dict())
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items())

    config = config_from_official_state_dict(official)
    for part in ("vision_config", "prompt_encoder_config", "mask_decoder_config"):
        want, got = getattr(model.config, part).to_dict(), getattr(config, part).to_dict()
        assert {k: got[k] for k in want if k != "dtype"} == {k: v for k, v in want.items() if k != "dtype"}, part

    path = tmp_path / "sam_tiny.pth"
    torch.save({"model": official}, path)  # some checkpoints nest the state dict under "model"
    loaded = load_official_checkpoint(path)
    pixels = torch.randn(1, 3, 128, 128)
    points = torch.tensor([[[[30.0, 40.0]], [[100.0, 7.0]]]])
    with torch.no_grad():
        a, b = model(pixel_values=pixels, input_points=points), loaded(pixel_values=pixels, input_points=points)
    assert torch.equal(a.pred_masks, b.pred_masks) and torch.equal(a.iou_scores, b.iou_scores)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(DiversegError, match="not a segment-anything checkpoint"):
        load_official_checkpoint(path)


def test_counter_accepts_official_checkpoint(tmp_path):
    from diverseg_hf.scoring.sam import SamMaskCounter

    torch.manual_seed(1)
    model = transformers.SamModel(tiny_config()).eval()
    path = tmp_path / "sam_tiny.pth"
    torch.save(to_official(model.state_dict()), path)
    loose = {"pred_iou_thresh": -1e9, "stability_score_thresh": -1.0, "points_per_side": 3}  # keep every mask
    rgb = torch.randint(0, 256, (40, 70, 3), dtype=torch.uint8).numpy()
    from_file = SamMaskCounter(path, **loose)
    from_model = SamMaskCounter(model, **loose)
    counts = from_file.count([rgb])
    assert counts == from_model.count([rgb]) and counts[0] >= 1
