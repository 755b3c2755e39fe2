# EAST training targets (score, RBOX geometry, training mask) at 1/4 resolution, as argman/EAST's
# generate_rbox defines them, vectorised with numpy: map pixel (x, y) stands for image point (4x, 4y).
import cv2
import numpy as np

SHRINK_RATIO = 0.3
MIN_TEXT_SIZE = 10  # px at input resolution: smaller regions are masked out of the loss


def shrink_quad(quad, ratio=SHRINK_RATIO):
    """Move every vertex along both its edges by ratio*r_i, r_i = its shorter adjacent edge; the longer
    opposite-edge pair first (reference order)."""
    p = quad.astype(np.float64).copy()
    r = np.array([min(np.linalg.norm(p[i] - p[(i + 1) % 4]), np.linalg.norm(p[i] - p[(i - 1) % 4]))
                  for i in range(4)])

    def move(a, b):  # shorten edge a->b from both ends
        d = p[b] - p[a]
        n = np.linalg.norm(d)
        if n < 1e-6:
            return
        d /= n
        p[a] += ratio * r[a] * d
        p[b] -= ratio * r[b] * d

    long_first = (np.linalg.norm(p[0] - p[1]) + np.linalg.norm(p[2] - p[3]) >
                  np.linalg.norm(p[0] - p[3]) + np.linalg.norm(p[1] - p[2]))
    pairs = [(0, 1), (3, 2), (0, 3), (1, 2)] if long_first else [(0, 3), (1, 2), (0, 1), (3, 2)]
    for a, b in pairs:
        move(a, b)
    return p


def rbox_of_quad(quad):
    """Minimum-area rectangle of the quad and its angle in (-pi/4, pi/4]. The angle a is the one of the
    rectangle's 'bottom' direction u = (cos a, -sin a) (image y points down), so a > 0 rises to the right;
    v = (sin a, cos a) points 'down'. Returns (a, u, v, umin, umax, vmin, vmax)."""
    (cx, cy), (w, h), deg = cv2.minAreaRect(quad.astype(np.float32))
    corners = cv2.boxPoints(((cx, cy), (w, h), deg)).astype(np.float64)
    e = corners[1] - corners[0]
    a = np.arctan2(-e[1], e[0])  # angle of one side; the other side is a +- pi/2
    a = (a + np.pi / 2) % (np.pi / 2)  # [0, pi/2)
    if a > np.pi / 4:
        a -= np.pi / 2  # now (-pi/4, pi/4]
    if abs(a) < 1e-6:
        a = 0.0
    u = np.array([np.cos(a), -np.sin(a)])
    v = np.array([np.sin(a), np.cos(a)])
    pu, pv = corners @ u, corners @ v
    return a, u, v, pu.min(), pu.max(), pv.min(), pv.max()


def points_in_polygon(px, py, poly):
    """Even-odd test of points (px, py) against a polygon (any simple polygon)."""
    inside = np.zeros(px.shape, bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        cond = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xc = x1 + (py - y1) * (x2 - x1) / (y2 - y1)
        inside ^= cond & (px < xc)
    return inside


def quad_sides(quad):
    q = quad.astype(np.float64)
    h = min(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))
    w = min(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3]))
    return h, w


def make_targets(img_h, img_w, quads, dont_care, stride=4, min_text_size=MIN_TEXT_SIZE):
    """quads: [N,4,2] (clockwise from top-left, input-pixel coordinates), dont_care: [N] bool.
    Returns score [H/4,W/4] f32, geo [H/4,W/4,5] f32 (top, right, bottom, left, angle), mask [H/4,W/4] f32."""
    oh, ow = img_h // stride, img_w // stride
    score = np.zeros((oh, ow), np.float32)
    geo = np.zeros((oh, ow, 5), np.float32)
    mask = np.ones((oh, ow), np.float32)
    for quad, dc in zip(quads, dont_care):
        quad = np.asarray(quad, np.float64)
        x0, y0 = np.floor(quad.min(0) / stride).astype(int)
        x1, y1 = np.ceil(quad.max(0) / stride).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, ow), min(y1, oh)
        if x0 >= x1 or y0 >= y1:
            continue
        gy, gx = np.mgrid[y0:y1, x0:x1]
        px, py = gx * float(stride), gy * float(stride)
        h, w = quad_sides(quad)
        if dc or min(h, w) < min_text_size:
            mask[y0:y1, x0:x1][points_in_polygon(px, py, quad)] = 0.0
        inside = points_in_polygon(px, py, shrink_quad(quad))
        if not inside.any():
            continue
        a, u, v, umin, umax, vmin, vmax = rbox_of_quad(quad)
        pu = px[inside] * u[0] + py[inside] * u[1]
        pv = px[inside] * v[0] + py[inside] * v[1]
        sub = geo[y0:y1, x0:x1]
        vals = np.stack([pv - vmin, umax - pu, vmax - pv, pu - umin, np.full(pu.shape, a)], -1)
        vals[:, :4] = np.maximum(vals[:, :4], 0.0)
        sub[inside] = vals
        score[y0:y1, x0:x1][inside] = 1.0
    return score, geo, mask
