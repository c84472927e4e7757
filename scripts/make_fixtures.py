#!/usr/bin/env python3
"""Generate clipseek's reference fixtures under tests/fixtures/ with HF transformers.

Run by hand (outputs are committed), from anywhere:

    nice python3 scripts/make_fixtures.py            # everything
    nice python3 scripts/make_fixtures.py --skip-full  # all but vit-b32-random/

Nothing is downloaded: every model is built from a config, the tokenizer is the committed
tests/fixtures/clip-tokenizer/tokenizer.json. Running it twice gives identical bytes
(same torch / transformers / Pillow / numpy versions; see tests/fixtures/README.md).

What "reference" means here (DESIGN.md, "Reference semantics"):
  image  = PIL.Image.open -> ImageOps.exif_transpose -> (I;16 grey: v >> 8 to L, our one
           departure from PIL) -> slow transformers.CLIPImageProcessor
           (convert_to_rgb, shortest-edge bicubic resize, centre crop, rescale, normalise)
  text   = CLIPTokenizerFast(tokenizer_file=...)(padding="max_length", max_length=77,
           truncation=True) -> get_text_features(input_ids, attention_mask)
  embed  = L2-normalised get_image_features / get_text_features, f32, eager attention
  score  = cosine (dot of the normalised embeddings), ranked descending, stable.

Outputs:
  images/, images/bad/                   deterministic test pictures drawn with PIL
  tiny-clip/, tiny-clip-f16/             tiny random CLIPModel (real 49,408 vocab)
  tiny-clip-f16-bin/                     tiny-clip-f16's weights as torch.save writes them
  reference/tiny.json, reference/pixels  reference pixels / embeddings / rankings
  reference/tokens.json                  >= 250 strings and their 77 ids
  vit-b32-random/                        full ViT-B/32 config + the spec of a hash-based
                                         weight generator (weights are NOT written) +
                                         reference pixels / embeddings for those weights
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import math
import random
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
import torch
import transformers
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from torch import nn
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
TOKENIZER_JSON = FIX / "clip-tokenizer" / "tokenizer.json"

# Versions the committed outputs were made with (tests/fixtures/README.md).
EXPECTED_VERSIONS = {
    "torch": "2.15.0",
    "transformers": "4.57.6",
    "Pillow": "13.0.0",
    "numpy": "2.4.6",
}

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
EOT = 49407  # <|endoftext|>

# --------------------------------------------------------------------------------------
# small helpers


def dumps(o, ind: int = 0) -> str:
    """JSON with one line per list of scalars (readable diffs, exact float reprs)."""
    pad, pad1 = " " * ind, " " * (ind + 1)
    if isinstance(o, dict):
        if not o:
            return "{}"
        items = [f"{pad1}{json.dumps(k, ensure_ascii=False)}: {dumps(v, ind + 1)}" for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(o, list):
        if all(not isinstance(x, (dict, list)) for x in o):
            return json.dumps(o, ensure_ascii=False, separators=(", ", ": "))
        return "[\n" + ",\n".join(pad1 + dumps(x, ind + 1) for x in o) + "\n" + pad + "]"
    return json.dumps(o, ensure_ascii=False)


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(obj) + "\n", encoding="utf-8")


def f32list(t) -> list[float]:
    """Exact float32 values as Python floats (repr round-trips through f64 -> f32)."""
    return [float(x) for x in np.asarray(t, dtype=np.float32).ravel()]


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# --------------------------------------------------------------------------------------
# 1. images


def scene(w: int, h: int, seed: int) -> Image.Image:
    """A photo-like RGB picture: sky/ground gradients, soft texture, sun, hills, blocks."""
    rng = random.Random(seed)
    rc = lambda lo=0, hi=255: tuple(rng.randint(lo, hi) for _ in range(3))  # noqa: E731
    sky_top, sky_bot, ground_top, ground_bot = rc(), rc(), rc(), rc()
    horizon = rng.uniform(0.35, 0.7)
    y = (np.arange(h, dtype=np.float64) + 0.5) / h
    x = (np.arange(w, dtype=np.float64) + 0.5) / w
    yy, xx = np.meshgrid(y, x, indexing="ij")
    img = np.zeros((h, w, 3), dtype=np.float64)
    t_sky = np.clip(yy / horizon, 0, 1)[..., None]
    t_gr = np.clip((yy - horizon) / (1 - horizon), 0, 1)[..., None]
    sky = np.array(sky_top) * (1 - t_sky) + np.array(sky_bot) * t_sky
    ground = np.array(ground_top) * (1 - t_gr) + np.array(ground_bot) * t_gr
    img[:] = np.where((yy < horizon)[..., None], sky, ground)
    # low-frequency texture (aspect-independent frequencies, a few cycles per image)
    for _ in range(3):
        fx, fy = rng.uniform(1, 6), rng.uniform(1, 6)
        ph = rng.uniform(0, 2 * math.pi)
        amp = np.array([rng.uniform(-12, 12) for _ in range(3)])
        img += amp * np.sin(2 * math.pi * (fx * xx + fy * yy) + ph)[..., None]
    # horizontal streaks (a bit of higher frequency, like grass or water)
    img += (6 * np.sin(2 * math.pi * yy * h / rng.uniform(3, 9)))[..., None] * (yy > horizon)[..., None]
    im = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    s = min(w, h)
    # hills
    for _ in range(rng.randint(1, 3)):
        cx = rng.uniform(-0.2, 1.2) * w
        hw = rng.uniform(0.2, 0.6) * w
        top = (horizon - rng.uniform(0.05, 0.3)) * h
        d.polygon([(cx - hw, horizon * h), (cx, top), (cx + hw, horizon * h)], fill=rc(20, 160))
    # sun / moon
    r = rng.uniform(0.06, 0.16) * s
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.08, 0.3) * h
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rc(180, 255))
    # buildings / objects on the ground
    for _ in range(rng.randint(2, 6)):
        bw = rng.uniform(0.04, 0.15) * w
        bh = rng.uniform(0.08, 0.4) * h
        bx = rng.uniform(0, 1) * w
        by = (horizon + rng.uniform(0.0, 0.25)) * h
        d.rectangle([bx, by - bh, bx + bw, by], fill=rc(), outline=rc(0, 80))
    # a thin wire and a round object
    d.line([(0, rng.uniform(0.1, 0.5) * h), (w, rng.uniform(0.1, 0.5) * h)], fill=rc(0, 60), width=max(1, s // 150))
    r2 = rng.uniform(0.03, 0.1) * s
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.75, 0.95) * h
    d.ellipse([cx - r2, cy - r2, cx + r2, cy + r2], fill=rc(), outline=rc())
    # soften the hard edges a little, as a lens would
    return im.filter(ImageFilter.GaussianBlur(radius=max(0.6, s / 400)))


def exif_picture() -> Image.Image:
    """120x80 upright picture, asymmetric under every flip / rotation."""
    w, h = 120, 80
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([40 + x * 1.2, 90 + y * 1.5, 200 - x * 0.8], axis=-1)
    im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    d.rectangle([6, 6, 40, 30], fill=(230, 20, 20))  # big red block, top-left
    d.rectangle([96, 8, 110, 20], fill=(20, 200, 40))  # small green block, top-right
    d.rectangle([10, 62, 70, 72], fill=(20, 30, 220))  # blue bar, bottom-left
    d.polygon([(80, 40), (80, 70), (112, 55)], fill=(250, 230, 30))  # yellow arrow pointing right
    d.line([(50, 10), (60, 50)], fill=(0, 0, 0), width=3)  # slanted black stroke
    return im


# Inverse of what exif_transpose applies for each tag, so that every exif-N.jpg
# *displays* (after orientation) as the same upright 120x80 picture.
EXIF_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # exif_transpose applies ROTATE_270
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,  # exif_transpose applies ROTATE_90
}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_rgb48(a: np.ndarray) -> bytes:
    """48-bit RGB PNG (bit depth 16, colour type 2) written by hand; PIL cannot write it."""
    assert a.dtype == np.uint16 and a.ndim == 3 and a.shape[2] == 3
    h, w, _ = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9))
            + png_chunk(b"IEND", b""))


def png_bomb() -> bytes:
    """Valid signature and chunks; IHDR declares 30000x30000 8-bit RGB; IDAT is tiny."""
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * 16), 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def jpeg_bytes(im: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def make_images(out: Path) -> tuple[list[str], list[str]]:
    """Write the good images (returns their names, in reference order) and bad/."""
    fresh_dir(out)
    good: list[str] = []

    def save(name: str, im: Image.Image, fmt: str, **kw) -> None:
        im.save(out / name, fmt, **kw)
        good.append(name)

    # plain photos, several sizes and aspect ratios
    save("landscape.jpg", scene(640, 480, 1), "JPEG", quality=90)
    save("portrait.jpg", scene(360, 540, 2), "JPEG", quality=90)
    save("square.jpg", scene(300, 300, 3), "JPEG", quality=90)
    save("panorama.jpg", scene(1000, 250, 4), "JPEG", quality=90)
    save("progressive.jpg", scene(480, 360, 5), "JPEG", quality=85, progressive=True)
    save("small.png", scene(40, 30, 6), "PNG")  # upscaled to 85x64
    save("exact-64.png", scene(64, 64, 7), "PNG")  # resize is the identity
    save("odd-333x251.png", scene(333, 251, 8), "PNG")  # odd sizes: crop offsets
    save("tall-90x700.png", scene(90, 700, 9), "PNG")  # extreme portrait

    # EXIF orientation 1..8: all display as the same upright 120x80 picture
    upright = exif_picture()
    for tag in range(1, 9):
        op = EXIF_STORE[tag]
        stored = upright if op is None else upright.transpose(op)
        exif = Image.Exif()
        exif[0x0112] = tag
        save(f"exif-{tag}.jpg", stored, "JPEG", quality=90, exif=exif.tobytes())
        with Image.open(out / f"exif-{tag}.jpg") as im:
            shown = np.asarray(ImageOps.exif_transpose(im), dtype=np.float64)
        err = np.abs(shown - np.asarray(upright, dtype=np.float64)).mean()
        assert shown.shape == (80, 120, 3) and err < 10, (tag, shown.shape, err)

    # colour modes and formats
    save("grey.png", scene(200, 150, 10).convert("L"), "PNG")
    la = scene(200, 150, 11).convert("L")
    a = np.asarray(la, dtype=np.uint8)
    yy, xx = np.mgrid[0:150, 0:200]
    alpha = np.clip(np.rint(255 * xx / 199.0), 0, 255).astype(np.uint8)
    save("grey-alpha.png", Image.fromarray(np.stack([a, alpha], axis=-1), "LA"), "PNG")
    rgb = np.asarray(scene(160, 120, 12), dtype=np.uint8).copy()
    yy, xx = np.mgrid[0:120, 0:160]
    alpha = np.clip(np.rint(255 * (1 - yy / 119.0) * (0.3 + 0.7 * xx / 159.0)), 0, 255).astype(np.uint8)
    alpha[10:40, 10:60] = 0  # fully transparent block over loud magenta: alpha must be dropped
    rgb[10:40, 10:60] = (255, 0, 255)
    save("rgba.png", Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG")

    f1 = scene(160, 120, 13).quantize(colors=64)  # mode P, median cut, Floyd-Steinberg
    f2 = scene(160, 120, 14).quantize(colors=64)
    save("palette.gif", f1, "GIF", save_all=True, append_images=[f2], duration=200, loop=0)

    save("photo.bmp", scene(150, 100, 15), "BMP")
    save("lossless.webp", scene(160, 120, 16), "WEBP", lossless=True, quality=100, method=4)

    # CMYK with a real K channel (50% grey component replacement), and PIL's own RGB->CMYK
    # (which always has K=0, where subtractive and multiplicative CMYK->RGB agree)
    s = np.asarray(scene(200, 150, 17), dtype=np.float64)
    mx = s.max(axis=-1)
    k = np.rint(0.5 * (255 - mx))
    cmy = 255 - np.rint(s * 255 / np.maximum(255 - k, 1)[..., None])
    cmyk = np.clip(np.dstack([cmy, k]), 0, 255).astype(np.uint8)
    save("cmyk.jpg", Image.fromarray(cmyk, "CMYK"), "JPEG", quality=90)
    save("cmyk-convert.jpg", scene(200, 150, 18).convert("CMYK"), "JPEG", quality=90)

    # 16 bits per sample: smooth 16-bit data (not just 8-bit * 257)
    g = np.asarray(scene(160, 120, 19).convert("L"), dtype=np.float64)
    yy, xx = np.mgrid[0:120, 0:160]
    g16 = np.clip(np.rint(g * 256 + 127 + 120 * np.sin(xx / 7.0) * np.cos(yy / 5.0)), 0, 65535).astype(np.uint16)
    g16[90:120, 0:60] = (xx[90:120, 0:60] * 10).astype(np.uint16)  # a dark ramp 0..590: PIL keeps < 256 as is
    im16 = Image.fromarray(g16)
    assert im16.mode == "I;16", im16.mode
    save("grey16.png", im16, "PNG")
    c = np.asarray(scene(160, 120, 20), dtype=np.float64)
    low = ((xx * 37 + yy * 91) % 256)[..., None]
    c16 = np.clip(np.rint(c * 256 + low), 0, 65535).astype(np.uint16)
    (out / "rgb48.png").write_bytes(png_rgb48(c16))
    good.append("rgb48.png")

    save("large.jpg", scene(2400, 1600, 21), "JPEG", quality=90)

    # bad files
    bad = out / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("This is a text file, not a JPEG.\nclipseek must skip it.\n", encoding="utf-8")
    valid = jpeg_bytes(scene(320, 240, 22), quality=90)
    (bad / "truncated.jpg").write_bytes(valid[: len(valid) * 40 // 100])
    (bad / "bomb.png").write_bytes(png_bomb())
    bad_names = ["bad/empty.jpg", "bad/text.jpg", "bad/truncated.jpg", "bad/bomb.png"]
    for name in bad_names:  # PIL must refuse every one of them
        try:
            with Image.open(out / name) as im:
                im.load()
        except Exception:
            continue
        raise SystemExit(f"{name}: PIL decoded it; it is meant to be bad")
    return good, bad_names


# --------------------------------------------------------------------------------------
# 2. preprocessing and tokenisation (the reference)


def image_processor_config(size: int) -> CLIPImageProcessor:
    return CLIPImageProcessor(
        do_resize=True,
        size={"shortest_edge": size},
        resample=3,
        do_center_crop=True,
        crop_size={"height": size, "width": size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
        do_convert_rgb=True,
    )


def sixteen_to_eight(im: Image.Image) -> Image.Image:
    """clipseek's one departure from PIL: a 16-bit grey image (I;16), which convert("RGB")
    clips at 255 (white), is scaled to 8 bits by its high byte (v >> 8), as PIL already
    does for 16-bit colour. Every other mode is returned as it is."""
    if not im.mode.startswith("I;16"):
        return im
    high = (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
    return Image.fromarray(high, "L")


def load_pixels(processor: CLIPImageProcessor, path: Path) -> np.ndarray:
    with Image.open(path) as im:
        oriented = sixteen_to_eight(ImageOps.exif_transpose(im))
    pv = processor(images=oriented, return_tensors="np")["pixel_values"]
    size = processor.crop_size["height"]
    assert pv.shape == (1, 3, size, size) and pv.dtype == np.float32, (pv.shape, pv.dtype)
    return pv[0]


def tokenizer() -> CLIPTokenizerFast:
    return CLIPTokenizerFast(tokenizer_file=str(TOKENIZER_JSON))


def tokenize(tok: CLIPTokenizerFast, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    enc = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="np")
    ids, mask = enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)
    assert ids.shape == (len(texts), 77)
    return ids, mask


# --------------------------------------------------------------------------------------
# 3. models


def tiny_config() -> CLIPConfig:
    return CLIPConfig(
        text_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, vocab_size=49408, hidden_act="gelu", layer_norm_eps=1e-5,
            projection_dim=24,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            num_channels=3, image_size=64, patch_size=8, hidden_act="quick_gelu", layer_norm_eps=1e-5,
            projection_dim=24,
        ),
        projection_dim=24,
        logit_scale_init_value=2.6592,
    )


def vit_b32_config() -> CLIPConfig:
    """The values of openai/clip-vit-base-patch32's config.json."""
    return CLIPConfig(
        text_config=dict(
            hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
            max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu", layer_norm_eps=1e-5,
            projection_dim=512, dropout=0.0, attention_dropout=0.0, initializer_range=0.02,
            initializer_factor=1.0, bos_token_id=0, eos_token_id=2, pad_token_id=1,
        ),
        vision_config=dict(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            num_channels=3, image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5,
            projection_dim=512, dropout=0.0, attention_dropout=0.0, initializer_range=0.02,
            initializer_factor=1.0,
        ),
        projection_dim=512,
        logit_scale_init_value=2.6592,
        initializer_factor=1.0,
    )


