# EAST with a TF-slim ResNet-50 v1 backbone in PyTorch, exactly as docs/EAST.md defines it, with the map to
# the TF-slim variable names/layouts, an EMA of the weights (tf.train.ExponentialMovingAverage) and the export.
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN_RGB = (123.68, 116.78, 103.94)
BN_EPS = 1e-5
BN_MOMENTUM = 1.0 - 0.997  # TF: moving = decay*moving + (1-decay)*batch; PyTorch momentum is the (1-decay)
TEXT_SCALE = 512.0
EMA_DECAY = 0.997


class ConvBN(nn.Module):
    """conv (no bias) + BatchNorm (+ReLU). Symmetric pad k//2 is both TF SAME at stride 1 and the explicit
    pad (3 for conv1, 1 for strided 3x3) that TF-slim's conv2d_same uses before a VALID strided conv."""

    def __init__(self, cin, cout, k, stride=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class Bottleneck(nn.Module):
    def __init__(self, cin, depth, bottleneck, stride):
        super().__init__()
        self.stride = stride
        # TF-slim projects only where the depth changes (unit_1); otherwise identity subsampled by stride.
        self.shortcut = ConvBN(cin, depth, 1, stride, relu=False) if cin != depth else None
        self.conv1 = ConvBN(cin, bottleneck, 1)
        self.conv2 = ConvBN(bottleneck, bottleneck, 3, stride)
        self.conv3 = ConvBN(bottleneck, depth, 1, relu=False)

    def forward(self, x):
        if self.shortcut is not None:
            sc = self.shortcut(x)
        else:
            sc = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        return F.relu(sc + self.conv3(self.conv2(self.conv1(x))))


def max_pool_tf_same(x, k=3, s=2):
    """TF 'SAME' max pool: total pad = max((ceil(n/s)-1)*s + k - n, 0), the smaller half on top/left
    (0 top/left and 1 bottom/right on even sizes); padded cells never win (-inf)."""
    def pads(n):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    top, bottom = pads(x.shape[2])
    left, right = pads(x.shape[3])
    x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, k, s)


def upsample2x_tf1(x):
    """TF1 resize_bilinear x2, align_corners=False, half_pixel_centers=False (ONNX 'asymmetric'):
    out(2i) = in(i), out(2i+1) = (in(i) + in(i+1)) / 2 with the last row/column repeating the edge."""
    n, c, h, w = x.shape
    nxt = torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)
    x = torch.stack([x, (x + nxt) * 0.5], dim=3).reshape(n, c, 2 * h, w)
    nxt = torch.cat([x[:, :, :, 1:], x[:, :, :, -1:]], dim=3)
    x = torch.stack([x, (x + nxt) * 0.5], dim=4).reshape(n, c, 2 * h, 2 * w)
    return x


BLOCKS = [  # (name, depth, bottleneck depth, units); stride 2 on the LAST unit of blocks 1-3 (TF-slim)
    ("block1", 256, 64, 3, 2),
    ("block2", 512, 128, 4, 2),
    ("block3", 1024, 256, 6, 2),
    ("block4", 2048, 512, 3, 1),
]


