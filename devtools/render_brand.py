"""Render the integration's brand icon (`custom_components/midasheng/brand/`).

Home Assistant 2026.3+ serves a custom integration's own `brand/icon.png` (256x256) and
`icon@2x.png` (512x512); HACS accepts them instead of an entry in the brands repository.
The mark is drawn here from geometry, so it can be regenerated and reviewed as code: an
audio level meter of seven rounded bars on a transparent background, anti-aliased by
supersampling, written as PNG with the standard library.

    .venv-svc/bin/python -m devtools.render_brand
"""

from __future__ import annotations

from pathlib import Path
import struct
import zlib

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BRAND = ROOT / "custom_components" / "midasheng" / "brand"
# Bar heights (fraction of the canvas) and the two colours of the gradient (RGB).
HEIGHTS = (0.28, 0.52, 0.78, 0.92, 0.70, 0.46, 0.24)
TOP = np.array([255, 105, 0], dtype=np.float64)  # orange
BOTTOM = np.array([230, 60, 20], dtype=np.float64)
SUPERSAMPLE = 4


def render(size: int) -> np.ndarray:
    """RGBA pixels (uint8) of the icon at `size` x `size`."""
    n = size * SUPERSAMPLE
    y, x = np.mgrid[0:n, 0:n].astype(np.float64) / n
    bars = len(HEIGHTS)
    margin = 0.06
    pitch = (1 - 2 * margin) / bars
    width = pitch * 0.62
    radius = width / 2
    coverage = np.zeros((n, n))
    for i, height in enumerate(HEIGHTS):
        cx = margin + pitch * (i + 0.5)
        top, bottom = 0.5 - height / 2 + radius, 0.5 + height / 2 - radius
        # A vertical capsule: distance to the segment from (cx, top) to (cx, bottom).
        dy = np.clip(y, top, bottom) - y
        dist = np.hypot(x - cx, dy)
        coverage = np.maximum(coverage, (dist <= radius).astype(np.float64))
    shade = y[..., None] * BOTTOM + (1 - y[..., None]) * TOP
    # Average each SUPERSAMPLE x SUPERSAMPLE block: anti-aliased edges.
    alpha = coverage.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    rgb = shade.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, 3).mean(axis=(1, 3))
    out = np.zeros((size, size, 4), dtype=np.uint8)
    out[..., :3] = np.round(rgb).astype(np.uint8)
    out[..., 3] = np.round(alpha * 255).astype(np.uint8)
    return out


def png_bytes(rgba: np.ndarray) -> bytes:
    """A PNG file of RGBA pixels (8 bits per channel, no filtering, best compression)."""
    height, width, _ = rgba.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + rgba[row].tobytes() for row in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def main() -> None:
    """Write icon.png and icon@2x.png."""
    BRAND.mkdir(parents=True, exist_ok=True)
    for name, size in (("icon.png", 256), ("icon@2x.png", 512)):
        (BRAND / name).write_bytes(png_bytes(render(size)))
        print(f"wrote {BRAND.relative_to(ROOT) / name} ({size}x{size})")


if __name__ == "__main__":
    main()