def param_kinds(model: nn.Module) -> dict[str, str]:
    """state_dict name -> kind, decided by the owning module's type."""
    kinds: dict[str, str] = {}
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                kind = "weight" if pname == "weight" else "bias"
            elif isinstance(mod, nn.LayerNorm):
                kind = "ln_weight" if pname == "weight" else "ln_bias"
            elif isinstance(mod, nn.Embedding):
                kind = "token_embedding" if mname.endswith("token_embedding") else "position_embedding"
                assert mname.endswith(("token_embedding", "position_embedding")), full
            elif pname == "class_embedding":
                kind = "class_embedding"
            elif full == "logit_scale":
                kind = "logit_scale"
            else:
                raise SystemExit(f"unclassified parameter {full} in {type(mod).__name__}")
            kinds[full] = kind
    sd = model.state_dict()
    assert set(kinds) == set(sd), set(kinds) ^ set(sd)
    return kinds


def fan_in(shape) -> int:
    return int(np.prod(shape[1:]))


def build_tiny() -> CLIPModel:
    cfg = tiny_config()
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = CLIPModel(cfg)
    kinds = param_kinds(model)
    sd = model.state_dict()
    with torch.no_grad():
        for name in sd:  # state_dict order, one draw each, seeded above
            p, kind = sd[name], kinds[name]
            r = torch.randn(p.shape, dtype=torch.float32)
            if kind == "weight":
                p.copy_(r / math.sqrt(fan_in(p.shape)))
            elif kind in ("bias", "ln_bias"):
                p.copy_(0.02 * r)
            elif kind == "ln_weight":
                p.copy_(1 + 0.1 * r)
            elif kind in ("token_embedding", "position_embedding", "class_embedding"):
                p.copy_(0.02 * r)
            elif kind == "logit_scale":
                p.fill_(2.6592)
    return model.eval()