class EAST(nn.Module):
    """Input: NCHW float RGB in [0, 255] (channels_last memory format welcome). Output: score [N,1,H/4,W/4],
    geometry [N,5,H/4,W/4] = (top, right, bottom, left distances in pixels, angle in [-pi/4, pi/4])."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)
        self.conv1 = ConvBN(3, 64, 7, 2)
        self.blocks = nn.ModuleList()
        cin = 64
        for _, depth, bott, units, stride in BLOCKS:
            block = nn.ModuleList()
            for u in range(units):
                block.append(Bottleneck(cin, depth, bott, stride if u == units - 1 else 1))
                cin = depth
            self.blocks.append(block)
        # feature_fusion: Conv..Conv_6 in TF-slim creation order.
        self.fuse = nn.ModuleList([
            ConvBN(2048 + 512, 128, 1), ConvBN(128, 128, 3),
            ConvBN(128 + 256, 64, 1), ConvBN(64, 64, 3),
            ConvBN(64 + 64, 32, 1), ConvBN(32, 32, 3),
            ConvBN(32, 32, 3),
        ])
        self.score = nn.Conv2d(32, 1, 1)
        self.geo = nn.Conv2d(32, 4, 1)
        self.angle = nn.Conv2d(32, 1, 1)

    def forward(self, x):
        x = x - self.mean
        x = max_pool_tf_same(self.conv1(x))
        feats = [x]  # pool2
        for block in self.blocks:
            for unit in block:
                x = unit(x)
            feats.append(x)
        f = [feats[4], feats[2], feats[1], feats[0]]  # pool5, pool4, pool3, pool2 (block3 output unused)
        h = f[0]
        for i in range(3):
            g = upsample2x_tf1(h)
            h = self.fuse[2 * i + 1](self.fuse[2 * i](torch.cat([g, f[i + 1]], dim=1)))
        g3 = self.fuse[6](h)
        # Heads in fp32 even under bf16 autocast: bf16 would quantise distances near 512 to steps of 2 px.
        with torch.autocast(device_type=g3.device.type, enabled=False):
            g3 = g3.float()
            score = torch.sigmoid(self.score(g3))
            dist = torch.sigmoid(self.geo(g3)) * TEXT_SCALE
            angle = (torch.sigmoid(self.angle(g3)) - 0.5) * (math.pi / 2)
        return score, torch.cat([dist, angle], dim=1)


# ---- TF-slim names --------------------------------------------------------------------------------------

def _convbn_names(prefix, tf_scope):
    return {
        f"{prefix}.conv.weight": f"{tf_scope}/weights",
        f"{prefix}.bn.weight": f"{tf_scope}/BatchNorm/gamma",
        f"{prefix}.bn.bias": f"{tf_scope}/BatchNorm/beta",
        f"{prefix}.bn.running_mean": f"{tf_scope}/BatchNorm/moving_mean",
        f"{prefix}.bn.running_var": f"{tf_scope}/BatchNorm/moving_variance",
    }


def tf_name_map():
    """PyTorch state_dict key -> TF-slim variable name (num_batches_tracked has no TF counterpart)."""
    m = _convbn_names("conv1", "resnet_v1_50/conv1")
    for b, (bname, _, _, units, _) in enumerate(BLOCKS):
        for u in range(units):
            base = f"resnet_v1_50/{bname}/unit_{u + 1}/bottleneck_v1"
            for part in ("shortcut", "conv1", "conv2", "conv3"):
                if part == "shortcut" and u != 0:
                    continue
                m.update(_convbn_names(f"blocks.{b}.{u}.{part}", f"{base}/{part}"))
    for i in range(7):
        m.update(_convbn_names(f"fuse.{i}", "feature_fusion/Conv" + (f"_{i}" if i else "")))
    for mod, idx in (("score", 7), ("geo", 8), ("angle", 9)):
        m[f"{mod}.weight"] = f"feature_fusion/Conv_{idx}/weights"
        m[f"{mod}.bias"] = f"feature_fusion/Conv_{idx}/biases"
    return m


def to_tf_layout(t):
    return t.permute(2, 3, 1, 0).contiguous() if t.dim() == 4 else t  # conv [K,C,R,S] -> TF [R,S,C,K]


def from_tf_layout(t):
    return t.permute(3, 2, 0, 1).contiguous() if t.dim() == 4 else t


class WeightEMA:
    """tf.train.ExponentialMovingAverage(0.997, num_updates=global_step) over the trainable variables:
    decay = min(0.997, (1+step)/(10+step)). BN moving statistics are not averaged (not trainable in TF)."""

    def __init__(self, model, decay=EMA_DECAY):
        self.decay = decay
        self.shadow = {k: p.detach().clone().float() for k, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model, step):
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for k, p in model.named_parameters():
            self.shadow[k].mul_(d).add_(p.detach().float(), alpha=1.0 - d)

    def state_dict_for_export(self, model):
        """Shadows for the parameters, the model's own running statistics for the BN buffers."""
        sd = {k: v.detach().float() for k, v in model.state_dict().items()}
        for k, v in self.shadow.items():
            sd[k] = v
        return sd


