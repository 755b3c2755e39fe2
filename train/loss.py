# The EAST loss as the reference (argman/EAST model.py) defines it: 0.01 x dice on the score map, and on text
# pixels -log IoU of the axis-aligned boxes in the rotated frame + 20 (1 - cos(angle error)); masked.
import torch


def dice_loss(gt_score, pred_score, mask, eps=1e-5):
    inter = (gt_score * pred_score * mask).sum()
    union = (gt_score * mask).sum() + (pred_score * mask).sum() + eps
    return 1.0 - 2.0 * inter / union


def east_loss(pred_score, pred_geo, gt_score, gt_geo, mask):
    """All NCHW: score [N,1,H,W], geo [N,5,H,W]; computed in fp32. Returns (total, parts dict).
    As in the reference, the geometry term is a mean over all pixels (not only the text ones)."""
    pred_score, pred_geo = pred_score.float(), pred_geo.float()
    cls = 0.01 * dice_loss(gt_score, pred_score, mask)
    t, r, b, l, a = gt_geo.unbind(1)
    tp, rp, bp, lp, ap = pred_geo.unbind(1)
    area_gt = (t + b) * (r + l)
    area_pred = (tp + bp) * (rp + lp)
    w_int = torch.minimum(r, rp) + torch.minimum(l, lp)
    h_int = torch.minimum(t, tp) + torch.minimum(b, bp)
    inter = w_int * h_int
    union = area_gt + area_pred - inter
    l_aabb = -torch.log((inter + 1.0) / (union + 1.0))
    l_theta = 1.0 - torch.cos(ap - a)
    w = gt_score[:, 0] * mask[:, 0]
    aabb = (l_aabb * w).mean()
    theta = (20.0 * l_theta * w).mean()
    total = aabb + theta + cls
    return total, {"cls": cls.detach(), "aabb": aabb.detach(), "theta": theta.detach()}