# ---- the hash-based generator for the full-size random model (spec.json) ----

MASK64 = (1 << 64) - 1
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def fnv1a64(s: str) -> int:
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK64
    return h


def decimal(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def gen_scale_offset(kind: str, shape) -> tuple[str, str]:
    if kind == "weight":  # linear, conv and the two projections
        return decimal(math.sqrt(3.0 / fan_in(shape))), "0"
    if kind in ("bias", "ln_bias"):
        return "0.02", "0"
    if kind == "ln_weight":
        return "0.1", "1"
    if kind in ("token_embedding", "class_embedding"):
        return decimal(0.02 * math.sqrt(3.0)), "0"
    if kind == "position_embedding":
        return decimal(0.01 * math.sqrt(3.0)), "0"
    if kind == "logit_scale":
        return "0", "2.6592"
    raise ValueError(kind)


def gen_tensor(name: str, shape, scale: str, offset: str) -> np.ndarray:
    n = int(np.prod(shape)) if len(shape) else 1
    h = np.uint64(fnv1a64(name))
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64)
        z *= GOLDEN
        z += h
        z ^= z >> np.uint64(30)
        z *= M1
        z ^= z >> np.uint64(27)
        z *= M2
        z ^= z >> np.uint64(31)
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)
    del z
    v = u * np.float32(2) - np.float32(1)
    val = np.float32(float(offset)) + v * np.float32(float(scale))  # multiply, then add (no FMA)
    assert val.dtype == np.float32
    return val.reshape(shape)


