# Quick Python detector + ICDAR 2015 Task 4.1 scoring for monitoring training on held-out images (img_251+),
# one carried part at a time; parts' counts combine. `eastrt eval` stays the reference for final figures.
import argparse
import glob
import json
import math
import os
import sys
import zipfile

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint import read_resume  # noqa: E402
from east_model import EAST, load_tf_tensors  # noqa: E402
from icdar import TRAIN_MAX_INDEX, image_index, read_gt  # noqa: E402

# ---- polygons --------------------------------------------------------------------------------------------


def poly_area(p):
    return 0.5 * float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))


def clip_polygon(subject, clipper):
    """Sutherland-Hodgman: subject (any simple polygon) clipped by a CONVEX clipper; returns the polygon
    (possibly with degenerate edges; its area is right)."""
    if poly_area(clipper) < 0:
        clipper = clipper[::-1]
    out = [tuple(p) for p in subject]
    n = len(clipper)
    for i in range(n):
        ax, ay = clipper[i]
        bx, by = clipper[(i + 1) % n]
        inp, out = out, []
        if not inp:
            break

        def side(p):
            return (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)
        prev = inp[-1]
        sp = side(prev)
        for cur in inp:
            sc = side(cur)
            if sc >= 0:
                if sp < 0:
                    t = sp / (sp - sc)
                    out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
                out.append(cur)
            elif sp >= 0:
                t = sp / (sp - sc)
                out.append((prev[0] + t * (cur[0] - prev[0]), prev[1] + t * (cur[1] - prev[1])))
            prev, sp = cur, sc
    return np.array(out, np.float64).reshape(-1, 2)


def intersection_area(a, convex_b):
    c = clip_polygon(a, convex_b)
    return abs(poly_area(c)) if len(c) >= 3 else 0.0


def iou(a, b):
    inter = intersection_area(a, b)
    union = abs(poly_area(a)) + abs(poly_area(b)) - inter
    return inter / union if union > 0 else 0.0


# ---- detector (docs/EAST.md) -----------------------------------------------------------------------------


