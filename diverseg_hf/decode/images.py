"""The one decode path of diverseg_hf: anything image-like -> RGB or gray uint8, as OpenCV reads it.

The paper's released scorer reads files with ``cv2.imread(path)`` (8-bit BGR, alpha dropped, 16-bit
samples reduced to 8 bits, palette and gray expanded, EXIF orientation applied) and converts with
``cv2.COLOR_BGR2GRAY``. This module reproduces those semantics bit for bit, but strictly: a file whose
decoder reports damage is an :class:`~diverseg_hf.errors.ImageError`, never a half-decoded image.

- JPEG goes through libjpeg-turbo in strict mode (:mod:`diverseg_hf.decode.jpeg`): libjpeg's "Corrupt JPEG
  data" and "premature end" warnings are errors.
- 8-bit, non-interlaced PNGs (gray, RGB, with or without alpha) go through zlib and a compiled
  un-filter (:mod:`diverseg_hf.decode.png`), after the container checks (every chunk's CRC, IEND).
- Everything else goes through Pillow with truncated images refused, after the container checks of
  :mod:`diverseg_hf.decode.containers` (PNG chunk CRCs and IEND, GIF trailer, RIFF size); the other
  PNG layouts' zlib stream is checked first by the same rule as the 8-bit path (complete, Adler-32).
- Images above ``max_pixels`` (default :data:`MAX_PIXELS`, 89,478,485) are refused from their header,
  before any pixel is decoded; the message quotes the limit applied.

docs/decoding.md lists the rules and the memory each decode needs.

Example:
    >>> import numpy as np
    >>> rgb = np.zeros((8, 8, 3), np.uint8); rgb[..., 0] = 255
    >>> int(rgb_to_gray(rgb)[0, 0])  # 255 * 9798 / 2**15, rounded
    76
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import ImageError
from .containers import PNG_MAGIC, check_container
from .folders import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from .folders import MAX_FILE_BYTES, read_file, walk_images
from .jpeg import JPEG_MAGIC, cmyk_to_rgb, decode_jpeg, jpeg_size
from .png import check_image_data, decode_png, without_text_chunks

ImageLike = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray

#: Default pixel limit (width * height): the value of Pillow's decompression-bomb warning threshold.
MAX_PIXELS: int = 89_478_485

# OpenCV's BGR2GRAY for 8-bit images: 15-bit fixed point with rounding (R, G, B weights).
_GRAY_WEIGHTS = (9798, 19235, 3735)
_GRAY_SHIFT = 15


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: size and container format (``"PNG"``, ``"JPEG"``, ...)."""

    width: int
    height: int
    format: str


