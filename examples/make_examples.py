# Writes the example images the README's main command detects text in: synthetic scene text made by the
# training data generator (train/synth.py, procedural backgrounds, Debian fonts), never ICDAR images.
# Run from the repository root after train/pack_fonts.sh: .venv-train/bin/python examples/make_examples.py
import os
import sys

import cv2
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "train"))
from synth import SynthText  # noqa: E402

synth = SynthText(os.path.join(here, "..", "train", ".carry", "fonts"), icdar_root=None, size=640)
rng = np.random.default_rng(2026)
os.makedirs(os.path.join(here, "images"), exist_ok=True)
os.makedirs(os.path.join(here, "gt"), exist_ok=True)
for i in range(1, 4):  # ICDAR 2015's names, so that `eastrt eval` scores the detections

    img, quads, dont_care = synth.sample(rng)
    cv2.imwrite(os.path.join(here, "images", f"img_{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90])
    with open(os.path.join(here, "gt", f"gt_img_{i}.txt"), "w", newline="\r\n") as f:
        for q, dc in zip(quads, dont_care):
            f.write(",".join(str(int(round(v))) for v in np.asarray(q).reshape(-1)) + ("," + ("###" if dc else "text")) + "\n")
    print(f"img_{i}.jpg: {len(quads)} text boxes")
