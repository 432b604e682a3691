"""PSNR and SSIM by the convention of the evaluation scripts behind the published SR tables.

The convention (EDSR/RCAN's MATLAB ``Evaluate_PSNR_SSIM.m``, BasicSR's ``calculate_psnr`` /
``calculate_ssim`` with ``test_y_channel=True``), which is this module's default:

* colour images: Y of MATLAB ``rgb2ycbcr`` computed on [0, 1] doubles, ``16 + 65.481 R + 128.553 G
  + 24.966 B``, i.e. on the 0..255 scale WITHOUT rounding to integers; gray (HxW) images are
  evaluated on their gray channel as they are;
* ``scale`` pixels shaved from every border;
* PSNR on the 0..255 range; SSIM as Wang et al.'s ``ssim_index``: 11x11 Gaussian window, sigma 1.5,
  K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering, mean of the SSIM map.

``round_y=True`` gives the other variant in circulation: Y rounded to integers (half away from
zero), as MATLAB's ``rgb2ycbcr`` returns it for ``uint8`` input. It moves Set5 x2 bicubic PSNR by
about 0.03 dB and SSIM by about 0.001, which is why the default does not round.

Images are NumPy HxWx3 (or HxW gray) arrays, ``uint8`` or float in [0, 1], or torch tensors 3xHxW
float in [0, 1]. ``uint8`` and float inputs of the same picture give the same values.

Example:
    >>> import numpy as np
    >>> hr = np.full((16, 16), 100, np.uint8); sr = hr.copy(); sr[8, 8] = 108  # gray: 1 of 8x8 off by 8
    >>> round(psnr(sr, hr, scale=4), 3)  # MSE 64 / 64 = 1 -> 20 log10(255)
    48.131
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import correlate1d

from ..errors import DiversegError

#: MATLAB ``rgb2ycbcr`` first row (R, G, B weights on [0, 1] inputs) and offset, in 0..255 units.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0

#: Wang et al. constants for 8-bit data.
SSIM_K1, SSIM_K2, SSIM_L = 0.01, 0.03, 255.0
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5


def _to_array(image: Any) -> np.ndarray:
    """numpy or torch image -> numpy array HxWxC (or HxW), keeping uint8 as uint8."""
    if not isinstance(image, np.ndarray):
        if type(image).__module__.startswith("torch"):
            arr = image.detach().cpu().numpy()
            if arr.ndim != 3:
                raise DiversegError(f"tensors must be CxHxW, got shape {arr.shape}")
            return np.moveaxis(arr, 0, -1)
        raise DiversegError(f"expected a numpy array or torch tensor, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise DiversegError(f"expected HxW or HxWxC, got shape {image.shape}")
    return image


def rgb_to_y(image: Any, round_y: bool = False) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` on the 0..255 scale, as float64 (unrounded unless ``round_y``).

    ``uint8`` samples are taken as ``value / 255`` in [0, 1], float samples as they are.

    Example:
        >>> import numpy as np
        >>> rgb = np.array([[[255, 255, 255], [100, 100, 100]]], np.uint8)
        >>> rgb_to_y(rgb).round(4).tolist(), rgb_to_y(rgb, round_y=True).tolist()
        ([[235.0, 101.8824]], [[235.0, 102.0]])
    """
    arr = _to_array(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DiversegError(f"rgb_to_y needs HxWx3 RGB, got shape {arr.shape}")
    unit = 1.0 / 255.0 if arr.dtype == np.uint8 else 1.0
    y = Y_OFFSET + (arr.astype(np.float64) * unit) @ np.asarray(Y_WEIGHTS, np.float64)
    return np.floor(np.clip(y, 0.0, 255.0) + 0.5) if round_y else y


def _prepare(sr: Any, hr: Any, scale: int, y_channel: bool, round_y: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = _to_array(sr), _to_array(hr)
    if a.shape != b.shape:
        raise DiversegError(f"sr and hr shapes differ: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:
        raise DiversegError(f"sr and hr dtypes differ: {a.dtype} vs {b.dtype} (use both uint8 or both float)")
    if y_channel and a.ndim == 3:
        a, b = rgb_to_y(a, round_y), rgb_to_y(b, round_y)
    else:
        factor = 1.0 if a.dtype == np.uint8 else 255.0
        a, b = a.astype(np.float64) * factor, b.astype(np.float64) * factor
    if scale < 0:
        raise DiversegError(f"scale (border crop) must be >= 0, got {scale}")
    shape = b.shape
    if scale:
        a, b = a[scale:-scale, scale:-scale], b[scale:-scale, scale:-scale]
    if a.size == 0:
        raise DiversegError(f"nothing left after cropping {scale} pixels from each border of {shape}")
    return a, b


def psnr(sr: Any, hr: Any, scale: int, y_channel: bool = True, round_y: bool = False) -> float:
    """PSNR in dB on 0..255 data after cropping ``scale`` border pixels (``inf`` when identical).

    Colour images are compared on Y (unrounded unless ``round_y``), gray ones on their gray channel;
    ``y_channel=False`` compares all RGB samples.

    Example:
        >>> import numpy as np
        >>> a = np.zeros((10, 10), np.uint8); b = a.copy(); b[5, 5] = 255  # MSE = 255^2 / 36
        >>> round(psnr(b, a, scale=2), 4)  # 10 log10(36)
        15.563
    """
    a, b = _prepare(sr, hr, scale, y_channel, round_y)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian whose outer product is MATLAB's ``fspecial('gaussian', 11, 1.5)``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    g = gaussian_window()
    half = SSIM_WINDOW // 2

    def blur(x: np.ndarray) -> np.ndarray:  # separable Gaussian, 'valid' part only
        y = correlate1d(correlate1d(x, g, axis=0, mode="constant"), g, axis=1, mode="constant")
        return y[half:-half, half:-half]

    c1, c2 = (SSIM_K1 * SSIM_L) ** 2, (SSIM_K2 * SSIM_L) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim(sr: Any, hr: Any, scale: int, y_channel: bool = True, round_y: bool = False) -> float:
    """SSIM (Wang et al.) on 0..255 data after cropping ``scale`` border pixels.

    Colour images are compared on Y (unrounded unless ``round_y``), gray ones on their gray channel;
    with ``y_channel=False`` an RGB image's SSIM is the mean over its three channels.

    Example:
        >>> import numpy as np
        >>> img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>> ssim(img, img, scale=4)
        1.0
    """
    a, b = _prepare(sr, hr, scale, y_channel, round_y)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise DiversegError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping, got {a.shape}")
    if a.ndim == 2:
        return float(_ssim_map(a, b).mean())
    return float(np.mean([_ssim_map(a[..., c], b[..., c]).mean() for c in range(a.shape[2])]))
