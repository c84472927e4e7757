"""The fixtures of the other models clipseek offers (issue 12), called by make_fixtures.py.

  variants   tiny random CLIPModels with the distinguishing features of
             laion/CLIP-ViT-B-32-laion2B-s34B-b79K (exact-erf GELU in both towers) and
             openai/clip-vit-base-patch16 (patch 16 at 224 px: 197 vision positions), and
             their references (reference/<name>.json)
  multilingual  a tiny random DistilBERT in the sentence-transformers layout of
             sentence-transformers/clip-ViT-B-32-multilingual-v1, with its references

Nothing is downloaded. Widths and layer counts are shrunk so the committed files stay
small; what tells the models apart is kept.
"""
from __future__ import annotations

import math
import sys
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


# --------------------------------------------------------------------------------------
# the multilingual text encoder (sentence-transformers/clip-ViT-B-32-multilingual-v1)

ML_DIM, ML_LAYERS, ML_HEADS, ML_FFN, ML_OUT = 32, 2, 4, 37, 24
ML_MAX_SEQ = 128  # sentence_bert_config.json of the real model

# The strings the tokenizer and the encoder are checked on: several scripts, accents,
# combining marks, emoji, whitespace and control characters, one text beyond 128 tokens.
ML_TEXTS = [
    "a photo of a cat", "A Photo Of A Cat", "", "   ", " leading and trailing \t\n",
    "café crème brûlée", "Ångström in Zürich", "São Paulo à noite", "naïve résumé", "straße",
    "cafe\u0301 with a combining accent", "ﬁsh ligature", "ＡＢＣ fullwidth",
    "Кошка на диване", "привет мир", "ПРИВЕТ", "Ελληνικά: η γάτα κοιμάται", "ΣΊΣΥΦΟΣ",
    "東京の夜景", "一只猫的照片", "猫の写真と犬", "고양이 사진", "日本語と English mixed",
    "صورة قطة على الأريكة", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "ภาพถ่ายแมว",
    "🐶 dog at the beach 🏖️👍🏽", "👨‍👩‍👧‍👦 family", "🦄 unicorn", "🇯🇵 flag",
    "don't stop", "rock 'n' roll", "e-mail & co.", "3.14159 and 1,000,000", "#sunset @friend",
    "zero\u200bwidth", "nbsp\u00a0space", "\x1cfile separator\x1f", "null\x00char", "tab\tin\tside",
    "Der Hund läuft über die Wiese", "El perro corre por la playa", "Il gatto dorme sul divano",
    "Kot śpi na kanapie", "Köpek sahilde koşuyor", "Con mèo đang ngủ",
    " ".join(["многоязычный поиск фотографий"] * 60),  # longer than 128 tokens: truncated
]

# Extra text the vocabulary is built from (so that words split into several pieces).
ML_CORPUS = ML_TEXTS + [
    "the cat sleeps on the sofa", "dogs run on the beach at sunset", "photos of mountains",
    "кошки и собаки", "γάτες και σκύλοι", "東京タワーの写真", "الشاطئ عند الغروب",
]


def ml_vocab() -> list[str]:
    """A tiny WordPiece vocabulary in mBERT's layout ([PAD] 0, [unused..], [UNK] 100,
    [CLS] 101, [SEP] 102, [MASK] 103): every character seen (alone and as ##suffix) except a
    few left out so [UNK] occurs, frequent whole words, and 2-4 character word starts."""
    from tokenizers import normalizers, pre_tokenizers

    norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                      lowercase=False)
    pre = pre_tokenizers.BertPreTokenizer()
    words: dict[str, int] = {}
    for text in ML_CORPUS:
        for w, _ in pre.pre_tokenize_str(norm.normalize_str(text.strip())):
            words[w] = words.get(w, 0) + 1
    left_out = {"🦄", "ภ", "猫"}  # these characters become [UNK]
    chars = sorted({c for w in words for c in w} - left_out)
    frequent = sorted(words, key=lambda w: (-words[w], w))[:60]
    starts = sorted({w[:n] for w in words for n in (2, 3, 4) if len(w) > n} - set(frequent))[:120]
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    seen = set(vocab)
    for tok in chars + ["##" + c for c in chars] + frequent + starts:
        if tok not in seen and not set(tok) & left_out:
            vocab.append(tok)
            seen.add(tok)
    return vocab


def ml_randomise(model: torch.nn.Module, seed: int) -> None:
    torch.manual_seed(seed)
    with torch.no_grad():
        for mname, mod in model.named_modules():
            for pname, p in mod.named_parameters(recurse=False):
                r = torch.randn(p.shape, dtype=torch.float32)
                if isinstance(mod, torch.nn.Linear):
                    p.copy_(r / math.sqrt(p.shape[1]) if pname == "weight" else 0.02 * r)
                elif isinstance(mod, torch.nn.LayerNorm):
                    p.copy_(1 + 0.1 * r if pname == "weight" else 0.02 * r)
                elif isinstance(mod, torch.nn.Embedding):
                    p.copy_(0.5 * r)
                else:
                    raise SystemExit(f"unclassified parameter {mname}.{pname}")