def resize_for_detector(img):
    h, w = img.shape[:2]
    s = min(1.0, 2400.0 / max(h, w))
    rh, rw = int(h * s), int(w * s)
    rh = rh if rh % 32 == 0 else max((rh // 32 - 1) * 32, 32)
    rw = rw if rw % 32 == 0 else max((rw // 32 - 1) * 32, 32)
    return cv2.resize(img, (rw, rh)), rh / h, rw / w


def restore_rbox(xs, ys, geo):
    """Rectangle containing origin (4x, 4y) at distances top/right/bottom/left, rotated by the angle (the
    same frame as targets.rbox_of_quad). -> [N,4,2] TL, TR, BR, BL."""
    px, py = xs * 4.0, ys * 4.0
    d0, d1, d2, d3, a = (geo[:, i] for i in range(5))
    u = np.stack([np.cos(a), -np.sin(a)], -1)
    v = np.stack([np.sin(a), np.cos(a)], -1)
    p = np.stack([px, py], -1)
    return np.stack([p - d3[:, None] * u - d0[:, None] * v, p + d1[:, None] * u - d0[:, None] * v,
                     p + d1[:, None] * u + d2[:, None] * v, p - d3[:, None] * u + d2[:, None] * v], 1)


def standard_nms(quads, scores, thr):
    order = np.argsort(-scores, kind="stable")
    q = np.array(quads)
    lo, hi = q.min(1), q.max(1)  # axis-aligned boxes: most pairs are rejected without clipping
    keep = []
    for i in order:
        if keep:
            k = np.array(keep)
            near = k[np.all((lo[k] < hi[i]) & (hi[k] > lo[i]), axis=1)]
            if any(iou(quads[i], quads[j]) > thr for j in near):
                continue
        keep.append(i)
    return [quads[i] for i in keep], [scores[i] for i in keep]


def locality_aware_nms(quads, scores, thr=0.2):
    # Vertex order is the same (TL, TR, BR, BL) for every restored quad, so merging needs no re-matching.
    kept_q, kept_s = [], []
    cur, cur_s = None, 0.0
    for q, s in zip(quads, scores):
        if cur is not None and iou(q, cur) > thr:
            cur = (cur * cur_s + q * s) / (cur_s + s)
            cur_s += s
        else:
            if cur is not None:
                kept_q.append(cur)
                kept_s.append(cur_s)
            cur, cur_s = q.astype(np.float64), float(s)
    if cur is not None:
        kept_q.append(cur)
        kept_s.append(cur_s)
    if not kept_q:
        return [], []
    return standard_nms(kept_q, np.array(kept_s), thr)


def detect(model, img_rgb, dev, score_thr=0.8, nms_thr=0.2, box_thr=0.1):
    im, ratio_h, ratio_w = resize_for_detector(img_rgb)
    x = torch.from_numpy(im).to(dev).permute(2, 0, 1)[None].float().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        score, geo = model(x)
    score = score[0, 0].float().cpu().numpy()
    geo = geo[0].float().cpu().numpy().transpose(1, 2, 0)
    ys, xs = np.nonzero(score > score_thr)  # row-major = the reference's row order
    if not len(ys):
        return []
    quads = restore_rbox(xs.astype(np.float64), ys.astype(np.float64), geo[ys, xs].astype(np.float64))
    kept, _ = locality_aware_nms(quads, score[ys, xs].astype(np.float64), nms_thr)
    out = []
    for q in kept:
        m = np.zeros(score.shape, np.uint8)
        cv2.fillPoly(m, [np.round(q / 4).astype(np.int32)], 1)
        if m.sum() == 0 or score[m > 0].mean() <= box_thr:
            continue
        q = q / [ratio_w, ratio_h]
        q = np.roll(q, -int(np.argmin(q.sum(1))), 0)
        if np.linalg.norm(q[0] - q[1]) < 5 or np.linalg.norm(q[3] - q[0]) < 5:
            continue
        out.append(np.round(q).astype(np.int64))
    return out


# ---- ICDAR 2015 Task 4.1 protocol (docs/EAST.md) ---------------------------------------------------------


def score_image(gt_quads, gt_dc, dets):
    """-> (matched, care ground truths, care detections)."""
    gts = [g.astype(np.float64) for g in gt_quads]
    dets = [d.astype(np.float64) for d in dets]
    det_dc = []
    for d in dets:
        area = abs(poly_area(d))
        dc = False
        for g, isdc in zip(gts, gt_dc):
            if isdc and area > 0 and intersection_area(g, d) / area > 0.5:
                dc = True
                break
        det_dc.append(dc)
    gt_used, det_used, matched = [False] * len(gts), [False] * len(dets), 0
    for i, g in enumerate(gts):
        for j, d in enumerate(dets):
            if gt_used[i] or det_used[j] or gt_dc[i] or det_dc[j]:
                continue
            if iou(g, d) > 0.5:
                gt_used[i] = det_used[j] = True
                matched += 1
    return matched, int(sum(1 for x in gt_dc if not x)), int(sum(1 for x in det_dc if not x))


def totals(counts):
    m, g, d = (sum(c[k] for c in counts) for k in ("matched", "care_gt", "care_det"))
    p = m / d if d else 0.0
    r = m / g if g else 0.0
    return {"images": len(counts), "matched": m, "care_gt": g, "care_det": d, "precision": p, "recall": r,
            "hmean": 2 * p * r / (p + r) if p + r else 0.0}


def main(argv=None):
    ap = argparse.ArgumentParser(description="Monitor EAST on held-out ICDAR 2015 images (img_251-img_500)")
    ap.add_argument("--weights", help="fp16 export folder/file or int8 resume file")
    ap.add_argument("--heldout", default="train/.carry/heldout", help="folder with images/ and gt/")
    ap.add_argument("--out", help="folder for eval_<part>.json and res_<part>.zip")
    ap.add_argument("--combine", nargs="+", help="eval_*.json of parts to add up")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if args.combine:
        counts = []
        for p in args.combine:
            counts += json.load(open(p))["per_image"]
        idx = [c["image"] for c in counts]
        if len(set(idx)) != len(idx):
            raise SystemExit("the parts overlap: an image is counted twice")
        print(json.dumps(totals(counts), indent=1))
        return
    if not (args.weights and args.out):
        raise SystemExit("--weights and --out are needed (or --combine)")
    dev = torch.device(args.device)
    tensors, state = read_resume(args.weights)
    model = EAST()
    load_tf_tensors(model, tensors)
    model = model.to(dev).eval().to(memory_format=torch.channels_last)
    paths = sorted(glob.glob(os.path.join(args.heldout, "images", "img_*.jpg")), key=image_index)
    if not paths:
        raise SystemExit(f"{args.heldout}/images: no img_N.jpg")
    os.makedirs(args.out, exist_ok=True)
    tag = f"{image_index(paths[0])}-{image_index(paths[-1])}"
    counts = []
    with zipfile.ZipFile(os.path.join(args.out, f"res_{tag}.zip"), "w", zipfile.ZIP_DEFLATED) as zf:
        for p in paths:
            n = image_index(p)
            if n <= TRAIN_MAX_INDEX:
                raise SystemExit(f"{p}: not a held-out image (index <= {TRAIN_MAX_INDEX})")
            img = cv2.imread(p, cv2.IMREAD_COLOR)
            if img is None:
                raise SystemExit(f"{p}: not a readable image")
            dets = detect(model, cv2.cvtColor(img, cv2.COLOR_BGR2RGB), dev)
            zf.writestr(f"res_img_{n}.txt", "".join(",".join(str(int(v)) for v in d.reshape(-1)) + "\r\n"
                                                    for d in dets))
            gq, gdc = read_gt(os.path.join(args.heldout, "gt", f"gt_img_{n}.txt"))
            m, g, d = score_image(gq, gdc, dets)
            counts.append({"image": n, "matched": m, "care_gt": g, "care_det": d})
    res = {"weights_state": state, "per_image": counts, "totals": totals(counts)}
    with open(os.path.join(args.out, f"eval_{tag}.json"), "w") as f:
        json.dump(res, f)
    print(json.dumps(res["totals"]))


if __name__ == "__main__":
    main()
