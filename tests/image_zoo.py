"""Generated awkward images for tests: every file the decode path must read right or refuse.

Example:
    >>> import tempfile
    >>> sorted(write_zoo(tempfile.mkdtemp()))[:2]
    ['bomb_header', 'cmyk_jpeg']
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from shared_data import encode

#: name -> (file name, True if a valid image that must be scored, False if it must be an error)
VALID = {
    "rgb_png": "rgb.png",
    "cmyk_jpeg": "cmyk.jpg",
    "gray16_png": "gray16.png",
    "rgb16_png": "rgb16.png",
    "palette_png": "palette.png",
    "rgba_png": "rgba.png",
    "exif_rotated_jpeg": "rotated.jpg",
    "gray_jpeg": "gray.jpg",
    "webp": "photo.webp",
    "tiny_1px": "one.png",
    "flat_png": "flat.png",
}
#: More encoders, layouts and orientations: decoded like ``imread`` too, but not in the pipeline zoo
#: that :func:`write_zoo` writes by default (the pipeline tests count its rows and formats).
MORE_VALID = {
    "progressive_jpeg": "progressive.jpg",
    "jpeg_444": "s444.jpg",
    "jpeg_422": "s422.jpg",
    "restart_jpeg": "restart.jpg",
    "gif": "palette.gif",
    "bmp": "photo.bmp",
    "tiff": "photo.tif",
    "tiff_deflate": "deflate.tiff",
    "webp_lossless": "lossless.webp",
    "ppm": "photo.ppm",
    "gray_png": "gray.png",
    "la_png": "gray_alpha.png",
    "exif_rotated_png": "rotated.png",
    **{f"exif_orientation_{o}_jpeg": f"orientation{o}.jpg" for o in (2, 3, 4, 5, 7, 8)},
}
INVALID = {
    "empty": "empty.png",
    "text_as_png": "notes.png",
    "truncated_jpeg": "truncated.jpg",
    "bomb_header": "bomb.png",
}
#: Damage only a strict decoder reports (Pillow decodes each of these silently).
DAMAGED = {
    "corrupt_jpeg_data": "overwritten.jpg",
    "png_bad_crc": "badcrc.png",
    "png_no_iend": "noiend.png",
}


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (JPEG-friendly, non-flat)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize((width, height), Image.BICUBIC)
    noise = rng.integers(-12, 13, (height, width, 3))
    return np.clip(np.asarray(big).astype(int) + noise, 0, 255).astype(np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature + IHDR claiming a huge size, with a tiny IDAT: a decompression-bomb header."""
    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(
        b"IEND", b""
    )