def gen_scalar_reference(name: str, i: int, scale: str, offset: str) -> float:
    """Pure-Python cross-check of gen_tensor for element i (ints; float32 via numpy scalars)."""
    z = (fnv1a64(name) + (i + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z = z ^ (z >> 31)
    u = np.float32(z >> 40) * np.float32(2.0**-24)
    v = u * np.float32(2) - np.float32(1)
    return float(np.float32(np.float32(float(offset)) + np.float32(v * np.float32(float(scale)))))


# --------------------------------------------------------------------------------------
# 4. embeddings and references


@torch.no_grad()
def image_embeddings(model: CLIPModel, pixels: np.ndarray) -> np.ndarray:
    out = []
    for i in range(0, len(pixels), 8):
        e = model.get_image_features(pixel_values=torch.from_numpy(pixels[i : i + 8]))
        out.append(torch.nn.functional.normalize(e.float(), dim=-1).numpy())
    return np.concatenate(out)


@torch.no_grad()
def text_embeddings(model: CLIPModel, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    e = model.get_text_features(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    return torch.nn.functional.normalize(e.float(), dim=-1).numpy()


def rankings(texts: list[str], files: list[str], img: np.ndarray, txt: np.ndarray) -> list[dict]:
    scores = (torch.from_numpy(txt) @ torch.from_numpy(img).T).numpy()  # f32 cosines
    out = []
    for t, row in zip(texts, scores):
        order = sorted(range(len(files)), key=lambda j: -float(row[j]))  # stable: ties keep file order
        out.append({"text": t, "files": [files[j] for j in order], "scores": [float(row[j]) for j in order]})
    return out


def min_gap(ranks: list[dict]) -> float:
    return min(min(a - b for a, b in zip(r["scores"], r["scores"][1:])) for r in ranks)


def save_model_dir(model: CLIPModel, out: Path, processor: CLIPImageProcessor, with_tokenizer: bool) -> None:
    fresh_dir(out)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    if with_tokenizer:
        shutil.copyfile(TOKENIZER_JSON, out / "tokenizer.json")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"], names


LONG_TEXT = ("a long caption about a sunny afternoon in the park where children ride their bikes, "
             "dogs chase frisbees, parents read newspapers on wooden benches, an ice cream van plays "
             "a tune near the fountain, pigeons gather around crumbs, joggers pass by the pond with "
             "ducks and swans, and the old clock tower strikes four while clouds drift slowly over "
             "the rooftops of the city beyond the trees")

TINY_TEXTS = [
    "a photo of a cat",
    "kids on their bikes",
    "",
    "   ",
    LONG_TEXT,
    "🐶 dog at the beach 🏖️👍🏽",
    "A RED Car, parked!",
    "sunset over the mountains",
    "café crème brûlée",
    "東京の夜景",
    "don't stop me now",
    "black-and-white photo of an old house\twith\nnew lines",
]

FULL_TEXTS = [
    "a photo of a cat",
    "kids on their bikes",
    "",
    LONG_TEXT,
    "🐶 dog at the beach 🏖️👍🏽",
    "a red car on a sunny street",
]

FULL_IMAGES = ["landscape.jpg", "exif-6.jpg", "cmyk.jpg", "large.jpg"]


def text_entries(texts, ids, emb, emb16=None) -> list[dict]:
    out = []
    for i, t in enumerate(texts):
        row = [int(x) for x in ids[i]]
        e = {"text": t, "ids": row, "eos_position": row.index(EOT), "embedding": f32list(emb[i])}
        if emb16 is not None:
            e["embedding_f16"] = f32list(emb16[i])
        out.append(e)
    return out


def make_tiny(images_dir: Path, good: list[str], bad: list[str]) -> None:
    model = build_tiny()
    proc = image_processor_config(64)
    save_model_dir(model, FIX / "tiny-clip", proc, with_tokenizer=True)
    model16 = copy.deepcopy(model).half()
    save_model_dir(model16, FIX / "tiny-clip-f16", proc, with_tokenizer=True)
    model16_as_f32 = model16.float().eval()

    # reference uses the processor as saved (round trip through preprocessor_config.json)
    proc = CLIPImageProcessor.from_pretrained(FIX / "tiny-clip")
    ref = FIX / "reference"
    pix_dir = fresh_dir(ref / "pixels")
    pixels = []
    for name in good:
        pv = load_pixels(proc, images_dir / name)
        (pix_dir / f"{name}.f32").write_bytes(pv.astype("<f4").tobytes())
        pixels.append(pv)
    pixels = np.stack(pixels)
    img = image_embeddings(model, pixels)
    img16 = image_embeddings(model16_as_f32, pixels)

    tok = tokenizer()
    ids, mask = tokenize(tok, TINY_TEXTS)
    txt = text_embeddings(model, ids, mask)
    txt16 = text_embeddings(model16_as_f32, ids, mask)

    # the saved folders reproduce the numbers (f16 weights load upcast to f32)
    for sub, want_img, want_txt in (("tiny-clip", img, txt), ("tiny-clip-f16", img16, txt16)):
        reloaded = CLIPModel.from_pretrained(FIX / sub, attn_implementation="eager", dtype=torch.float32).eval()
        assert np.array_equal(image_embeddings(reloaded, pixels), want_img), sub
        assert np.array_equal(text_embeddings(reloaded, ids, mask), want_txt), sub

    ranks = rankings(TINY_TEXTS, good, img, txt)
    doc = {
        "model": "tiny-clip",
        "images": [
            {"file": name, "pixels": f"pixels/{name}.f32", "shape": [3, 64, 64],
             "embedding": f32list(img[i]), "embedding_f16": f32list(img16[i])}
            for i, name in enumerate(good)
        ],
        "texts": text_entries(TINY_TEXTS, ids, txt, txt16),
        "rankings": ranks,
        "bad": bad,
    }
    write_json(ref / "tiny.json", doc)
    cos16_img = float((img * img16).sum(-1).min())
    cos16_txt = float((txt * txt16).sum(-1).min())
    print(f"tiny: {len(good)} images, {len(TINY_TEXTS)} texts; min cos f32 vs f16-weights: "
          f"images {cos16_img:.6f}, texts {cos16_txt:.6f}; min ranking gap {min_gap(ranks):.2e}")
    off = img @ img.T
    print(f"tiny: image-image cosine min {off.min():.4f}, max off-diagonal "
          f"{(off - 2 * np.eye(len(off))).max():.4f}")
    exif = [good.index(f"exif-{t}.jpg") for t in range(1, 9)]
    print("tiny: exif-1..8 cos to exif-1:", " ".join(f"{float(img[exif[0]] @ img[j]):.5f}" for j in exif))


def make_tokens() -> None:
    tok = tokenizer()
    texts = token_strings()
    assert len(texts) >= 250 and len(set(texts)) == len(texts), len(texts)
    ids, _ = tokenize(tok, texts)
    long_count = 0
    for t in texts:
        n = len(tok(t)["input_ids"])
        long_count += n > 77
    write_json(FIX / "reference" / "tokens.json",
               [{"text": t, "ids": [int(x) for x in row]} for t, row in zip(texts, ids)])
    print(f"tokens: {len(texts)} strings, {long_count} longer than 77 tokens")


def token_strings() -> list[str]:
    base = [
        "a photo of a cat", "A Photo Of A Cat", "A PHOTO OF A CAT", "a photo of a cat.", "a photo of a cat!!!",
        "", " ", "   ", "\t", "\n", "\r\n", " \t \n ", "a", "A", "I", "x", "0", "00", "007",
        "  leading spaces", "trailing spaces   ", "  both sides  ", "multiple    spaces   inside",
        "tab\tseparated\twords", "new\nline\nseparated", "mixed \t\n whitespace", "carriage\rreturn",
        "don't", "DON'T", "Don't stop", "it's", "I'm", "we'll", "they're", "you've", "he'd",
        "rock 'n' roll", "'quoted'", "\"double quoted\"", "the dog's ball", "dogs' balls",
        "o'clock", "l'amour", "rock’n’roll with curly apostrophes", "don’t (curly)",
        "&amp;", "fish &amp; chips", "&lt;3", "&gt;_&lt;", "&quot;hi&quot;", "&#39;", "&nbsp;",
        "<b>bold</b> text", "<img src=\"x.png\">", "<|startoftext|>", "<|endoftext|>",
        "before <|endoftext|> after", "a <|startoftext|> b", "<|endoftext|><|endoftext|>",
        "https://example.com/photos?id=123&sort=asc", "www.example.org", "mailto:someone@example.com",
        "user@example.com", "#sunset #beach #nofilter", "@friend look at this", "C:\\Users\\photos\\img_0001.jpg",
        "/home/user/Pictures/2021/summer.jpg", "IMG_20230514_183012.jpg", "DSC01234.JPG",
        "3.14159", "1,000,000", "1.000.000,00", "2024-01-01", "12:30pm", "10%", "$100", "€50", "£20", "¥1000",
        "1st 2nd 3rd 4th", "100x100", "4k uhd", "covid-19", "v1.2.3", "0x1F", "1e10", "-42", "+1", "3/4", "½ ¼ ¾",
        "!!!", "???", "...", "…", "---", "—", "–", "!?!?", "((()))", "[[]]", "{{}}", "***", "___", "~~~",
        "a,b,c", "a;b;c", "a|b|c", "a/b/c", "a\\b\\c", "a-b-c", "a_b_c", "a.b.c", "a+b=c", "a*b", "50/50",
        "café", "naïve", "résumé", "crème brûlée", "Ångström", "Zürich", "São Paulo", "Kraków", "İstanbul",
        "straße", "STRASSE", "ΣΊΣΥΦΟΣ", "Ελληνικά", "Москва", "привет мир", "ПРИВЕТ", "cafe\u0301 (combining)",
        "e\u0301e\u0301", "ﬁsh (ligature)", "ＡＢＣ fullwidth", "①②③", "™ ® ©", "°C", "µm", "Å", "ǅ",
        "東京の夜景", "北京", "猫の写真", "一只猫的照片", "사진", "고양이 사진", "日本語と English mixed",
        "ひらがな カタカナ 漢字", "中文，标点。", "「引用」", "صورة قطة", "مرحبا بالعالم", "שלום עולם",
        "तस्वीर", "नमस्ते दुनिया", "ภาพถ่าย", "ကြောင်", "ქართული", "Հայերեն", "አማርኛ", "ᓄᓇᕗᑦ",
        "🐶", "🐱", "🐶🐱", "dog 🐶", "🐶dog", "😀😃😄😁", "❤️", "❤", "♥", "👍", "👍🏻", "👍🏽", "👍🏿",
        "👋🏼 hello", "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏽‍🚀", "🏳️‍🌈", "🏴‍☠️", "🇯🇵", "🇺🇸🇬🇧", "1️⃣", "#️⃣", "©️",
        "🏖️ beach", "🌅 sunset", "photo 📷 camera", "🎉🎉🎉 party", "👁️‍🗨️", "🫠", "🦄 unicorn",
        "zero\u200bwidth", "soft\u00adhyphen", "rtl\u200fmark", "nbsp\u00a0space", "ideographic\u3000space",
        "em\u2003space", "line\u2028separator", "bom\ufeffinside", "null\x00char", "bell\x07char",
        "del\x7fchar", "esc\x1b[0mcodes",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
        "supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
        "camelCaseWord", "snake_case_word", "kebab-case-word", "PascalCaseWord", "iPhone", "McDonald's",
        "e-mail", "re-enter", "co-operate", "state-of-the-art", "mother-in-law", "x-ray", "t-shirt",
        "New York City", "new york city", "NEW YORK CITY", "the Eiffel Tower at night",
        "kids on their bikes", "a dog playing in the snow", "two people hiking in the mountains",
        "a bowl of ramen", "birthday cake with candles", "the northern lights over a lake",
        "a red car parked on the street", "an old black and white photograph", "screenshot of a spreadsheet",
        "a blurry photo", "a close-up of a flower", "aerial view of a city", "my passport",
        LONG_TEXT, LONG_TEXT.upper(),
    ]
    long_generated = [
        " ".join(["word"] * 100),
        " ".join(str(i) for i in range(200)),
        "🐶" * 90,
        "東京" * 80,
        "a, " * 100,
        "!" * 300,
        "The quick brown fox jumps over the lazy dog. " * 8,
        "don't " * 80,
        "&amp; " * 60,
        "x" * 1000,
        "a photo of " + "a very " * 74 + "big cat",  # exactly around the truncation boundary
        "a photo of " + "a very " * 36 + "big cat",
        " ".join(f"tag{i}" for i in range(80)),
    ]
    rng = random.Random(250)
    words = ["photo", "cat", "dog", "beach", "Sunset", "MOUNTAIN", "city", "night", "kids", "bike", "car",
             "red", "blue", "green", "old", "new", "happy", "birthday", "party", "snow", "rain", "forest",
             "lake", "river", "bridge", "tower", "street", "food", "pizza", "coffee", "book", "garden"]
    extras = ["café", "naïve", "東京", "猫", "صورة", "Москва", "🐶", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "&amp;", "don't",
              "3.5", "2020", "#tag", "@me", "https://x.io/a?b=c", "...", "!!", "(yes)", "\t", "\n", "  "]
    generated = []
    while len(base) + len(long_generated) + len(generated) < 300:
        parts = []
        for _ in range(rng.randint(1, 12)):
            w = rng.choice(words) if rng.random() < 0.7 else rng.choice(extras)
            case = rng.random()
            w = w.upper() if case < 0.15 else w.capitalize() if case < 0.3 else w
            parts.append(w)
        sep = rng.choice([" ", " ", " ", "  ", ", ", "-", "\t"])
        s = sep.join(parts)
        if rng.random() < 0.2:
            s = " " + s
        if rng.random() < 0.2:
            s = s + rng.choice([" ", ".", "!", "?", " 🎉"])
        if s not in generated and s not in base:
            generated.append(s)
    return base + long_generated + generated


def make_full(images_dir: Path, bad: list[str]) -> None:
    out = FIX / "vit-b32-random"
    fresh_dir(out)
    # config.json as openai/clip-vit-base-patch32 has it: architectures, torch_dtype and the
    # legacy text token ids (bos 0, eos 2, pad 1) written out even where they are defaults
    d = vit_b32_config().to_diff_dict()
    d["architectures"] = ["CLIPModel"]
    d["torch_dtype"] = "float32"
    d["text_config"].update(bos_token_id=0, eos_token_id=2, pad_token_id=1)
    (out / "config.json").write_text(json.dumps(d, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    proc = image_processor_config(224)
    proc.save_pretrained(out)

    cfg = CLIPConfig.from_pretrained(out)  # the model is built from the file as written
    t = cfg.text_config
    assert (t.bos_token_id, t.eos_token_id, t.pad_token_id) == (0, 2, 1)
    assert cfg.to_diff_dict()["text_config"] == vit_b32_config().to_diff_dict()["text_config"]
    assert cfg.vision_config.to_dict() == vit_b32_config().vision_config.to_dict()
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = CLIPModel(cfg)
    kinds = param_kinds(model)
    sd = model.state_dict()
    tensors, arrays, digests = [], {}, {}
    for name, p in sd.items():
        shape = list(p.shape)
        scale, offset = gen_scale_offset(kinds[name], shape)
        a = gen_tensor(name, shape, scale, offset)
        arrays[name] = torch.from_numpy(a)
        digests[name] = hashlib.sha256(a.astype("<f4").tobytes()).hexdigest()
        tensors.append({"name": name, "shape": shape, "scale": scale, "offset": offset})
    model.load_state_dict(arrays, strict=True)
    model = model.float().eval()
    for name, p in model.state_dict().items():  # loaded exactly
        assert torch.equal(p, arrays[name]), name
    # keys save_pretrained writes == state_dict keys (no tied / dropped tensors)
    assert not getattr(model, "_tied_weights_keys", None), model._tied_weights_keys

    check_names = ["logit_scale", "text_model.embeddings.token_embedding.weight",
                   "vision_model.encoder.layers.0.self_attn.q_proj.bias",
                   "vision_model.embeddings.patch_embedding.weight"]
    by_name = {t["name"]: t for t in tensors}
    check = []
    for name in check_names:
        t = by_name[name]
        first = arrays[name].reshape(-1)[:4].numpy()
        flat = arrays[name].reshape(-1).numpy()
        for i in sorted({0, 1, 2, 3, len(flat) // 2, len(flat) - 1} & set(range(len(flat)))):  # pure Python agrees
            assert np.float32(gen_scalar_reference(name, i, t["scale"], t["offset"])) == flat[i], (name, i)
        check.append({"name": name, "fnv1a64": f"0x{fnv1a64(name):016x}", "scale": t["scale"],
                      "offset": t["offset"], "first": f32list(first),
                      "first_bits": [f"0x{int(v):08x}" for v in first.view(np.uint32)]})
    spec = {"generator": "splitmix64-fnv1a-v1", "dtype": "f32", "tensors": tensors, "check": check,
            "sha256_le_f32": digests}
    write_json(out / "spec.json", spec)
    n_params = sum(int(np.prod(t["shape"])) if t["shape"] else 1 for t in tensors)
    print(f"vit-b32-random: {len(tensors)} tensors, {n_params} values ({n_params * 4 / 1e6:.1f} MB f32)")

    pix_dir = out / "pixels"
    pix_dir.mkdir()
    pixels = []
    for name in FULL_IMAGES:
        pv = load_pixels(CLIPImageProcessor.from_pretrained(out), images_dir / name)
        (pix_dir / f"{name}.f32").write_bytes(pv.astype("<f4").tobytes())
        pixels.append(pv)
    img = image_embeddings(model, np.stack(pixels))
    ids, mask = tokenize(tokenizer(), FULL_TEXTS)
    txt = text_embeddings(model, ids, mask)
    ranks = rankings(FULL_TEXTS, FULL_IMAGES, img, txt)
    doc = {
        "model": "vit-b32-random",
        "images": [{"file": n, "pixels": f"pixels/{n}.f32", "shape": [3, 224, 224], "embedding": f32list(img[i])}
                   for i, n in enumerate(FULL_IMAGES)],
        "texts": text_entries(FULL_TEXTS, ids, txt),
        "rankings": ranks,
        "bad": bad,  # same shape as tiny.json
    }
    write_json(out / "reference.json", doc)
    np.set_printoptions(precision=4, suppress=True)
    ci, ct = img @ img.T, txt @ txt.T
    print("vit-b32-random: image-image cosine\n", ci)
    print("vit-b32-random: text-text cosine\n", ct)
    print("vit-b32-random: text-image cosine\n", txt @ img.T)
    print(f"vit-b32-random: min ranking gap {min_gap(ranks):.2e}")
    off = ci[~np.eye(len(ci), dtype=bool)]
    if off.min() > 0.99:
        print("vit-b32-random: WARNING image embeddings collapsed (all pairwise cosines > 0.99)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-full", action="store_true", help="do not regenerate vit-b32-random/")
    ap.add_argument("--only", choices=["variants", "multilingual", "clip-bin"],
                    help="write only these fixtures (scripts/fixture_models.py); images/ is redrawn")
    args = ap.parse_args()
    versions = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
                "Pillow": PIL.__version__, "numpy": np.__version__}
    for k, v in versions.items():
        if EXPECTED_VERSIONS[k] != v:
            print(f"warning: {k} {v} != {EXPECTED_VERSIONS[k]} (outputs may differ)", file=sys.stderr)
    torch.set_num_threads(1)  # bit-stable reductions, and the machine is shared
    torch.use_deterministic_algorithms(True)

    import fixture_models  # beside this script; it imports this module for the helpers

    images_dir = FIX / "images"
    good, bad = make_images(images_dir)
    if args.only is None:
        make_tiny(images_dir, good, bad)
        make_tokens()
    if args.only in (None, "variants"):
        fixture_models.make_variants(images_dir, good)
    if args.only in (None, "multilingual"):
        fixture_models.make_multilingual()
    if args.only in (None, "clip-bin"):
        fixture_models.make_clip_bin()
    if args.only is None and not args.skip_full:
        make_full(images_dir, bad)


if __name__ == "__main__":
    main()