def ml_write(out: Path, bert, dense_w: torch.Tensor, tok, safe: bool) -> None:
    """The sentence-transformers layout of clip-ViT-B-32-multilingual-v1."""
    import json as _json

    mf.fresh_dir(out)
    bert.save_pretrained(out, safe_serialization=safe)
    tok.save_pretrained(out)
    (out / "1_Pooling").mkdir()
    (out / "2_Dense").mkdir()
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        ],
        "sentence_bert_config.json": {"max_seq_length": ML_MAX_SEQ, "do_lower_case": False},
        "config_sentence_transformers.json": {"__version__": {"sentence_transformers": "2.0.0"}},
        "1_Pooling/config.json": {
            "word_embedding_dimension": ML_DIM, "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
        "2_Dense/config.json": {"in_features": ML_DIM, "out_features": ML_OUT, "bias": False,
                                "activation_function": "torch.nn.modules.linear.Identity"},
    }
    for name, obj in files.items():
        (out / name).write_text(_json.dumps(obj, indent=2) + "\n", encoding="utf-8")
    state = {"linear.weight": dense_w.clone().contiguous()}
    if safe:
        from safetensors.torch import save_file
        save_file(state, out / "2_Dense" / "model.safetensors")
    else:
        torch.save(collections_ordered(state), out / "2_Dense" / "pytorch_model.bin")


def collections_ordered(d: dict):
    import collections
    return collections.OrderedDict(d)


@torch.no_grad()
def ml_reference(bert, dense_w, tok, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
    """As sentence-transformers computes it: strip, tokenize (truncate to max_seq_length),
    the transformer, mean over the attention mask, the dense layer (no bias, identity)."""
    ids, out = [], []
    for t in texts:
        enc = tok([t.strip()], padding=True, truncation="longest_first", max_length=ML_MAX_SEQ,
                  return_tensors="pt")
        h = bert(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
        out.append((pooled @ dense_w.T)[0].numpy())
        ids.append([int(x) for x in enc["input_ids"][0]])
    return ids, np.stack(out)


def make_multilingual() -> None:
    import tempfile

    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizerFast

    vocab = ml_vocab()
    with tempfile.TemporaryDirectory() as tmp:
        vf = Path(tmp) / "vocab.txt"
        vf.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tok = DistilBertTokenizerFast(vocab_file=str(vf), do_lower_case=False, tokenize_chinese_chars=True,
                                      strip_accents=None, model_max_length=512)
    cfg = DistilBertConfig(vocab_size=len(vocab), dim=ML_DIM, n_layers=ML_LAYERS, n_heads=ML_HEADS,
                           hidden_dim=ML_FFN, max_position_embeddings=512, activation="gelu",
                           sinusoidal_pos_embds=False, pad_token_id=0, dropout=0.0, attention_dropout=0.0)
    cfg._attn_implementation = "eager"
    bert = DistilBertModel(cfg)
    ml_randomise(bert, 3)
    bert = bert.eval()
    torch.manual_seed(4)
    dense_w = torch.randn(ML_OUT, ML_DIM) / math.sqrt(ML_DIM)
    safe_dir, bin_dir = mf.FIX / "multilingual-tiny", mf.FIX / "multilingual-tiny-bin"
    ml_write(safe_dir, bert, dense_w, tok, safe=True)
    ml_write(bin_dir, bert, dense_w, tok, safe=False)
    assert (bin_dir / "pytorch_model.bin").exists() and not (bin_dir / "model.safetensors").exists()

    ids, emb = ml_reference(bert, dense_w, tok, ML_TEXTS)
    # sentence-transformers itself, from each folder, gives the same numbers
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        print("multilingual: sentence-transformers not installed; its own check skipped", file=sys.stderr)
    else:
        for d in (safe_dir, bin_dir):
            st = SentenceTransformer(str(d), device="cpu")
            got = st.encode(ML_TEXTS, batch_size=8, convert_to_numpy=True)
            err = float(np.abs(got - emb).max())
            assert err < 1e-5, (d.name, err)
            print(f"multilingual: SentenceTransformer({d.name}) vs reference max |diff| {err:.2e}")
    # the fast tokenizer as saved reads back to the same ids
    back = DistilBertTokenizerFast.from_pretrained(safe_dir)
    for t, row in zip(ML_TEXTS, ids):
        assert back(t.strip(), truncation=True, max_length=ML_MAX_SEQ)["input_ids"] == row, t
    unk = sum(row.count(100) for row in ids)
    longest = max(len(r) for r in ids)
    doc = {
        "model": "multilingual-tiny",
        "max_seq_length": ML_MAX_SEQ,
        "texts": [{"text": t, "ids": row, "embedding": mf.f32list(emb[i])}
                  for i, (t, row) in enumerate(zip(ML_TEXTS, ids))],
    }
    mf.write_json(mf.FIX / "reference" / "multilingual-tiny.json", doc)
    print(f"multilingual: vocab {len(vocab)}, {len(ML_TEXTS)} texts, {unk} [UNK] ids, longest {longest} ids; "
          f"weights {(safe_dir / 'model.safetensors').stat().st_size} + "
          f"{(safe_dir / '2_Dense' / 'model.safetensors').stat().st_size} bytes")


def make_clip_bin() -> None:
    """tiny-clip-f16-bin/pytorch_model.bin: tiny-clip-f16's weights as `torch.save` of the
    model's state dict writes them (the checkpoint a revision without model.safetensors
    publishes; float16 storages, the int64 position_ids buffers included). Only the .bin is
    kept: the Rust test pairs it with tiny-clip-f16's JSON files, and both folders must give
    bit-identical embeddings."""
    src = mf.FIX / "tiny-clip-f16"
    out = mf.fresh_dir(mf.FIX / "tiny-clip-f16-bin")
    model = CLIPModel.from_pretrained(src, dtype=torch.float16).eval()
    state = model.state_dict()
    from safetensors.torch import load_file
    saved = load_file(src / "model.safetensors")
    for name, t in saved.items():
        assert torch.equal(state[name], t), name
    torch.save(state, out / "pytorch_model.bin")
    back = torch.load(out / "pytorch_model.bin", weights_only=True)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
    print(f"clip-bin: {len(state)} tensors, {(out / 'pytorch_model.bin').stat().st_size} bytes")