def zoo_bytes(seed: int = 0) -> dict[str, bytes]:
    """All zoo images as encoded bytes, keyed by case name."""
    rgb = textured(67, 91, seed)
    out: dict[str, bytes] = {}
    out["rgb_png"] = encode(Image.fromarray(rgb), "PNG")
    cmyk = Image.fromarray(rgb).convert("CMYK")
    out["cmyk_jpeg"] = encode(cmyk, "JPEG", quality=90)
    gray16 = (textured(50, 61, seed + 1)[..., 0].astype(np.uint16) * 257 + 91).astype(np.uint16)
    out["gray16_png"] = encode(Image.fromarray(gray16), "PNG")
    rgb16 = textured(45, 53, seed + 2).astype(np.uint16) * 256 + 200
    out["rgb16_png"] = _png16_rgb(rgb16)
    out["palette_png"] = encode(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=60), "PNG")
    rgba = np.dstack([rgb, textured(67, 91, seed + 3)[..., :1]])
    out["rgba_png"] = encode(Image.fromarray(rgba, "RGBA"), "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out["exif_rotated_jpeg"] = encode(Image.fromarray(textured(40, 72, seed + 4)), "JPEG", quality=85, exif=exif)
    out["gray_jpeg"] = encode(Image.fromarray(rgb[..., 1]), "JPEG", quality=80)
    out["webp"] = encode(Image.fromarray(rgb), "WEBP", quality=80)
    out["tiny_1px"] = encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG")
    out["flat_png"] = encode(Image.new("RGB", (64, 64), (128, 128, 128)), "PNG")
    out["empty"] = b""
    out["text_as_png"] = b"this is not an image, just some notes\n"
    full = encode(Image.fromarray(textured(96, 96, seed + 5)), "JPEG", quality=90)
    out["truncated_jpeg"] = full[: len(full) // 2]
    out["bomb_header"] = _png_header_only(60000, 60000)
    out.update(_more_valid(rgb, seed))
    out.update(damaged(out["rgb_png"], full))
    return out


def _more_valid(rgb: np.ndarray, seed: int) -> dict[str, bytes]:
    """Other encoders, layouts and EXIF orientations that must read exactly as ``imread`` reads them."""
    im = Image.fromarray(rgb)
    out = {
        "progressive_jpeg": encode(im, "JPEG", quality=85, progressive=True),
        "jpeg_444": encode(im, "JPEG", quality=85, subsampling=0),
        "jpeg_422": encode(im, "JPEG", quality=85, subsampling=1),
        "restart_jpeg": encode(im, "JPEG", quality=85, restart_marker_rows=1),
        "gif": encode(im.convert("P", palette=Image.ADAPTIVE, colors=50), "GIF"),
        "bmp": encode(im, "BMP"),
        "tiff": encode(im, "TIFF"),
        "tiff_deflate": encode(im, "TIFF", compression="tiff_deflate"),
        "webp_lossless": encode(im, "WEBP", lossless=True),
        "ppm": encode(im, "PPM"),
        "gray_png": encode(Image.fromarray(rgb[..., 0]), "PNG"),
        "la_png": encode(im.convert("LA"), "PNG"),
    }
    for orientation in (2, 3, 4, 5, 7, 8):
        exif = Image.Exif()
        exif[0x0112] = orientation
        image = Image.fromarray(textured(40, 72, seed + 10 + orientation))
        out[f"exif_orientation_{orientation}_jpeg"] = encode(image, "JPEG", quality=85, exif=exif)
    exif = Image.Exif()
    exif[0x0112] = 6
    out["exif_rotated_png"] = encode(Image.fromarray(textured(40, 72, seed + 20)), "PNG", exif=exif)
    return out


def entropy_segment(jpeg: bytes) -> tuple[int, int]:
    """Start and end offsets of the entropy-coded data of a single-scan JPEG (after SOS, before EOI)."""
    sos = jpeg.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(jpeg[sos + 2 : sos + 4], "big"), jpeg.rindex(b"\xff\xd9")


def damaged(png: bytes, jpeg: bytes) -> dict[str, bytes]:
    """One damaged file per class that decoders must report (more in tests/test_decode_strict.py)."""
    start, end = entropy_segment(jpeg)
    mid = (start + end) // 2
    idat = png.index(b"IDAT")
    bad_crc = bytearray(png)
    bad_crc[idat + 4 + int.from_bytes(png[idat - 4 : idat], "big")] ^= 0x01  # first byte of IDAT's CRC
    return {
        # 8 entropy bytes overwritten: libjpeg warns "Corrupt JPEG data: bad Huffman code"; Pillow is silent
        "corrupt_jpeg_data": jpeg[:mid] + b"\xff\x00" * 4 + jpeg[mid + 8 :],
        "png_bad_crc": bytes(bad_crc),
        "png_no_iend": png[:-12],
    }


def _png16_rgb(arr: np.ndarray) -> bytes:
    """Encode an HxWx3 uint16 array as a 16-bit RGB PNG (Pillow cannot write this mode)."""
    height, width, _ = arr.shape
    raw = b"".join(b"\0" + arr[r].astype(">u2").tobytes() for r in range(height))
    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write_zoo(folder: str | Path, seed: int = 0, extended: bool = False) -> dict[str, Path]:
    """Write the zoo (VALID and INVALID; with ``extended`` also MORE_VALID and DAMAGED) into ``folder``.

    Returns case name -> path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = {**VALID, **INVALID, **(MORE_VALID | DAMAGED if extended else {})}
    paths = {}
    for case, data in zoo_bytes(seed).items():
        if case not in names:
            continue
        path = folder / names[case]
        path.write_bytes(data)
        paths[case] = path
    return paths
