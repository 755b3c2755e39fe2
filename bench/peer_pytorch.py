#!/usr/bin/env python3
"""The PyTorch peer of `eastrt bench`: the same EAST (docs/EAST.md: ResNet-50 v1 with TF-slim strides,
TF `SAME` pool, asymmetric x2 upsampling) with the same weights, read from the safetensors file that
`eastrt bench --save-weights FILE` writes (TF-slim names, RSCK filters), timed on the GPU by CUDA events.

Modes: eager FP32 (no TF32), eager TF32, FP16 channels-last, FP16 channels-last replayed as a CUDA graph,
and torch.compile (inductor with freezing, or --compile-mode max-autotune-no-cudagraphs) replayed as a
CUDA graph. Prints a table and appends one JSON line per mode and batch (date, commit, gpu, tool,
precision, batch, height, width, median_ms, images_per_s, ...) to --results.
"""
import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

MEAN_RGB = (123.68, 116.78, 103.94)
BLOCKS = (("block1", 64, 3, 2), ("block2", 128, 4, 2), ("block3", 256, 6, 2), ("block4", 512, 3, 1))
MERGE_DEPTHS = (128, 64, 32)
BN_EPSILON = 1e-5


def conv_bn(weights, scope, stride=1, padding=0, relu=True):
    """A bias-free convolution with inference batch norm from TF-slim weights (filter RSCK -> OIHW)."""
    w = weights[scope + "/weights"]
    r, s, c, k = w.shape
    conv = nn.Conv2d(c, k, (r, s), stride=stride, padding=padding, bias=False)
    conv.weight.data.copy_(w.permute(3, 2, 0, 1))
    bn = nn.BatchNorm2d(k, eps=BN_EPSILON)
    bn.weight.data.copy_(weights[scope + "/BatchNorm/gamma"])
    bn.bias.data.copy_(weights[scope + "/BatchNorm/beta"])
    bn.running_mean.copy_(weights[scope + "/BatchNorm/moving_mean"])
    bn.running_var.copy_(weights[scope + "/BatchNorm/moving_variance"])
    layers = [conv, bn] + ([nn.ReLU(inplace=True)] if relu else [])
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """TF-slim bottleneck_v1: the stride on the 3x3; projection shortcut when the depth changes, else the
    identity subsampled every `stride` pixels."""

    def __init__(self, weights, scope, in_depth, depth, stride):
        super().__init__()
        self.stride = stride
        self.shortcut = conv_bn(weights, scope + "/shortcut", stride=stride, relu=False) if depth != in_depth else None
        self.conv1 = conv_bn(weights, scope + "/conv1")
        self.conv2 = conv_bn(weights, scope + "/conv2", stride=stride, padding=1)
        self.conv3 = conv_bn(weights, scope + "/conv3", relu=False)

    def forward(self, x):
        if self.shortcut is not None:
            shortcut = self.shortcut(x)
        elif self.stride > 1:
            shortcut = x[:, :, :: self.stride, :: self.stride]
        else:
            shortcut = x
        return F.relu(shortcut + self.conv3(self.conv2(self.conv1(x))))


def same_pool_padding(size):
    out = (size + 1) // 2
    total = max((out - 1) * 2 + 3 - size, 0)
    return total // 2, total - total // 2


def upsample2x_asymmetric(x):
    """TF1 resize_bilinear x2 (align_corners=False, half_pixel_centers=False): out(2i) = in(i),
    out(2i+1) = (in(i) + in(i+1)) / 2, the last row and column repeat the edge."""
    below = torch.cat([x[:, :, 1:], x[:, :, -1:]], dim=2)
    rows = torch.stack([x, x + (below - x) * 0.5], dim=3).flatten(2, 3)
    right = torch.cat([rows[..., 1:], rows[..., -1:]], dim=3)
    return torch.stack([rows, rows + (right - rows) * 0.5], dim=4).flatten(3, 4)


class East(nn.Module):
    def __init__(self, weights):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1))
        self.conv1 = conv_bn(weights, "resnet_v1_50/conv1", stride=2, padding=3)
        units, depth = [], 64
        self.block_ends = []
        for name, base, count, stride in BLOCKS:
            for u in range(1, count + 1):
                scope = f"resnet_v1_50/{name}/unit_{u}/bottleneck_v1"
                units.append(Bottleneck(weights, scope, depth, 4 * base, stride if u == count else 1))
                depth = 4 * base
            self.block_ends.append(len(units) - 1)
        self.units = nn.ModuleList(units)
        names = ["feature_fusion/Conv"] + [f"feature_fusion/Conv_{i}" for i in range(1, 7)]
        self.merge = nn.ModuleList(conv_bn(weights, n, padding=(0 if i % 2 == 0 and i < 6 else 1))
                                   for i, n in enumerate(names))
        self.heads = nn.ModuleList()
        for n in ("feature_fusion/Conv_7", "feature_fusion/Conv_8", "feature_fusion/Conv_9"):
            w = weights[n + "/weights"]
            head = nn.Conv2d(w.shape[2], w.shape[3], 1)
            head.weight.data.copy_(w.permute(3, 2, 0, 1))
            head.bias.data.copy_(weights[n + "/biases"])
            self.heads.append(head)

    def forward(self, x):  # x: N,3,H,W RGB 0..255
        x = self.conv1(x - self.mean)
        top, bottom = same_pool_padding(x.shape[2])
        left, right = same_pool_padding(x.shape[3])
        x = F.max_pool2d(F.pad(x, (left, right, top, bottom), value=-math.inf), 3, 2)
        ends = [x]
        for i, unit in enumerate(self.units):
            x = unit(x)
            if i in self.block_ends and i != self.block_ends[2]:  # block3's output is not an end point
                ends.append(x)
        h = ends[3]
        for i in range(3):
            c = torch.cat([upsample2x_asymmetric(h), ends[2 - i]], dim=1)
            h = self.merge[2 * i + 1](self.merge[2 * i](c))
        g = self.merge[6](h)
        score = torch.sigmoid(self.heads[0](g))
        distances = torch.sigmoid(self.heads[1](g)) * 512
        angle = (torch.sigmoid(self.heads[2](g)) - 0.5) * (math.pi / 2)
        return score, torch.cat([distances, angle], dim=1)


