# Targets on hand-made rotated rectangles (distances, angle, masks), the shrink rule, the loss' zeros, and
# the round trip targets -> restore_rbox used by the monitoring detector.
import math

import numpy as np
import torch

from eval_heldout import restore_rbox
from loss import east_loss
from targets import make_targets, shrink_quad


def rect(cx, cy, w, h, deg):
    """Clockwise (image coordinates) from top-left; deg > 0 rotates the text to rise to the right."""
    a = math.radians(deg)
    u = np.array([math.cos(a), -math.sin(a)])
    v = np.array([math.sin(a), math.cos(a)])
    c = np.array([cx, cy])
    return np.array([c - w / 2 * u - h / 2 * v, c + w / 2 * u - h / 2 * v, c + w / 2 * u + h / 2 * v,
                     c - w / 2 * u + h / 2 * v], np.float32)


def test_centre_pixel_of_rotated_rectangle():
    q = rect(256, 256, 200, 60, 20)
    score, geo, mask = make_targets(512, 512, q[None], np.array([False]))
    assert score[64, 64] == 1 and mask[64, 64] == 1
    np.testing.assert_allclose(geo[64, 64], [30, 100, 30, 100, math.radians(20)], atol=1e-3)


def test_steep_rectangle_takes_the_angle_within_45_degrees():
    q = rect(256, 256, 200, 60, 60)  # 60 deg = -30 deg with width and height exchanged
    score, geo, _ = make_targets(512, 512, q[None], np.array([False]))
    np.testing.assert_allclose(geo[64, 64], [100, 30, 100, 30, math.radians(-30)], atol=1e-3)


def test_off_centre_pixel_of_axis_aligned_box():
    q = np.array([[100, 200], [300, 200], [300, 260], [100, 260]], np.float32)
    score, geo, _ = make_targets(512, 512, q[None], np.array([False]))
    # pixel (x=40, y=57) is point (160, 228)
    np.testing.assert_allclose(geo[57, 40], [28, 140, 32, 60, 0.0], atol=1e-4)
    assert score[50, 25] == 0  # (100, 200) corner lies outside the shrunk quad


def test_restore_inverts_targets_everywhere_inside():
    q = rect(250, 240, 180, 50, -33)
    score, geo, _ = make_targets(512, 512, q[None], np.array([False]))
    ys, xs = np.nonzero(score)
    assert len(ys) > 50
    quads = restore_rbox(xs.astype(float), ys.astype(float), geo[ys, xs].astype(float))
    np.testing.assert_allclose(quads, np.broadcast_to(q, quads.shape), atol=1e-2)


def test_shrink_moves_vertices_along_edges():
    sq = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float64)
    np.testing.assert_allclose(shrink_quad(sq), [[30, 30], [70, 30], [70, 70], [30, 70]])
    r = np.array([[0, 0], [200, 0], [200, 40], [0, 40]], np.float64)  # r_i = 40 everywhere
    np.testing.assert_allclose(shrink_quad(r), [[12, 12], [188, 12], [188, 28], [12, 28]])


def test_masks_dont_care_and_tiny_regions():
    big = rect(128, 128, 120, 40, 0)
    tiny = rect(380, 380, 60, 8, 0)
    dc = rect(380, 128, 120, 40, 10)
    score, geo, mask = make_targets(512, 512, np.stack([big, tiny, dc]), np.array([False, False, True]))
    assert mask[32, 32] == 1 and mask[95, 95] == 0 and mask[32, 95] == 0
    assert mask.sum() < 128 * 128 and mask[5, 5] == 1


def test_loss_is_zero_for_a_perfect_prediction_and_grows_with_errors():
    q = rect(64, 64, 80, 30, 15)
    s, g, m = make_targets(128, 128, q[None], np.array([False]))
    s, g, m = (torch.from_numpy(a) for a in (s, g, m))
    s, g, m = s[None, None], g.permute(2, 0, 1)[None], m[None, None]
    total, parts = east_loss(s, g, s, g, m)
    assert float(total) < 1e-6
    worse = g.clone()
    worse[:, 0] *= 1.5
    worse[:, 4] += 0.2
    total2, parts2 = east_loss(s * 0.5, worse, s, g, m)
    assert float(parts2["aabb"]) > 0.01 and float(parts2["theta"]) > 0.01 and float(parts2["cls"]) > 0.001
