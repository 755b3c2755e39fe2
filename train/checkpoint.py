# Checkpoints that fit the device's transfer limits: the fp16 TF-named export (returned, in <=15 MiB parts)
# and a group-quantised int8 copy of it that is small enough to carry back in for resuming (~23 MiB).
import argparse
import glob
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from east_model import read_sharded, write_safetensors, write_sharded  # noqa: E402

GROUP = 128


def quantise_int8(tensors, group=GROUP):
    """Conv weights (4-D, TF RSCK) -> int8 per output channel and group of `group` inputs with an fp16 scale;
    other tensors (BN, biases) kept in fp32. Relative rounding error per group <= 1/254 of its max."""
    out, shapes = {}, {}
    for name, t in tensors.items():
        t = t.float()
        if t.dim() != 4:
            out[name] = t
            continue
        shapes[name] = list(t.shape)
        k = t.shape[3]
        rows = t.reshape(-1, k).t()  # [K, R*S*C]
        n = rows.shape[1]
        pad = -n % group
        rows = torch.nn.functional.pad(rows, (0, pad)).reshape(k, -1, group)
        scale = rows.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127.0
        scale = scale.half().float().clamp_min(1e-12)  # quantise against the scale that is stored
        q = torch.round(rows / scale).clamp_(-127, 127).to(torch.int8)
        out[name + "#q"] = q
        out[name + "#scale"] = scale.half()
    return out, shapes


def dequantise_int8(stored, shapes):
    out = {}
    for name, t in stored.items():
        if name.endswith("#scale"):
            continue
        if name.endswith("#q"):
            base = name[:-2]
            shape = shapes[base]
            k = shape[3]
            rows = (t.float() * stored[base + "#scale"].float()).reshape(k, -1)
            n = shape[0] * shape[1] * shape[2]
            out[base] = rows[:, :n].t().reshape(shape).contiguous()
        else:
            out[name] = t.float()
    return out


def write_resume(tensors, path, state, group=GROUP):
    q, shapes = quantise_int8(tensors, group)
    write_safetensors(q, path, {"shapes": json.dumps(shapes), "state": json.dumps(state)})


def read_resume(path):
    """-> (TF-named fp32 tensors, state dict) from an int8 resume file or fp16 export (file or parts)."""
    paths = sorted(glob.glob(os.path.join(path, "*.safetensors"))) if os.path.isdir(path) else [path]
    if not paths:
        raise FileNotFoundError(f"{path}: no .safetensors files to resume from")
    stored, meta = read_sharded(paths)
    state = json.loads(meta.get("state", "{}"))
    if "shapes" in meta:
        return dequantise_int8(stored, json.loads(meta["shapes"])), state
    return {k: v.float() for k, v in stored.items()}, state


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("make-resume", help="int8 resume file from the returned fp16 export parts")
    a.add_argument("export", nargs="+", help="east_ema*.safetensors parts")
    a.add_argument("--out", required=True, help="resume .safetensors to write")
    a.add_argument("--group", type=int, default=GROUP, help="inputs sharing one scale (default %(default)s)")
    j = sub.add_parser("join", help="join export parts into one safetensors file (for eastrt)")
    j.add_argument("parts", nargs="+")
    j.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    tensors, meta = read_sharded(sorted(args.export if args.cmd == "make-resume" else args.parts))
    if args.cmd == "make-resume":
        state = json.loads(meta.get("state", "{}"))
        write_resume(tensors, args.out, state, args.group)
        print(f"{args.out}: {os.path.getsize(args.out) / 2**20:.1f} MiB, state {state}")
    else:
        write_sharded(tensors, args.out, None, meta)
        print(f"{args.out}: {len(tensors)} tensors, {os.path.getsize(args.out) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
