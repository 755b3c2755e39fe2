#!/usr/bin/env bash
# Assembles the git-ignored train/.carry/ for the next device call (fonts, ICDAR img_1-250 + gt, the int8
# resume checkpoint made from the previous call's returned export, optionally a held-out part) and checks
# that it fits the 64 MiB that travel together with the working tree.
# Usage: train/prepare_carry.sh [--from DIR_OF_RETURNED_FILES] [--fresh] [--icdar all|odd|even|auto]
#                               [--heldout K/N] [--no-fonts]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
data="${ICDAR_DATA:-/work/shared/data/icdar2015/test}"
py="${PYTHON:-$repo/.venv-train/bin/python}"
carry="$here/.carry"
limit=$((64 * 1024 * 1024 - 512 * 1024))  # keep half a MiB of slack
from=""; fresh=0; icdar="auto"; heldout=""; fonts=1
while [ $# -gt 0 ]; do
  case "$1" in
    --from) from="$2"; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --icdar) icdar="$2"; shift 2 ;;
    --heldout) heldout="$2"; shift 2 ;;
    --no-fonts) fonts=0; shift ;;
    *) echo "prepare_carry: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
mkdir -p "$carry"

# fonts
if [ $fonts = 1 ]; then
  [ -n "$(ls "$carry/fonts" 2>/dev/null)" ] || "$here/pack_fonts.sh"
else
  rm -rf "$carry/fonts"
fi

# resume checkpoint: from the returned export parts (fp16, ~46 MiB: too big to carry) to int8 (~24 MiB)
rm -f "$carry/FRESH"
if [ $fresh = 1 ]; then
  rm -rf "$carry/ckpt"
  touch "$carry/FRESH"  # run_on_device.sh: start from scratch, not from the bundled model
elif [ -n "$from" ]; then
  ls "$from"/east_ema*.safetensors >/dev/null 2>&1 || { echo "prepare_carry: $from has no east_ema*.safetensors" >&2; exit 1; }
  step=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$from/state.json")
  keep="$here/runs/step_$step"; mkdir -p "$keep"; cp "$from"/* "$keep"/  # local history (git-ignored)
  mkdir -p "$carry/ckpt"
  "$py" "$here/checkpoint.py" make-resume "$from"/east_ema*.safetensors --out "$carry/ckpt/resume.safetensors"
fi
# The bundled model travels in the tree anyway: when it is the resume point, do not carry it twice.
if cmp -s "$carry/ckpt/resume.safetensors" "$repo/models/east.safetensors" 2>/dev/null; then
  rm -rf "$carry/ckpt"
  echo "resuming from the bundled models/east.safetensors (identical to the returned export's int8 form)"
fi

# sizes that travel besides train/.carry: tracked + untracked-not-ignored files of the checkout
tree=$(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 -r stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
used() { du -sb "$carry" | cut -f1; }

# held-out part K/N (img_251-img_500 in N contiguous chunks) for eval_heldout.py: never trained on
rm -rf "$carry/heldout"
if [ -n "$heldout" ]; then
  k=${heldout%/*}; n=${heldout#*/}
  mkdir -p "$carry/heldout/images" "$carry/heldout/gt"
  per=$(( (250 + n - 1) / n )); a=$((251 + (k - 1) * per)); b=$((a + per - 1)); [ $b -le 500 ] || b=500
  for i in $(seq $a $b); do
    cp "$data/images/img_$i.jpg" "$carry/heldout/images/"; cp "$data/gt/gt_img_$i.txt" "$carry/heldout/gt/"
  done
fi

# ICDAR training images: all 250 if they fit, else the odd or even half (alternate per run)
rm -rf "$carry/icdar"; mkdir -p "$carry/icdar/images" "$carry/icdar/gt"
all_bytes=$(for i in $(seq 1 250); do stat -c %s "$data/images/img_$i.jpg" "$data/gt/gt_img_$i.txt"; done | awk '{s+=$1} END {print s}')
if [ "$icdar" = auto ]; then
  if [ $((tree + $(used) + all_bytes)) -le $limit ]; then icdar=all
  else
    runs=0; [ -n "$from" ] && runs=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1])).get('runs',0))" "$from/state.json")
    [ $((runs % 2)) = 0 ] && icdar=odd || icdar=even
  fi
fi
for i in $(seq 1 250); do
  case "$icdar" in odd) [ $((i % 2)) = 1 ] || continue ;; even) [ $((i % 2)) = 0 ] || continue ;; all) ;;
    *) echo "prepare_carry: --icdar must be all, odd, even or auto" >&2; exit 2 ;; esac
  cp "$data/images/img_$i.jpg" "$carry/icdar/images/"; cp "$data/gt/gt_img_$i.txt" "$carry/icdar/gt/"
done

total=$((tree + $(used)))
echo "carry list: [\"train/.carry\"]"
for d in fonts icdar heldout ckpt; do
  [ -e "$carry/$d" ] && printf '  %-8s %6.1f MiB\n' "$d" "$(du -sb "$carry/$d" | cut -f1 | awk '{print $1/1048576}')"
done
printf '  icdar set: %s (%d images)\n' "$icdar" "$(ls "$carry/icdar/images" | wc -l)"
printf '  tree (tracked + untracked, not ignored): %.1f MiB\n' "$(echo $tree | awk '{print $1/1048576}')"
printf '  total that travels: %.1f MiB of 64\n' "$(echo $total | awk '{print $1/1048576}')"
if [ $total -gt $limit ]; then
  echo "prepare_carry: too big; use --icdar odd|even, a smaller --heldout part or --no-fonts" >&2; exit 1
fi