def tf_tensors(state_dict):
    """TF-slim name -> tensor in TF layout, for every mapped key; raises on missing keys."""
    out = {}
    for k, name in tf_name_map().items():
        if k not in state_dict:
            raise KeyError(f"state dict has no '{k}' (TF variable {name})")
        out[name] = to_tf_layout(state_dict[k].detach().cpu())
    return out


def load_tf_tensors(model, tensors):
    """Inverse of tf_tensors: fills model from TF-named tensors (any float dtype); errors name the tensor."""
    sd = model.state_dict()
    for k, name in tf_name_map().items():
        if name not in tensors:
            raise KeyError(f"checkpoint has no tensor '{name}'")
        t = from_tf_layout(tensors[name]).to(torch.float32)
        if tuple(t.shape) != tuple(sd[k].shape):
            raise ValueError(f"'{name}': shape {tuple(t.shape)} in torch layout, expected {tuple(sd[k].shape)}")
        sd[k] = t
    model.load_state_dict(sd)


# ---- safetensors, written by hand (8-byte LE header length, JSON header, raw little-endian data) ----------

_ST_DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16", torch.float32: "F32", torch.int8: "I8",
              torch.int32: "I32", torch.int64: "I64", torch.uint8: "U8"}
_ST_DTYPES_INV = {v: k for k, v in _ST_DTYPES.items()}


def write_safetensors(tensors, path, metadata=None):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        src = tensors[name].detach().cpu()
        t = torch.empty(src.shape, dtype=src.dtype).copy_(src)  # fresh row-major (channels_last safe)
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def read_safetensors(path):
    """-> (dict name -> tensor, metadata dict). Errors say which file and what is wrong."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than 8 bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        if e > len(body):
            raise ValueError(f"{path}: tensor '{name}' runs past the end of the file (truncated?)")
        dt = _ST_DTYPES_INV[info["dtype"]]
        t = torch.frombuffer(bytearray(body[b:e]), dtype=torch.uint8) if e > b else torch.empty(0, dtype=torch.uint8)
        out[name] = t.view(dt).reshape(info["shape"]).clone()
    return out, meta


def write_sharded(tensors, path, max_part_bytes=None, metadata=None):
    """One file at `path`, or when the total exceeds max_part_bytes, parts '<stem>-0000k-of-0000n.safetensors'
    (each a complete safetensors file of whole tensors). Returns the list of paths written."""
    sizes = {k: v.numel() * v.element_size() for k, v in tensors.items()}
    if not max_part_bytes or sum(sizes.values()) <= max_part_bytes:
        write_safetensors(tensors, path, metadata)
        return [path]
    parts, cur, cur_size = [], {}, 0
    for k in sorted(tensors):  # whole tensors per part; the largest tensor is ~4.7 MB in fp16
        if cur and cur_size + sizes[k] > max_part_bytes:
            parts.append(cur)
            cur, cur_size = {}, 0
        cur[k] = tensors[k]
        cur_size += sizes[k]
    parts.append(cur)
    stem = path[:-len(".safetensors")] if path.endswith(".safetensors") else path
    paths = []
    for i, p in enumerate(parts):
        pp = f"{stem}-{i + 1:05d}-of-{len(parts):05d}.safetensors"
        write_safetensors(p, pp, metadata)
        paths.append(pp)
    return paths


def read_sharded(paths):
    tensors, meta = {}, {}
    for p in paths:
        t, m = read_safetensors(p)
        tensors.update(t)
        meta.update(m)
    return tensors, meta


def export_safetensors(model, path, dtype=torch.float16, ema=None, max_part_bytes=None, metadata=None):
    """TF-slim-named tensors in TF layouts (conv RSCK). With `ema`, the shadows replace the trainable
    variables, as evaluation of a TF checkpoint restores <var>/ExponentialMovingAverage."""
    sd = ema.state_dict_for_export(model) if ema is not None else model.state_dict()
    tensors = {k: v.to(dtype) for k, v in tf_tensors(sd).items()}
    return write_sharded(tensors, path, max_part_bytes, metadata)


def load_safetensors_into(model, paths):
    tensors, meta = read_sharded(paths)
    load_tf_tensors(model, tensors)
    return meta
