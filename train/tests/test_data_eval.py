# ICDAR reading and views, synthetic samples, the ICDAR 2015 scorer against the competition's figures for the
# public model, the int8 resume round trip, and a 3-step CPU training run that resumes.
import glob
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from checkpoint import dequantise_int8, quantise_int8
from eval_heldout import iou, score_image, totals
from icdar import list_training_images, random_view, read_gt

TRAIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = "/work/shared/data/icdar2015"
FONTS = os.path.join(TRAIN_DIR, ".carry", "fonts")


def test_gt_reader_accepts_bom_crlf_and_commas(tmp_path):
    p = tmp_path / "gt_img_1.txt"
    p.write_bytes("\ufeff1,2,3,4,5,6,7,8,Hello, world\r\n10,20,30,20,30,40,10,40,###\r\n\r\n".encode("utf-8"))
    q, dc = read_gt(str(p))
    assert q.shape == (2, 4, 2) and q[0, 0].tolist() == [1, 2] and dc.tolist() == [False, True]
    p.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="gt_img_1.txt:1"):
        read_gt(str(p))


def test_training_folder_refuses_held_out_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "gt").mkdir()
    (tmp_path / "images" / "img_251.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="held-out"):
        list_training_images(str(tmp_path))


def test_random_view_moves_boxes_with_the_pixels():
    img = np.zeros((720, 1280, 3), np.uint8)
    q = np.array([[[500, 300], [700, 320], [690, 380], [495, 360]]], np.float32)
    cv2.fillPoly(img, [q[0].astype(np.int32)], (255, 255, 255))
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(8):
        out, q2, dc = random_view(img, q, np.array([False]), rng, 512, text_centred=1.0)
        if len(q2) and not dc[0]:
            m = np.zeros((512, 512), np.uint8)
            cv2.fillPoly(m, [np.round(q2[0]).astype(np.int32)], 1)
            inner = cv2.erode(m, np.ones((5, 5), np.uint8))
            outer = cv2.dilate(m, np.ones((5, 5), np.uint8))
            assert out[inner > 0].mean() > 240  # the border colour is random: only ask that no white is left
            assert (out[outer == 0].min(1) < 250).mean() > 0.999
            checked += 1
    assert checked >= 3


@pytest.mark.skipif(not glob.glob(os.path.join(FONTS, "*.ttf")), reason="run train/pack_fonts.sh first")
def test_synth_samples_have_quads_inside_the_image():
    from synth import SynthText
    g = SynthText(FONTS, None, 256)
    rng = np.random.default_rng(0)
    n = 0
    for _ in range(4):
        img, q, dc = g.sample(rng)
        assert img.shape == (256, 256, 3) and img.dtype == np.uint8
        assert q.shape[1:] == (4, 2) and len(q) == len(dc)
        assert (q > -2).all() and (q < 258).all()
        area2 = np.sum(q[:, :, 0] * np.roll(q[:, :, 1], -1, 1) - np.roll(q[:, :, 0], -1, 1) * q[:, :, 1], 1)
        assert (area2 > 0).all()  # clockwise in image coordinates
        n += len(q)
    assert n > 0


def test_iou_of_overlapping_squares():
    a = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert abs(iou(a, a + [5, 0]) - 50 / 150) < 1e-9
    assert iou(a, a + [20, 0]) == 0.0


@pytest.mark.skipif(not os.path.isdir(f"{DATA}/reference/argman-east-resnet50"), reason="no ICDAR data")
def test_scorer_reproduces_competition_figures_for_public_model():
    counts = []
    for n in range(1, 501):
        gq, gdc = read_gt(f"{DATA}/test/gt/gt_img_{n}.txt")
        p = f"{DATA}/reference/argman-east-resnet50/res_img_{n}.txt"
        dets = []
        if os.path.exists(p):
            dets = [np.array(line.split(",")[:8], int).reshape(4, 2) for line in open(p) if line.strip()]
        m, g, d = score_image(gq, gdc, dets)
        counts.append({"image": n, "matched": m, "care_gt": g, "care_det": d})
    t = totals(counts)
    assert abs(t["precision"] - 0.8445732349841939) < 1e-12
    assert abs(t["recall"] - 0.7717862301396244) < 1e-12
    assert abs(t["hmean"] - 0.8065408805031448) < 1e-12


def test_int8_resume_round_trip_error_is_bounded():
    torch.manual_seed(0)
    w = torch.randn(3, 3, 70, 33) * 0.05  # RSCK, rows not a multiple of the group
    b = torch.randn(33)
    q, shapes = quantise_int8({"w": w, "b": b})
    back = dequantise_int8(q, shapes)
    assert torch.equal(back["b"], b)
    rows = w.reshape(-1, 33).t()
    err = (back["w"] - w).reshape(-1, 33).t().abs()
    assert float((err / rows.abs().amax(1, keepdim=True)).max()) < 1.0 / 127  # <= half a step of max/127
    assert float(err.max()) > 0  # really quantised


@pytest.mark.skipif(not glob.glob(os.path.join(FONTS, "*.ttf")), reason="run train/pack_fonts.sh first")
def test_three_training_steps_then_resume(tmp_path):
    train = os.path.join(TRAIN_DIR, "train.py")
    common = ["--fonts", FONTS, "--icdar", str(tmp_path / "none"), "--size", "128", "--batch", "2",
              "--workers", "0", "--log-every", "1", "--device", "cpu"]
    r = subprocess.run([sys.executable, train, "--phase", "synth", "--out", str(tmp_path / "a"),
                        "--max-steps", "3"] + common, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    log = [json.loads(x) for x in open(tmp_path / "a" / "train_log.jsonl")]
    assert [x["step"] for x in log] == [1, 2, 3] and all(np.isfinite(x["loss"]) for x in log)
    parts = sorted(glob.glob(str(tmp_path / "a" / "east_ema*.safetensors")))
    assert len(parts) == 4 and all(os.path.getsize(p) <= 16 * 2**20 for p in parts)
    r = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "checkpoint.py"), "make-resume", *parts,
                        "--out", str(tmp_path / "resume.safetensors")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.path.getsize(tmp_path / "resume.safetensors") < 25 * 2**20
    r = subprocess.run([sys.executable, train, "--phase", "synth", "--out", str(tmp_path / "b"), "--max-steps",
                        "1", "--resume", str(tmp_path / "resume.safetensors")] + common,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    state = json.load(open(tmp_path / "b" / "state.json"))
    assert state["step"] == 4 and state["runs"] == 2
