# ICDAR 2015 training samples from img_1-img_250 only (img_251-img_500 are held out): ground-truth reader
# (BOM/CRLF tolerant, '###' = do not care) and random scale/rotation/crop to a square training image.
import os
import re

import cv2
import numpy as np

TRAIN_MAX_INDEX = 250  # the fixed split: never read a held-out image for training


def read_gt(path):
    """-> (quads [N,4,2] float32, dont_care [N] bool). Transcriptions may contain commas."""
    quads, dc = [], []
    with open(path, "r", encoding="utf-8-sig") as f:
        for ln, line in enumerate(f, 1):
            line = line.strip().lstrip("\ufeff")
            if not line:
                continue
            parts = line.split(",")
            if len(parts) < 8:
                raise ValueError(f"{path}:{ln}: expected 8 coordinates and a transcription, got '{line}'")
            try:
                xy = [float(v) for v in parts[:8]]
            except ValueError:
                raise ValueError(f"{path}:{ln}: coordinates are not numbers: '{line}'") from None
            text = ",".join(parts[8:])
            quads.append(np.array(xy, np.float32).reshape(4, 2))
            dc.append(text == "###")
    return (np.array(quads, np.float32).reshape(-1, 4, 2), np.array(dc, bool))


def image_index(name):
    m = re.match(r"img_(\d+)\.jpg$", os.path.basename(name))
    return int(m.group(1)) if m else None


def list_training_images(root):
    """(image path, gt path) for img_N.jpg with N <= 250 under root/images and root/gt."""
    img_dir, gt_dir = os.path.join(root, "images"), os.path.join(root, "gt")
    if not os.path.isdir(img_dir):
        raise FileNotFoundError(f"{img_dir}: no such folder (expected ICDAR images img_N.jpg)")
    out = []
    for name in sorted(os.listdir(img_dir), key=lambda n: image_index(n) or 0):
        idx = image_index(name)
        if idx is None:
            continue
        if idx > TRAIN_MAX_INDEX:
            raise ValueError(f"{img_dir}/{name}: held-out image (index > {TRAIN_MAX_INDEX}) in a training folder")
        gt = os.path.join(gt_dir, f"gt_img_{idx}.txt")
        if not os.path.isfile(gt):
            raise FileNotFoundError(f"{gt}: missing ground truth for {name}")
        out.append((os.path.join(img_dir, name), gt))
    if not out:
        raise FileNotFoundError(f"{img_dir}: no img_N.jpg files")
    return out


def order_clockwise(q):
    """Flip to clockwise (image coordinates) if needed, keeping the vertex order otherwise."""
    area2 = np.sum(q[:, 0] * np.roll(q[:, 1], -1) - np.roll(q[:, 0], -1) * q[:, 1])
    return q[::-1][[3, 0, 1, 2]] if area2 < 0 else q  # reversed, then start again at the old first vertex


def random_view(img, quads, dont_care, rng, size=512, scale_range=(0.5, 2.5), max_rot_deg=15.0,
                text_centred=0.7, min_visible=0.6):
    """One affine warp = scale x rotation x crop to size x size. Boxes mostly cut by the border become do not
    care (the visible part is a fragment); boxes outside are dropped."""
    h, w = img.shape[:2]
    s = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    ang = np.deg2rad(rng.uniform(-max_rot_deg, max_rot_deg)) if rng.random() < 0.5 else 0.0
    c, si = np.cos(ang) * s, np.sin(ang) * s
    A = np.array([[c, si], [-si, c]])
    if len(quads) and rng.random() < text_centred:
        centre = quads[rng.integers(len(quads))].mean(0)
        centre = centre + rng.uniform(-0.35, 0.35, 2) * size / s
    else:
        centre = np.array([rng.uniform(0, w), rng.uniform(0, h)])
    t = np.array([size / 2, size / 2]) - A @ centre
    M = np.hstack([A, t[:, None]]).astype(np.float32)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(img, M, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=tuple(int(v) for v in rng.integers(0, 256, 3)))
    if not len(quads):
        return out, quads, dont_care
    q = quads @ A.T + t
    keep, dc = [], []
    for i, qq in enumerate(q):
        area = abs(cv2.contourArea(qq.astype(np.float32)))
        clipped = np.clip(qq, 0, size)
        vis = abs(cv2.contourArea(clipped.astype(np.float32))) / max(area, 1e-6)
        if vis <= 0.02:
            continue
        keep.append(i)
        dc.append(bool(dont_care[i]) or vis < min_visible)
    return out, q[keep].astype(np.float32), np.array(dc, bool)


class IcdarSamples:
    """Random training views of the carried ICDAR images; images decoded once per worker, on first use."""

    def __init__(self, root, size=512):
        self.items = list_training_images(root)
        self.size = size
        self.cache = {}

    def load(self, i):
        if i not in self.cache:
            path, gt = self.items[i]
            img = cv2.imread(path, cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f"{path}: not a readable image")
            quads, dc = read_gt(gt)
            self.cache[i] = (cv2.cvtColor(img, cv2.COLOR_BGR2RGB), np.array([order_clockwise(q) for q in quads],
                                                                             np.float32).reshape(-1, 4, 2), dc)
        return self.cache[i]

    def sample(self, rng):
        img, quads, dc = self.load(int(rng.integers(len(self.items))))
        return random_view(img, quads, dc, rng, self.size)
