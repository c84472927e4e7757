#!/usr/bin/env python3
"""Train a tiny CLIP on synthetic coloured shapes, for clipseek's end-to-end search tests.

Run by hand (outputs are committed), from anywhere:

    nice python3 scripts/train_shapes_model.py            # train, write everything (~4 CPU-min)
    nice python3 scripts/train_shapes_model.py --steps 200 --out /tmp/x   # quick try elsewhere

A real search test needs a model whose rankings mean something: typing "red circle" must put
red circles first. This script trains a `transformers.CLIPModel` (two 2-layer towers, the real
49,408-token vocabulary) from scratch on pictures of 4 colours x 4 shapes drawn with PIL, then
ranks freshly drawn test pictures (another seed) with HF transformers and writes the reference.

Nothing is downloaded: the tokenizer is the committed tests/fixtures/clip-tokenizer/tokenizer.json.

Training inputs go through exactly the inference preprocessing (DESIGN.md, "Reference
semantics"): every training picture is a PIL image of a few dozen pixels a side, fed to the slow,
PIL-based `transformers.CLIPImageProcessor` with the config that is saved next to the model
(shortest edge 32, bicubic, centre crop 32, 1/255, CLIP mean/std). So the browser's port of that
processor sees, at search time, the same kind of tensors the model was trained on.

Outputs (under tests/fixtures/ unless --out):
  shapes-clip/{config.json, model.safetensors (f32), preprocessor_config.json, tokenizer.json}
  shapes/                 64 test pictures (4 per colour-shape pair, so precision@4 can be 1;
                          PNG and JPEG, several sizes, nested folders), drawn with another seed
  shapes-reference.json   per query: ranking of shapes/ by HF cosine, precision@2 / @4
The README of the model (shapes-clip/README.md) is written by hand; update its figures when the
printed ones change.

Determinism: seeded torch / numpy, torch.use_deterministic_algorithms, 1 CPU thread (--threads).
Two runs with the same versions gave the same bytes (the script prints the weights' sha256, also
recorded in shapes-reference.json). Exits 1 when below target: "red circle" precision@4 < 1 or
mean precision@4 < 0.9.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import PIL
import torch
import torch.nn.functional as F
import transformers
from PIL import Image, ImageDraw, ImageOps
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
TOKENIZER_JSON = FIX / "clip-tokenizer" / "tokenizer.json"

EXPECTED_VERSIONS = {"torch": "2.15.0", "transformers": "4.57.6", "Pillow": "13.0.0", "numpy": "2.4.6"}

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGE_SIZE = 32

COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["circle", "square", "triangle", "star"]
CLASSES = [(c, s) for c in COLOURS for s in SHAPES]  # class index = 4 * colour + shape
# Each colour: per-channel (low, high) ranges of the fill, so "red" covers a family of reds.
COLOUR_RANGES = {
    "red": ((185, 255), (0, 70), (0, 70)),
    "green": ((0, 80), (125, 210), (0, 90)),
    "blue": ((0, 70), (30, 120), (165, 255)),
    "yellow": ((215, 255), (190, 245), (0, 70)),
}
# Training captions: every template for every class, every step. The reference ranks the first
# template ("a red circle") and the bare one ("red circle", what a person types in the page).
TEMPLATES = ["a {c} {s}", "{c} {s}", "a photo of a {c} {s}", "the {c} {s}", "a picture of a {c} {s}"]
# Picture sizes (width, height): square, landscape, portrait, so resize and crop both matter.
TRAIN_SIZES = [(96, 96), (120, 90), (90, 120), (64, 80), (80, 64), (128, 96), (72, 72), (100, 75)]
TEST_SIZES = [(96, 96), (120, 90), (64, 80), (128, 96), (80, 64), (90, 120), (100, 100), (75, 100)]
TEST_PER_CLASS = 4  # precision@4 needs at least 4 relevant pictures per query
TRAIN_SEED, TEST_SEED = 1234, 98765


def config() -> CLIPConfig:
    return CLIPConfig(
        text_config=dict(
            hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu", layer_norm_eps=1e-5,
            projection_dim=32,
        ),
        vision_config=dict(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_channels=3, image_size=IMAGE_SIZE, patch_size=4, hidden_act="quick_gelu",
            layer_norm_eps=1e-5, projection_dim=32,
        ),
        projection_dim=32,
        logit_scale_init_value=2.6592,  # ln(1/0.07), learnt, clamped at ln(100)
    )


def processor() -> CLIPImageProcessor:
    """The slow (PIL) processor, built explicitly; saved as preprocessor_config.json."""
    return CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": IMAGE_SIZE}, resample=3,
        do_center_crop=True, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True,
    )


# --------------------------------------------------------------------------------------
# pictures


def shape_polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    if shape == "square":
        pts = [(r, k * math.pi / 2) for k in range(4)]
    elif shape == "triangle":
        pts = [(r, k * 2 * math.pi / 3) for k in range(3)]
    elif shape == "star":
        pts = [(r if k % 2 == 0 else 0.42 * r, k * math.pi / 5) for k in range(10)]
    else:
        raise ValueError(shape)
    return [(cx + rr * math.cos(a + rot), cy + rr * math.sin(a + rot)) for rr, a in pts]


def draw(colour: str, shape: str, w: int, h: int, rng: np.random.Generator) -> Image.Image:
    """One shape on a light, gradient background with mild noise, inside the centre square
    (the part the centre crop keeps)."""
    c0 = rng.uniform(190, 250, 3)
    c1 = rng.uniform(190, 250, 3)
    ang = rng.uniform(0, 2 * math.pi)
    xs = (np.arange(w, dtype=np.float32) / w - 0.5) * math.cos(ang)
    ys = (np.arange(h, dtype=np.float32) / h - 0.5) * math.sin(ang)
    t = np.clip(ys[:, None] + xs[None, :] + 0.5, 0, 1)
    bg = c0.astype(np.float32) + t[..., None] * (c1 - c0).astype(np.float32)
    im = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")

    d = ImageDraw.Draw(im)
    # faint distractors: a few thin grey lines, so the background is not flat
    for _ in range(int(rng.integers(0, 3))):
        g = int(rng.uniform(150, 200))
        d.line([tuple(rng.uniform(0, [w, h])), tuple(rng.uniform(0, [w, h]))], fill=(g, g, g), width=1)

    side = min(w, h)
    x0, y0 = (w - side) / 2, (h - side) / 2
    r = rng.uniform(0.22, 0.42) * side
    m = 0.9 * r + 1
    cx = x0 + rng.uniform(m, side - m)
    cy = y0 + rng.uniform(m, side - m)
    fill = tuple(int(rng.integers(lo, hi + 1)) for lo, hi in COLOUR_RANGES[colour])
    rot = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        rc = 0.85 * r
        d.ellipse([cx - rc, cy - rc, cx + rc, cy + rc], fill=fill)
    else:
        d.polygon(shape_polygon(shape, cx, cy, r, rot), fill=fill)

    a = np.asarray(im).astype(np.float32)
    a += np.float32(rng.uniform(2, 7)) * rng.standard_normal(a.shape, dtype=np.float32)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGB")


def train_batch(proc, rng: np.random.Generator, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = rng.permutation(np.repeat(np.arange(len(CLASSES)), per_class))
    ims = []
    for k in labels:
        w, h = TRAIN_SIZES[int(rng.integers(len(TRAIN_SIZES)))]
        ims.append(draw(*CLASSES[k], w, h, rng))
    pv = proc(images=ims, return_tensors="np")["pixel_values"]
    return torch.from_numpy(pv), torch.from_numpy(labels.astype(np.int64))


# --------------------------------------------------------------------------------------
# training


def tokenize(tok: CLIPTokenizerFast, texts: list[str], length: int = 77) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tok(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    return enc["input_ids"].long(), enc["attention_mask"].long()


def train(model: CLIPModel, proc, tok, steps: int, batch: int, lr: float) -> list[float]:
    rng = np.random.default_rng(TRAIN_SEED)
    texts = [t.format(c=c, s=s) for t in TEMPLATES for c, s in CLASSES]
    # Training feeds 16 positions instead of 77: attention is causal and the text is pooled at
    # the end token (position <= 8 here), so the padding after it cannot change the embedding.
    # (Checked here against the 77-position forward.)
    ids, mask = tokenize(tok, texts, 16)
    with torch.no_grad():
        ids77, mask77 = tokenize(tok, texts)
        full = model.get_text_features(input_ids=ids77, attention_mask=mask77)
        assert torch.allclose(model.get_text_features(input_ids=ids, attention_mask=mask), full, atol=1e-6)
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.98), eps=1e-6)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: (i + 1) / warm if i < warm else 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, steps - warm))))
    n_cls, n_tpl = len(CLASSES), len(TEMPLATES)
    per_class = batch // n_cls
    losses = []
    model.train()
    t0 = time.time()
    for step in range(steps):
        pixels, labels = train_batch(proc, rng, per_class)
        img = F.normalize(model.get_image_features(pixel_values=pixels), dim=-1)
        txt = F.normalize(model.get_text_features(input_ids=ids, attention_mask=mask), dim=-1)
        txt = txt.view(n_tpl, n_cls, -1)
        scale = model.logit_scale.exp().clamp(max=100)
        logits = scale * torch.einsum("bd,tkd->tbk", img, txt)  # [templates, images, classes]
        # image -> its caption among the 16 (per template)
        loss_i = F.cross_entropy(logits.reshape(-1, n_cls), labels.repeat(n_tpl))
        # caption -> its images among the batch (several positives: uniform target over them)
        onehot = F.one_hot(labels, n_cls).float()  # [images, classes]
        target = (onehot / onehot.sum(0, keepdim=True)).T  # [classes, images]
        logp_t = F.log_softmax(logits.transpose(1, 2), dim=-1)  # [templates, classes, images]
        loss_t = -(target * logp_t).sum(-1).mean()
        loss = 0.5 * (loss_i + loss_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        if step % 100 == 0 or step == steps - 1:
            acc = (logits[0].argmax(-1) == labels).float().mean().item()
            print(f"step {step:5d}  loss {np.mean(losses[-100:]):.4f}  acc(a ..) {acc:.2f}  "
                  f"scale {scale.item():.1f}  lr {sched.get_last_lr()[0]:.2e}  {time.time() - t0:.0f}s", flush=True)
    model.eval()
    return losses


# --------------------------------------------------------------------------------------
# test pictures and the reference


def test_path(colour: str, shape: str, i: int) -> str:
    """Nested layout, two depths, PNG and JPEG mixed."""
    ext = "png" if (i + COLOURS.index(colour) + SHAPES.index(shape)) % 2 == 0 else "jpg"
    folder = {"red": "warm", "yellow": "warm/yellow", "green": "cool", "blue": "cool/blue"}[colour]
    return f"{folder}/{colour}-{shape}-{i}.{ext}"


def make_test_images(out: Path) -> list[str]:
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(TEST_SEED)
    files = []
    for c, s in CLASSES:
        for i in range(1, TEST_PER_CLASS + 1):
            w, h = TEST_SIZES[int(rng.integers(len(TEST_SIZES)))]
            im = draw(c, s, w, h, rng)
            rel = test_path(c, s, i)
            p = out / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if rel.endswith(".png"):
                im.save(p, format="PNG", optimize=True)
            else:
                im.save(p, format="JPEG", quality=90)
            files.append(rel)
    return sorted(files)


def load_pixels(proc: CLIPImageProcessor, path: Path) -> np.ndarray:
    with Image.open(path) as im:
        oriented = ImageOps.exif_transpose(im)
        return proc(images=oriented, return_tensors="np")["pixel_values"][0]


@torch.no_grad()
def reference(model_dir: Path, shapes_dir: Path, files: list[str]) -> dict:
    model = CLIPModel.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32).eval()
    proc = CLIPImageProcessor.from_pretrained(model_dir)  # the slow class, as saved
    assert type(proc) is CLIPImageProcessor, type(proc)
    tok = CLIPTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"))
    pixels = torch.from_numpy(np.stack([load_pixels(proc, shapes_dir / f) for f in files]))
    img = F.normalize(model.get_image_features(pixel_values=pixels), dim=-1)
    queries = [f"a {c} {s}" for c, s in CLASSES] + [f"{c} {s}" for c, s in CLASSES]
    ids, mask = tokenize(tok, queries)
    txt = F.normalize(model.get_text_features(input_ids=ids, attention_mask=mask), dim=-1)
    scores = (txt @ img.T).numpy()
    out = []
    for q, (c, s), row in zip(queries, CLASSES + CLASSES, scores):
        order = sorted(range(len(files)), key=lambda j: -float(row[j]))  # stable: ties in file order
        ranked = [files[j] for j in order]
        hit = [Path(f).name.startswith(f"{c}-{s}-") for f in ranked]
        out.append({
            "query": q, "colour": c, "shape": s,
            "precision_at_2": sum(hit[:2]) / 2, "precision_at_4": sum(hit[:4]) / 4,
            "gap_at_4": float(row[order[3]] - row[order[4]]),
            "files": ranked, "scores": [round(float(row[j]), 6) for j in order],
        })
    sizes = []
    for f in files:
        with Image.open(shapes_dir / f) as im:
            sizes.append({"file": f, "format": im.format, "width": im.width, "height": im.height})
    return {"images": sizes, "queries": out}


def dumps(o, ind: int = 0) -> str:
    """JSON with one line per list of scalars (readable diffs)."""
    pad, pad1 = " " * ind, " " * (ind + 1)
    if isinstance(o, dict):
        items = [f"{pad1}{json.dumps(k)}: {dumps(v, ind + 1)}" for k, v in o.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(o, list):
        if all(not isinstance(x, (dict, list)) for x in o):
            return json.dumps(o, separators=(", ", ": "))
        return "[\n" + ",\n".join(pad1 + dumps(x, ind + 1) for x in o) + "\n" + pad + "]"
    return json.dumps(o)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64, help="a multiple of 16 (balanced classes)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=FIX, help="folder for shapes-clip/, shapes/, shapes-reference.json")
    args = ap.parse_args()
    assert args.batch % len(CLASSES) == 0, "batch must be a multiple of 16"
    versions = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
                "Pillow": PIL.__version__, "numpy": np.__version__}
    for k, v in versions.items():
        if EXPECTED_VERSIONS[k] != v:
            print(f"warning: {k} {v} != {EXPECTED_VERSIONS[k]} (outputs may differ)", file=sys.stderr)
    # One thread: on the shared 2-core machine two OpenMP threads ran ~5x slower (spinning
    # while the other core was busy), and one thread keeps float reductions in a fixed order.
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)

    cfg = config()
    cfg._attn_implementation = "eager"
    model = CLIPModel(cfg)
    proc = processor()
    tok = CLIPTokenizerFast(tokenizer_file=str(TOKENIZER_JSON))

    t0 = time.time()
    losses = train(model, proc, tok, args.steps, args.batch, args.lr)
    train_s = time.time() - t0

    model_dir = args.out / "shapes-clip"
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"):
        (model_dir / name).unlink(missing_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    proc.save_pretrained(model_dir)
    shutil.copyfile(TOKENIZER_JSON, model_dir / "tokenizer.json")

    shapes_dir = args.out / "shapes"
    files = make_test_images(shapes_dir)
    ref = reference(model_dir, shapes_dir, files)
    qs = ref["queries"]
    mean_a = float(np.mean([q["precision_at_4"] for q in qs[:16]]))
    mean_bare = float(np.mean([q["precision_at_4"] for q in qs[16:]]))
    digest = hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()
    doc = {
        "model": "shapes-clip",
        "images_dir": "shapes/",
        "note": "queries 0-15 are the captions 'a <colour> <shape>', 16-31 the bare '<colour> <shape>'; "
                "precision_at_k = share of the top k whose file name starts with '<colour>-<shape>-'; "
                "gap_at_4 = score of rank 4 minus score of rank 5; scores are HF cosines rounded to 6 places",
        "mean_precision_at_4": mean_a,
        "mean_precision_at_4_bare": mean_bare,
        "training": {"steps": args.steps, "batch": args.batch, "lr": args.lr,
                     "final_loss": round(float(np.mean(losses[-100:])), 4),
                     "model_sha256": digest, "versions": versions},
        "images": ref["images"],
        "queries": qs,
    }
    (args.out / "shapes-reference.json").write_text(dumps(doc) + "\n", encoding="utf-8")

    print(f"\ntrained {args.steps} steps in {train_s:.0f}s; final loss {doc['training']['final_loss']}")
    print(f"{'query':24s} p@2  p@4  gap@4")
    for q in qs:
        print(f"{q['query']:24s} {q['precision_at_2']:.2f} {q['precision_at_4']:.2f} {q['gap_at_4']:+.4f}")
    print(f"mean precision@4: captions {mean_a:.3f}, bare queries {mean_bare:.3f}")
    print(f"model.safetensors sha256 {digest}")
    red = qs[0]["precision_at_4"], qs[16]["precision_at_4"]
    if min(red) < 1.0 or min(mean_a, mean_bare) < 0.9:
        print("WARNING: below target (red circle p@4 = 1.0, mean p@4 >= 0.9)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
