"""count_command: TIFF (8/16-bit, multi-page) and PNG, JSON lines, invalid input -> 2."""

from __future__ import annotations

import argparse
import io
import json

import cv2
import numpy as np
import pytest
import tifffile
from _vision_helpers import metrics, small_frame

from chipctl.vision.count_cli import add_count_arguments, count_command, main


@pytest.fixture(scope="module")
def frame():
    return small_frame(7.0, n=40, size=200, seed=41)


def _run(paths, json_out=True, **kw):
    out = io.StringIO()
    args = {"psf_sigma": None, "offset": None, "e_per_adu": None, "read_noise": None} | kw
    code = count_command([str(p) for p in paths], json_out, out=out, **args)
    return code, [json.loads(line) for line in out.getvalue().splitlines()] if json_out else (
        out.getvalue())


def test_json_for_16bit_tiff_matches_truth(tmp_path, frame):
    p = tmp_path / "f16.tif"
    tifffile.imwrite(p, frame.image)
    code, objs = _run([p], offset=100, e_per_adu=0.46, read_noise=1.6)
    assert code == 0 and len(objs) == 1
    obj = objs[0]
    assert list(obj) == ["image", "count", "estimated_count", "estimated_count_sd", "crowding",
                         "defocused", "spots"]  # the contract's keys, estimates beside them
    assert obj["image"] == str(p) and obj["count"] == len(obj["spots"])
    xy = np.array([[s["x"], s["y"]] for s in obj["spots"]])
    assert metrics.score(frame.xy, xy, max_dist=1.0).f1 > 0.9


def test_8bit_tiff_png_and_multipage(tmp_path, frame):
    img8 = np.clip((frame.image.astype(float) - 100) / 2, 0, 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "f8.tif", img8)
    cv2.imwrite(str(tmp_path / "f8.png"), img8)
    cv2.imwrite(str(tmp_path / "f16.png"), frame.image)
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([frame.image, frame.image[::-1],
                                                       np.full_like(frame.image, 100)]),
                     photometric="minisblack")
    names = ["f8.tif", "f8.png", "f16.png", "stack.tif"]
    code, objs = _run([tmp_path / n for n in names])
    assert code == 0 and len(objs) == 6
    assert [o.get("page") for o in objs] == [None, None, None, 0, 1, 2]
    single = [o["count"] for o in objs[:3]]
    assert all(abs(c - 40) <= 3 for c in single)
    assert objs[3]["count"] == objs[4]["count"] and objs[5]["count"] == 0
    assert all(set(s) == {"x", "y", "amplitude", "snr", "photons", "crlb_x", "crlb_y",
                          "multiplicity"} for s in objs[0]["spots"])
    assert all(0 < s["crlb_x"] < 0.5 and s["multiplicity"] in (1, 2) for s in objs[0]["spots"])
    assert objs[0]["estimated_count"] == pytest.approx(objs[0]["count"], abs=5)
    assert 0 <= objs[0]["crowding"] < 0.2 and objs[0]["defocused"] is False
    assert objs[5]["count"] == 0 and objs[5]["crowding"] == 0  # blank page: nothing is NaN


def test_text_output(tmp_path, frame):
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, frame.image)
    code, text = _run([p], json_out=False)
    assert code == 0 and text.startswith(f"{p}: ") and text.strip().endswith("vesicles")


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("notes.txt", b"hello, not an image", "not a readable image"),
        ("fake.png", b"\x00\x01garbage", "not a readable image"),
        ("fake.tif", b"II*\x00garbage-garbage", "not a readable TIFF"),
        ("missing.tif", None, "no such file"),
    ],
)
def test_bad_files_exit_2_with_message(tmp_path, capsys, name, content, needle):
    p = tmp_path / name
    if content is not None:
        p.write_bytes(content)
    code, objs = _run([p])
    err = capsys.readouterr().err
    assert code == 2 and objs == []
    assert str(p) in err and needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("array", "needle"),
    [
        (np.zeros((16, 16), np.complex64), "unsupported pixel type"),
        (np.full((16, 16), np.nan, np.float32), "NaN"),
        (np.dstack([np.zeros((16, 16), np.uint8)] * 2 + [np.ones((16, 16), np.uint8)]),
         "colour image"),
    ],
)
def test_bad_pixel_data_exits_2(tmp_path, capsys, array, needle):
    p = tmp_path / "bad.tif"
    tifffile.imwrite(p, array, photometric="rgb" if array.ndim == 3 else None)
    code, _ = _run([p])
    err = capsys.readouterr().err
    assert code == 2 and str(p) in err and needle in err


def test_colour_png_rejected_but_good_files_still_counted(tmp_path, capsys, frame):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    tifffile.imwrite(tmp_path / "ok.tif", frame.image)
    code, objs = _run([tmp_path / "rgb.png", tmp_path / "ok.tif"])
    assert code == 2 and len(objs) == 1 and "colour image" in capsys.readouterr().err


def test_argument_parsing_and_invalid_values(tmp_path, capsys, frame):
    parser = argparse.ArgumentParser()
    add_count_arguments(parser)
    a = parser.parse_args(["x.tif", "y.png", "--json", "--psf-sigma", "0.7", "--offset", "99",
                           "--e-per-adu", "0.5", "--read-noise", "1.2"])
    assert (a.images, a.json, a.psf_sigma, a.offset, a.e_per_adu, a.read_noise) == (
        ["x.tif", "y.png"], True, 0.7, 99.0, 0.5, 1.2)
    p = tmp_path / "ok.tif"
    tifffile.imwrite(p, frame.image)
    assert main([str(p), "--psf-sigma", "-1"]) == 2
    assert "--psf-sigma" in capsys.readouterr().err
