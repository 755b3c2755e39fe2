# Resumable EAST training in time-boxed runs (--minutes) that fit one device call: synthetic text first
# (--phase synth), then ICDAR img_1-250 (--phase icdar); writes the EMA export, state and a JSONL log.
import argparse
import json
import math
import os
import sys
import time

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checkpoint import read_resume  # noqa: E402
from east_model import EAST, WeightEMA, export_safetensors, load_tf_tensors  # noqa: E402
from icdar import IcdarSamples  # noqa: E402
from loss import east_loss  # noqa: E402
from synth import SynthText  # noqa: E402
from targets import make_targets  # noqa: E402

PART_BYTES = 15 * 2**20  # each returned file <= 16 MiB


class TrainingStream(torch.utils.data.IterableDataset):
    """Endless (image, score, geo, mask) samples; each worker has its own RNG stream per run."""

    def __init__(self, phase, fonts, icdar_root, size, seed, synth_in_icdar=0.25):
        self.phase, self.fonts, self.icdar_root, self.size, self.seed = phase, fonts, icdar_root, size, seed
        self.synth_in_icdar = synth_in_icdar

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        rng = np.random.default_rng([self.seed, wid])
        synth = SynthText(self.fonts, self.icdar_root, self.size) if self.fonts else None
        real = None
        if self.phase == "icdar":  # share the decoded-image cache with the synthetic backgrounds
            real = synth.icdar if synth is not None and synth.icdar is not None else IcdarSamples(self.icdar_root,
                                                                                                  self.size)
        while True:
            if real is not None and (synth is None or rng.random() >= self.synth_in_icdar):
                img, quads, dc = real.sample(rng)
            else:
                img, quads, dc = synth.sample(rng)
            if rng.random() < 0.2:  # grey images, like dim/low-colour scenes
                img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
            score, geo, mask = make_targets(self.size, self.size, quads, dc)
            yield (torch.from_numpy(np.ascontiguousarray(img)), torch.from_numpy(score[None]),
                   torch.from_numpy(geo.transpose(2, 0, 1).copy()), torch.from_numpy(mask[None]))