def read_bytes(image: str | os.PathLike | bytes | bytearray | memoryview, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Return the encoded bytes of a path or bytes-like object, untouched.

    A path is read by the one file rule (:func:`~diverseg_hf.decode.folders.read_file`): only a regular
    file of at most ``max_bytes`` (checked before reading); anything else is an :class:`ImageError`.

    Example:
        >>> read_bytes("/dev/zero")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ImageError: unsupported: a character device, not a regular file (not opened)
    """
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image)
    return read_file(image, max_bytes)


def too_large(width: int, height: int, max_pixels: int) -> ImageError:
    """The one error for images over the pixel limit; it quotes the limit that was applied.

    Example:
        >>> too_large(30000, 20000, MAX_PIXELS).reason
        'too-large: 30000x20000 = 600,000,000 px exceeds the pixel limit of 89,478,485 px'
    """
    return ImageError(
        "too-large", f"{width}x{height} = {width * height:,} px exceeds the pixel limit of {max_pixels:,} px"
    )


def _bomb_error(exc: Image.DecompressionBombError, max_pixels: int) -> ImageError:
    """Pillow refuses headers above twice its own threshold before we see the size: say which limit bit."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    pixels = int(found.group(1)) if found else None
    if pixels is not None and pixels > max_pixels:
        return ImageError("too-large", f"{pixels:,} px exceeds the pixel limit of {max_pixels:,} px")
    return ImageError("too-large", f"over Pillow's decompression-bomb limit (raise PIL.Image.MAX_IMAGE_PIXELS): {exc}")


def _pillow_open(data: bytes, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise _bomb_error(exc, max_pixels) from exc
        except UnidentifiedImageError as exc:
            raise ImageError("corrupt", "not a recognised image format") from exc
        except Exception as exc:  # Pillow raises many types on malformed headers
            raise ImageError("corrupt", f"unreadable header ({type(exc).__name__}: {exc})") from exc


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open encoded bytes lazily (header only) and enforce the pixel limit.

    Pillow refuses PNG text chunks above its ``MAX_TEXT_CHUNK`` (1 MB inflated); text never changes a
    pixel and OpenCV reads such files, so a PNG Pillow refuses is opened again without its text chunks.
    """
    if not data:
        raise ImageError("empty", "zero-byte file")
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageError("unsupported", "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: damage would go unseen")
    try:
        im = _pillow_open(data, max_pixels)
    except ImageError:
        stripped = without_text_chunks(data) if data.startswith(PNG_MAGIC) else data
        if stripped == data:
            raise
        im = _pillow_open(stripped, max_pixels)
    width, height = im.size
    if width * height > max_pixels:
        raise too_large(width, height, max_pixels)
    if width == 0 or height == 0:
        raise ImageError("corrupt", f"zero-sized image {width}x{height}")
    return im


def probe(image: ImageLike, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Read width, height and format from the header without decoding pixels.

    Example:
        >>> import io
        >>> buf = io.BytesIO(); Image.new("RGB", (5, 3)).save(buf, "PNG")
        >>> probe(buf.getvalue())
        ImageInfo(width=5, height=3, format='PNG')
    """
    if isinstance(image, np.ndarray):
        return ImageInfo(image.shape[1], image.shape[0], "array")
    if isinstance(image, Image.Image):
        return ImageInfo(image.width, image.height, image.format or "PIL")
    data = read_bytes(image)
    if data[:3] == JPEG_MAGIC:  # libjpeg's header, as decode reads it (Pillow refuses some valid ones)
        height, width, _ = _jpeg_header(data, max_pixels)
        return ImageInfo(width, height, "JPEG")
    im = _open(data, max_pixels)
    return ImageInfo(im.width, im.height, im.format or "unknown")


def _load(im: Image.Image) -> Image.Image:
    """Decode all pixels, turning truncation and decoder failures into ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im.load()
    except OSError as exc:
        text = str(exc)
        kind = "truncated" if "truncat" in text.lower() else "corrupt"
        raise ImageError(kind, text) from exc
    except Exception as exc:  # decoders raise ValueError, SyntaxError, struct.error, ...
        raise ImageError("corrupt", f"{type(exc).__name__}: {exc}") from exc
    return im


def _sixteen_bit_to_uint8(im: Image.Image) -> np.ndarray:
    """16-bit and 32-bit gray modes -> uint8 the way OpenCV reduces 16-bit samples (high byte)."""
    arr = np.asarray(im)
    if im.mode in ("I", "F"):
        # 32-bit integer or float gray (e.g. 16-bit PNG opened as "I"): clip into the 16-bit range.
        arr = np.clip(arr, 0, 65535).astype(np.uint16)
    return (arr.astype(np.uint16) >> 8).astype(np.uint8)


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """A decoded PIL image -> HxWx3 uint8 RGB with OpenCV ``IMREAD_COLOR`` semantics.

    EXIF orientation is applied; alpha is dropped (not composited); palette, bilevel and gray images
    are expanded; 16-bit samples keep their high byte; CMYK is converted like OpenCV's JPEG reader.
    """
    # libjpeg hands Adobe CMYK JPEGs to OpenCV with the ink inverted; Pillow un-inverts ("CMYK;I").
    adobe_inverted = im.mode == "CMYK" and any(tile.args and tile.args[0] == "CMYK;I" for tile in im.tile)
    im = _load(im)
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block is ignored, as OpenCV does
        orientation = 1
    if orientation not in (None, 1):
        im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = _sixteen_bit_to_uint8(im)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "CMYK":
        cmyk = np.asarray(im)
        return cmyk_to_rgb(255 - cmyk if adobe_inverted else cmyk)
    if mode in ("RGBA", "RGBa", "RGBX", "LA", "La", "PA", "P", "L", "1", "YCbCr", "HSV", "LAB"):
        return np.asarray(im.convert("RGB"))
    raise ImageError("unsupported", f"image mode {mode}")


def open_checked(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Non-JPEG bytes opened lazily (header only), the pixel limit applied and container damage refused
    (:func:`~diverseg_hf.decode.containers.check_container`): what every non-JPEG decode checks before its pixels.

    Example:
        >>> buf = io.BytesIO(); Image.new("RGB", (4, 2)).save(buf, "PNG")
        >>> open_checked(buf.getvalue()).size
        (4, 2)
    """
    im = _open(data, max_pixels)
    check_container(data)
    return im


def _jpeg_header(data: bytes, max_pixels: int) -> tuple[int, int, str]:
    """:func:`~diverseg_hf.decode.jpeg.jpeg_size` with the pixel limit applied."""
    height, width, colorspace = jpeg_size(data)
    if width * height > max_pixels:
        raise too_large(width, height, max_pixels)
    return height, width, colorspace


def decode_bytes(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Encoded bytes -> HxWx3 uint8 RGB, possibly a non-contiguous view (EXIF orientation).

    The strict path: JPEG through libjpeg-turbo (warnings are errors), the rest through the container
    checks and Pillow. The pixel limit is applied from the header, before any pixel is decoded.
    """
    if not data:
        raise ImageError("empty", "zero-byte file")
    if data[:3] == JPEG_MAGIC:
        return decode_jpeg(data, _jpeg_header(data, max_pixels)[2])
    im = open_checked(data, max_pixels)
    if im.format == "PNG":
        rgb = decode_png(data)  # None: a palette, 16-bit or interlaced PNG, which Pillow decodes
        if rgb is not None:
            return rgb
        check_image_data(data)  # Pillow accepts a zlib stream without its final block or checksum
    return pil_to_rgb(im)


def decode_rgb(image: ImageLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a path, bytes, PIL image or array to HxWx3 uint8 RGB (OpenCV ``imread`` semantics).

    Raises :class:`~diverseg_hf.errors.ImageError` for empty, corrupt, truncated, damaged or oversized
    input (see docs/decoding.md for what counts as damage).

    Example:
        >>> import io
        >>> buf = io.BytesIO(); Image.new("L", (4, 2), 7).save(buf, "PNG")
        >>> decode_rgb(buf.getvalue()).shape
        (2, 4, 3)
    """
    _check_image_like(image)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    if isinstance(image, Image.Image):
        if image.width * image.height > max_pixels:
            raise too_large(image.width, image.height, max_pixels)
        return pil_to_rgb(image)
    return np.ascontiguousarray(decode_bytes(read_bytes(image), max_pixels))


def _check_image_like(image: object) -> None:
    """ImageError, not a TypeError later, for an input that is no image at all (None, a number, ...)."""
    if not isinstance(image, ImageLike):
        raise ImageError("unsupported", f"not an image: {type(image).__name__} (expected a path, bytes, PIL image "
                         "or uint8 array)")


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ImageError("unsupported", f"arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    if arr.ndim == 3 and arr.shape[2] == 4:
        return arr[..., :3]
    raise ImageError("unsupported", f"array shape {arr.shape}: expected HxW or HxWx3 uint8")


@numba.njit(nogil=True, cache=True)
def _gray(flat, out, wr, wg, wb, half, shift):  # pragma: no cover - compiled
    """Over interleaved RGB bytes: one output per 3 inputs (the loop vectorizes; 2-D indexing did not)."""
    for p in range(out.size):
        acc = np.int32(flat[3 * p]) * wr + np.int32(flat[3 * p + 1]) * wg + np.int32(flat[3 * p + 2]) * wb
        out[p] = (acc + half) >> shift


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> contiguous HxW uint8 gray, bit-exact with OpenCV ``cvtColor(BGR2GRAY)``.

    One compiled pass in 32-bit integers: ``(9798 R + 19235 G + 3735 B + 2**14) >> 15``. A
    non-contiguous view (an EXIF-rotated decode) is made contiguous first.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError("unsupported", f"expected HxWx3 uint8 RGB, got {rgb.dtype} {rgb.shape}")
    out = np.empty(rgb.shape[:2], np.uint8)
    weights = [np.int32(w) for w in _GRAY_WEIGHTS]
    flat = np.ascontiguousarray(rgb).reshape(-1)
    _gray(flat, out.reshape(-1), *weights, np.int32(1 << (_GRAY_SHIFT - 1)), np.int32(_GRAY_SHIFT))
    return out


def decode_gray(image: ImageLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode to HxW uint8 gray exactly as ``cvtColor(imread(path), BGR2GRAY)`` does.

    A 2-D uint8 array is taken as gray already.

    Example:
        >>> decode_gray(np.full((2, 2, 3), 200, np.uint8)).tolist()
        [[200, 200], [200, 200]]
    """
    _check_image_like(image)
    if isinstance(image, np.ndarray) and image.ndim == 2:
        if image.dtype != np.uint8:
            raise ImageError("unsupported", f"arrays must be uint8, got {image.dtype}")
        return image
    if isinstance(image, (np.ndarray, Image.Image)):
        return rgb_to_gray(decode_rgb(image, max_pixels))
    return rgb_to_gray(decode_bytes(read_bytes(image), max_pixels))


def find_image_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into a list of image files: folders by the one folder walk of ``score``.

    A folder is walked by :func:`~diverseg_hf.decode.folders.walk_images` (image suffixes in any
    case, hidden entries and link loops left out and logged, sorted like paths; special files are kept
    and refused when read); files named explicitly are kept whatever their suffix. A path that does not
    exist raises ``FileNotFoundError``.

    Example:
        >>> find_image_files(["/no/such/folder"])
        Traceback (most recent call last):
        ...
        FileNotFoundError: no such file or folder: /no/such/folder
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(path / rel for rel in walk_images(path))
        elif path.exists() or path.is_symlink():
            found.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return found
