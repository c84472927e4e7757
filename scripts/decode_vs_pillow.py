#!/usr/bin/env python3
"""Which image files Pillow reads against which clipseek's decoder reads.

Run by hand, never in CI. Walks the folders given (public decoder test suites, e.g.
Pillow's sdist `Tests/images`, unpacked under /tmp and never committed), keeps the files
whose first bytes are JPEG, PNG, GIF, WebP or BMP (the formats clipseek reads), and asks:

- Pillow: `ImageOps.exif_transpose(Image.open(f)).convert("RGB")` with its default
  limits (`LOAD_TRUNCATED_IMAGES` off), the reference pipeline of tests/fixtures/README.md;
- clipseek: `examples/decode_check.rs` (the model's decode + preprocessing), one process
  reading the paths on stdin.

Prints how many Pillow reads, the share of those clipseek reads too (the ratio), and
every disagreement with clipseek's sentence or Pillow's exception.

    nice -n 19 cargo build --release --example decode_check
    /work/venv/bin/python scripts/decode_vs_pillow.py /tmp/pillow-src/Tests/images
"""

import argparse
import os
import subprocess
import sys
import warnings

MAGIC = [
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
]


def sniff(path):
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for magic, name in MAGIC:
        if head.startswith(magic) and (name != "BMP" or len(head) >= 14):
            return name
    return None


def pillow_reads(path):
    """None when Pillow reads the file, else its exception in one line."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                ImageOps.exif_transpose(im).convert("RGB")
        return None
    except Exception as e:  # noqa: BLE001 - any refusal counts
        return f"{type(e).__name__}: {e}".splitlines()[0][:160]


def ours(paths, binary):
    run = subprocess.run(
        [binary], input="\n".join(paths) + "\n", capture_output=True, text=True, check=True
    )
    answers = {}
    for line in run.stdout.splitlines():
        verdict, path, detail = line.split("\t", 2)
        answers[path] = None if verdict == "ok" else detail
    return answers


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", help="folders to walk")
    parser.add_argument(
        "--decoder",
        default=os.path.join(here, "..", "target", "release", "examples", "decode_check"),
    )
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    args = parser.parse_args()

    files = {}
    for root in args.roots:
        for folder, _, names in os.walk(root):
            for name in sorted(names):
                path = os.path.join(folder, name)
                kind = sniff(path)
                if kind and os.path.isfile(path):
                    files[path] = kind
    paths = sorted(files)
    pil = {p: pillow_reads(p) for p in paths}
    mine = ours(paths, args.decoder)

    read_by_pil = [p for p in paths if pil[p] is None]
    both = [p for p in read_by_pil if mine.get(p, "no answer") is None]
    only_pil = [p for p in read_by_pil if mine.get(p, "no answer") is not None]
    only_ours = [p for p in paths if pil[p] is not None and mine.get(p) is None]

    if not args.quiet:
        for p in only_pil:
            print(f"pillow only  {files[p]:4}  {p}\n    ours: {mine.get(p, 'no answer')}")
        for p in only_ours:
            print(f"ours only    {files[p]:4}  {p}\n    pillow: {pil[p]}")
    per_kind = {}
    for p in read_by_pil:
        k = per_kind.setdefault(files[p], [0, 0])
        k[0] += 1
        k[1] += p in both
    print(f"{len(paths)} files in our formats; Pillow reads {len(read_by_pil)}")
    for kind, (n, ok) in sorted(per_kind.items()):
        print(f"  {kind:4}  {ok}/{n}")
    ratio = 100.0 * len(both) / max(1, len(read_by_pil))
    print(f"clipseek reads {len(both)} of them: {ratio:.1f} %")
    print(f"clipseek reads {len(only_ours)} that Pillow refuses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