def lr_at(step, args, start_step):
    """Reference: 1e-4, x0.94 every 10k steps (staircase). From scratch: linear warm-up to --lr; after a
    resume (optimizer moments are not carried) a short re-warm-up."""
    warm = min(1.0, (step + 1) / max(args.warmup_steps, 1))
    if start_step > 0:
        warm = min(warm, (step - start_step + 1) / max(args.rewarm_steps, 1))
    return args.lr * warm * (0.94 ** (step // args.decay_steps))


def param_groups(model, weight_decay):
    # slim's l2_regularizer(1e-5) is on conv weights only; with Adam it is a gradient term, as Adam's
    # (coupled) weight_decay is: d/dw (wd/2 * w^2) = wd * w.
    decay = [p for n, p in model.named_parameters() if p.dim() == 4]
    rest = [p for n, p in model.named_parameters() if p.dim() != 4]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def save(model, ema, out_dir, state):
    for f in os.listdir(out_dir):
        if f.startswith("east_ema") and f.endswith(".safetensors"):
            os.remove(os.path.join(out_dir, f))
    paths = export_safetensors(model, os.path.join(out_dir, "east_ema.safetensors"), torch.float16, ema,
                               PART_BYTES, {"state": json.dumps(state)})
    with open(os.path.join(out_dir, "state.json.tmp"), "w") as f:
        json.dump(state, f, indent=1)
    os.replace(os.path.join(out_dir, "state.json.tmp"), os.path.join(out_dir, "state.json"))
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train EAST (ResNet-50, TF-slim layout) from scratch, resumably")
    ap.add_argument("--phase", choices=["synth", "icdar"], required=True)
    ap.add_argument("--fonts", default="train/.carry/fonts")
    ap.add_argument("--icdar", default="train/.carry/icdar", help="img_N.jpg (N<=250) under images/, gt/")
    ap.add_argument("--resume", help="int8 resume file or folder of fp16 export parts")
    ap.add_argument("--out", required=True, help="folder for east_ema*.safetensors, state.json, log")
    ap.add_argument("--minutes", type=float, default=8.5, help="wall-clock budget including start-up")
    ap.add_argument("--checkpoint-minutes", type=float, default=3.0)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: time only)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=14)
    ap.add_argument("--lr", type=float, default=None, help="peak lr (default 5e-4 synth, 1e-4 icdar)")
    ap.add_argument("--warmup-steps", type=int, default=1500)
    ap.add_argument("--rewarm-steps", type=int, default=200)
    ap.add_argument("--decay-steps", type=int, default=10000)
    ap.add_argument("--weight-decay", type=float, default=1e-5)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=None, help="default: derived from the resumed step")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args(argv)
    if args.lr is None:
        args.lr = 5e-4 if args.phase == "synth" else 1e-4
    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    model = EAST()
    state = {"step": 0, "images": 0, "runs": 0, "phases": []}
    if args.resume:
        tensors, state = read_resume(args.resume)
        load_tf_tensors(model, tensors)
        state.setdefault("step", 0)
        state.setdefault("images", 0)
        state.setdefault("runs", 0)
        state.setdefault("phases", [])
        print(f"resumed from {args.resume} at step {state['step']}", flush=True)
    model = model.to(dev).to(memory_format=torch.channels_last)
    ema = WeightEMA(model)  # after a resume the carried weights are the EMA shadows: raw = shadow
    opt = torch.optim.Adam(param_groups(model, args.weight_decay), lr=args.lr)
    fwd = torch.compile(model) if args.compile else model
    start_step = step = int(state["step"])
    seed = args.seed if args.seed is not None else 1000003 * (state["runs"] + 1) + step

    fonts = args.fonts if os.path.isdir(args.fonts) else None
    icdar = args.icdar if os.path.isdir(args.icdar) else None
    if fonts is None and (args.phase == "synth" or icdar is None):
        raise SystemExit(f"{args.fonts}: no fonts folder (run train/pack_fonts.sh / prepare_carry.sh)")
    if args.phase == "icdar" and icdar is None:
        raise SystemExit(f"{args.icdar}: no ICDAR folder for --phase icdar (run train/prepare_carry.sh)")
    stream = TrainingStream(args.phase, fonts, icdar, args.size, seed)
    loader = torch.utils.data.DataLoader(stream, batch_size=args.batch, num_workers=args.workers,
                                         pin_memory=dev.type == "cuda", persistent_workers=args.workers > 0,
                                         prefetch_factor=4 if args.workers > 0 else None)
    log = open(os.path.join(args.out, "train_log.jsonl"), "a")
    amp = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    model.train()
    last_ckpt = time.time()
    win = {"loss": 0.0, "cls": 0.0, "aabb": 0.0, "theta": 0.0, "n": 0, "wait": 0.0, "t": time.time()}
    t_wait = time.time()
    print(f"start-up {time.time() - t0:.1f} s; phase {args.phase}, step {step}, lr {args.lr}", flush=True)

    def snapshot():
        st = dict(state, step=step, images=state["images"], phase=args.phase, lr_peak=args.lr,
                  wall_s=round(time.time() - t0, 1))
        return st

    for img, gt_score, gt_geo, mask in loader:
        win["wait"] += time.time() - t_wait
        img = img.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().contiguous(
            memory_format=torch.channels_last)
        gt_score, gt_geo, mask = (t.to(dev, non_blocking=True) for t in (gt_score, gt_geo, mask))
        lr = lr_at(step, args, start_step)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(**amp):
            score, geo = fwd(img)
        loss, parts = east_loss(score, geo, gt_score, gt_geo, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model, step)
        step += 1
        state["images"] += img.shape[0]
        win["loss"] += loss.detach()
        for k in ("cls", "aabb", "theta"):
            win[k] += parts[k]
        win["n"] += 1
        if step % args.log_every == 0 or step == args.max_steps:
            n, dt = win["n"], time.time() - win["t"]
            rec = {"step": step, "phase": args.phase, "lr": lr, "time_s": round(time.time() - t0, 1),
                   "img_per_s": round(n * args.batch / dt, 1), "data_wait": round(win["wait"] / dt, 3)}
            for k in ("loss", "cls", "aabb", "theta"):
                rec[k] = float(win[k]) / n
            if not math.isfinite(rec["loss"]):
                raise SystemExit(f"non-finite loss at step {step}: {rec}")
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            win = {"loss": 0.0, "cls": 0.0, "aabb": 0.0, "theta": 0.0, "n": 0, "wait": 0.0, "t": time.time()}
        done = (args.max_steps and step - start_step >= args.max_steps) or time.time() - t0 > args.minutes * 60
        if done or time.time() - last_ckpt > args.checkpoint_minutes * 60:
            st = snapshot()
            if done:
                st["runs"] = state["runs"] + 1
                st["phases"] = state["phases"] + [[args.phase, start_step, step]]
            save(model, ema, args.out, st)
            last_ckpt = time.time()
        if done:
            break
        t_wait = time.time()
    log.close()
    print(f"done: step {step}, {time.time() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