def median_and_p90(times):
    s = sorted(times)
    return s[len(s) // 2], s[min(len(s) - 1, math.ceil(0.9 * len(s)) - 1)]


def time_callable(fn, warmup, iterations):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(iterations)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(iterations)]
    for s, e in zip(starts, ends):
        s.record()
        fn()
        e.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]


def as_graph(fn, example):
    """Captures fn(example) once (after warm-up on a side stream, as PyTorch requires) and returns a
    callable replaying it on the same static input."""
    static = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(static)
    return (lambda: graph.replay()), out


def commit():
    # The commit eastrt was built from, when the caller knows it (a copied tree's git may say another).
    if os.environ.get("EASTRT_COMMIT"):
        return os.environ["EASTRT_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=False).stdout.strip()
    except OSError:
        return ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="safetensors from `eastrt bench --save-weights`")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--height", type=int, default=672)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--modes", nargs="+",
                        default=["eager-fp32", "eager-tf32", "eager-fp16", "graph-fp16", "compile-fp16"])
    parser.add_argument("--compile-mode", default="freezing",
                        help="'freezing' (inductor with frozen weights) or a torch.compile mode such as "
                             "max-autotune-no-cudagraphs")
    parser.add_argument("--results", help="append JSON lines here")
    parser.add_argument("--deadline", type=float, default=0,
                        help="seconds from now after which no new mode is started (0: none)")
    args = parser.parse_args()
    started = time.monotonic()

    if not torch.cuda.is_available():
        sys.exit("peer_pytorch: no CUDA GPU visible to PyTorch")
    gpu = torch.cuda.get_device_name(0)
    torch.backends.cudnn.benchmark = True
    weights = {k: v.float() for k, v in load_file(args.weights).items()}
    model32 = East(weights).cuda().eval()
    model16 = East(weights).cuda().eval().half().to(memory_format=torch.channels_last)
    out = open(args.results, "a") if args.results else None
    print(f"PyTorch {torch.__version__} on {gpu}, EAST {args.height}x{args.width}")
    print(f"{'mode':<14} {'batch':>5} {'median ms':>10} {'p90 ms':>9} {'images/s':>10} {'vs fp32':>9}")

    for batch in args.batches:
        gen = torch.Generator(device="cuda").manual_seed(7)
        x32 = torch.rand(batch, 3, args.height, args.width, device="cuda", generator=gen) * 255
        x16 = x32.half().to(memory_format=torch.channels_last)
        reference = None
        for mode in args.modes:
            if args.deadline and time.monotonic() - started > args.deadline:
                print(f"{mode:<14} {batch:>5} skipped: past the deadline of {args.deadline:.0f} s")
                continue
            torch.backends.cuda.matmul.allow_tf32 = mode == "eager-tf32"
            torch.backends.cudnn.allow_tf32 = mode == "eager-tf32"
            precision = {"eager-fp32": "fp32", "eager-tf32": "tf32"}.get(mode, "fp16")
            compile_s = 0.0
            with torch.inference_mode():
                if mode in ("eager-fp32", "eager-tf32"):
                    fn, result = (lambda: model32(x32)), model32(x32)
                elif mode == "eager-fp16":
                    fn, result = (lambda: model16(x16)), model16(x16)
                elif mode == "graph-fp16":
                    fn, result = as_graph(model16, x16)
                elif mode == "compile-fp16":
                    t0 = time.monotonic()
                    if args.compile_mode == "freezing":
                        import torch._inductor.config as inductor_config
                        inductor_config.freezing = True
                        compiled = torch.compile(model16)
                    else:
                        compiled = torch.compile(model16, mode=args.compile_mode)
                    compiled(x16)
                    fn, result = as_graph(compiled, x16)
                    compile_s = time.monotonic() - t0
                else:
                    sys.exit(f"peer_pytorch: unknown mode {mode}")
                times = time_callable(fn, args.warmup, args.iterations)
                score = result[0].float()
                if reference is None and mode == "eager-fp32":
                    reference = score.clone()
                error = (float((score - reference).norm() / reference.norm()) if reference is not None else float("nan"))
            median, p90 = median_and_p90(times)
            line = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "commit": commit(), "gpu": gpu, "tool": "pytorch-" + mode.split("-")[0], "mode": mode,
                    "torch": torch.__version__, "precision": precision, "batch": batch, "height": args.height,
                    "width": args.width, "cuda_graph": mode in ("graph-fp16", "compile-fp16"),
                    "iterations": args.iterations, "median_ms": median, "p90_ms": p90,
                    "images_per_s": 1000.0 * batch / median, "score_error_vs_fp32": error,
                    "compile_s": compile_s, "max_memory_bytes": torch.cuda.max_memory_allocated()}
            print(f"{mode:<14} {batch:>5} {median:>10.3f} {p90:>9.3f} {line['images_per_s']:>10.1f} {error:>9.2e}",
                  flush=True)
            if out:
                out.write(json.dumps(line) + "\n")
                out.flush()
    if out:
        out.close()


if __name__ == "__main__":
    main()
