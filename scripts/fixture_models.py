"""The fixtures of the other models clipseek offers (issue 12), called by make_fixtures.py.

  variants   tiny random CLIPModels with the distinguishing features of
             laion/CLIP-ViT-B-32-laion2B-s34B-b79K (exact-erf GELU in both towers) and
             openai/clip-vit-base-patch16 (patch 16 at 224 px: 197 vision positions), and
             their references (reference/<name>.json)

Nothing is downloaded. Widths and layer counts are shrunk so the committed files stay
small; what tells the models apart is kept.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

import make_fixtures as mf

# name -> (hidden_act of both towers, patch size); image size 224 as the real checkpoints.
VARIANTS = {
    "laion-b32-tiny": ("gelu", 32),
    "b16-tiny": ("quick_gelu", 16),
}
VARIANT_SEEDS = {"laion-b32-tiny": 1, "b16-tiny": 2}


def variant_config(act: str, patch: int) -> CLIPConfig:
    """Text: hidden 16, 2 heads (the 49,408 vocabulary makes width the cost); vision: hidden
    32, 4 heads, 224 px; both 2 layers, MLP 37, projection 24."""
    return CLIPConfig(
        text_config=dict(
            hidden_size=16, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
            max_position_embeddings=77, vocab_size=49408, hidden_act=act, layer_norm_eps=1e-5,
            projection_dim=24,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            num_channels=3, image_size=224, patch_size=patch, hidden_act=act, layer_norm_eps=1e-5,
            projection_dim=24,
        ),
        projection_dim=24,
        logit_scale_init_value=2.6592,
    )


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Every tensor redrawn in state_dict order, as make_fixtures.build_tiny does."""
    kinds = mf.param_kinds(model)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            r = torch.randn(p.shape, dtype=torch.float32)
            kind = kinds[name]
            if kind == "weight":
                p.copy_(r / math.sqrt(mf.fan_in(p.shape)))
            elif kind in ("bias", "ln_bias"):
                p.copy_(0.02 * r)
            elif kind == "ln_weight":
                p.copy_(1 + 0.1 * r)
            elif kind in ("token_embedding", "position_embedding", "class_embedding"):
                p.copy_(0.02 * r)
            elif kind == "logit_scale":
                p.fill_(2.6592)


def make_variant(name: str, images_dir: Path, good: list[str]) -> None:
    act, patch = VARIANTS[name]
    cfg = variant_config(act, patch)
    cfg._attn_implementation = "eager"
    model = CLIPModel(cfg)
    randomise(model, VARIANT_SEEDS[name])
    model = model.eval()
    out = mf.FIX / name
    proc = mf.image_processor_config(224)
    mf.save_model_dir(model, out, proc, with_tokenizer=True)
    reloaded = CLIPModel.from_pretrained(out, attn_implementation="eager", dtype=torch.float32).eval()
    cfg_back = reloaded.config
    assert cfg_back.vision_config.patch_size == patch and cfg_back.vision_config.hidden_act == act
    assert cfg_back.text_config.hidden_act == act
    positions = reloaded.vision_model.embeddings.position_embedding.weight.shape[0]
    assert positions == (224 // patch) ** 2 + 1, positions

    proc = CLIPImageProcessor.from_pretrained(out)
    pixels = np.stack([mf.load_pixels(proc, images_dir / f) for f in good])
    # the four images whose 224 px pixels vit-b32-random/pixels already holds
    pixel_dir = mf.FIX / "vit-b32-random" / "pixels"
    for f in mf.FULL_IMAGES:
        stored = np.fromfile(pixel_dir / f"{f}.f32", dtype="<f4").reshape(3, 224, 224)
        assert np.array_equal(stored, pixels[good.index(f)]), f
    img = mf.image_embeddings(reloaded, pixels)
    assert np.array_equal(img, mf.image_embeddings(model, pixels)), name
    ids, mask = mf.tokenize(mf.tokenizer(), mf.TINY_TEXTS)
    txt = mf.text_embeddings(reloaded, ids, mask)
    four = np.stack([img[good.index(f)] for f in mf.FULL_IMAGES])
    ranks = mf.rankings(mf.TINY_TEXTS, mf.FULL_IMAGES, four, txt)  # as vit-b32-random: the pixel files
    doc = {
        "model": name,
        # pixels relative to reference/, as in tiny.json
        "images": [{"file": f, "pixels": f"../vit-b32-random/pixels/{f}.f32", "shape": [3, 224, 224],
                    "embedding": mf.f32list(img[good.index(f)])} for f in mf.FULL_IMAGES],
        "from_bytes": [{"file": f, "embedding": mf.f32list(img[i])} for i, f in enumerate(good)],
        "texts": mf.text_entries(mf.TINY_TEXTS, ids, txt),
        "rankings": ranks,
    }
    mf.write_json(mf.FIX / "reference" / f"{name}.json", doc)
    off = img @ img.T
    print(f"{name}: {act}, patch {patch}, {positions} positions; image-image cosine min {off.min():.4f}; "
          f"min ranking gap {mf.min_gap(ranks):.2e}; weights "
          f"{(out / 'model.safetensors').stat().st_size} bytes")


def make_variants(images_dir: Path, good: list[str]) -> None:
    for name in VARIANTS:
        make_variant(name, images_dir, good)

