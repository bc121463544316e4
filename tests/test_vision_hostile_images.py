"""Image files that must not exhaust memory or hang `chipctl count` (issue 17): each is refused
with a message (exit 2), and the good files beside them are still counted. All generated here.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from chipctl.vision import imageio
from chipctl.vision.count_cli import count_command
from chipctl.vision.imageio import MAX_PIXELS, ImageError, read_pages


def tiff_declaring(width: int, height: int, strip: bytes, compression: int = 8) -> bytes:
    """A baseline little-endian grey 8-bit TIFF whose tags declare `width` x `height` pixels in
    one strip holding `strip` (zlib-compressed when compression is 8)."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, compression),
               (262, 3, 1), (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, len(strip))]
    ifd_at = 8
    data_at = ifd_at + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_at) + struct.pack("<H", len(entries)))
    for tag, kind, value in entries:
        value = data_at if tag == 273 else value
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return bytes(out + struct.pack("<I", 0) + strip)


def zlib_of_zeros(size: int) -> bytes:
    packer = zlib.compressobj(9)
    chunk = b"\x00" * (1 << 24)
    out = [packer.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join(out) + packer.compress(b"\x00" * (size % len(chunk))) + packer.flush()


def test_the_helper_writes_a_real_tiff(tmp_path: Path) -> None:
    pixels = np.arange(32 * 16, dtype=np.uint8).reshape(16, 32)
    path = tmp_path / "ok.tif"
    path.write_bytes(tiff_declaring(32, 16, zlib.compress(pixels.tobytes())))
    assert np.array_equal(read_pages(path)[0].frame, pixels)


def test_zlib_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    """Issue 17: a 1.8 MB zlib TIFF took 9 GB in `chipctl count`. Here 256 MB of zeros
    compress to a quarter of a megabyte; the pixels the tags declare are refused unread."""
    side = 16384  # 256 Mpx, over MAX_PIXELS
    assert side * side > MAX_PIXELS
    path = tmp_path / "bomb.tif"
    path.write_bytes(tiff_declaring(side, side, zlib_of_zeros(side * side)))
    assert path.stat().st_size < 400_000
    with pytest.raises(ImageError, match="declares 16384 x 16384 pixels"):
        read_pages(path)


def test_pages_that_together_decode_too_large_are_refused(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imageio, "MAX_DECODED_BYTES", 1 << 20)  # 1 MiB, for a small file
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((3, 512, 512), np.uint16), compression="zlib",
                     photometric="minisblack")  # 1.5 MiB decoded
    with pytest.raises(ImageError, match="GiB once decoded"):
        read_pages(path)
    monkeypatch.setattr(imageio, "MAX_DECODED_BYTES", 2 << 20)
    assert len(read_pages(path)) == 3


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_is_refused_without_hanging(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          ) -> None:
    fifo = tmp_path / "frame.tif"
    os.mkfifo(fifo)  # nobody writes: opening it for reading would block for ever
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.full((32, 32), 100, np.uint16))
    out = io.StringIO()
    code = count_command([str(fifo), str(good)], True, None, None, None, None, out)
    assert code == 2
    assert "not a regular file" in capsys.readouterr().err
    assert len(out.getvalue().splitlines()) == 1  # the good frame was still counted


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: tifffile.imwrite(p, np.zeros((1, 1), np.uint16)), "too small to count"),
        (lambda p: cv2.imwrite(str(p.with_suffix(".png")), np.zeros((1, 1), np.uint8)),
         "too small to count"),
        (lambda p: tifffile.imwrite(p, np.zeros((64, 64), bool)), "1-bit"),
        (lambda p: tifffile.imwrite(p, np.zeros((2, 2, 2, 64, 64), np.uint16)), "5-D data"),
    ],
    ids=["1x1 tiff", "1x1 png", "bool", "5-D"],
)
def test_degenerate_images_are_refused(tmp_path: Path, write, message: str) -> None:
    path = tmp_path / "x.tif"
    write(path)
    target = path if path.exists() else path.with_suffix(".png")
    with pytest.raises(ImageError, match=message):
        read_pages(target)


def test_png_header_declaring_a_huge_frame_is_refused_unread(tmp_path: Path) -> None:
    png = cv2.imencode(".png", np.zeros((16, 16), np.uint8))[1].tobytes()
    huge = png[:16] + struct.pack(">II", 100_000, 100_000) + png[24:]  # IHDR width, height
    path = tmp_path / "huge.png"
    path.write_bytes(huge)
    with pytest.raises(ImageError, match="declares 100000 x 100000 pixels"):
        read_pages(path)
