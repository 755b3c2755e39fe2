#!/usr/bin/env bash
# The one command a device call runs: train for MINUTES on the carried train/.carry/ (resuming from its
# checkpoint if any), return the fp16 EMA export parts, state and log in $OUT, then evaluate a carried
# held-out part if there is one. Usage: bash train/run_on_device.sh PHASE [MINUTES] [extra train.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
phase="${1:?phase: synth or icdar}"; minutes="${2:-8.5}"; shift $(( $# >= 2 ? 2 : 1 ))
out="${OUT:?OUT is not set (run through the device tool)}"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, cv2, PIL, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cores', __import__('os').cpu_count())"
echo "fonts: $(ls train/.carry/fonts 2>/dev/null | wc -l)  icdar: $(ls train/.carry/icdar/images 2>/dev/null | wc -l)  heldout: $(ls train/.carry/heldout/images 2>/dev/null | wc -l)"
# Resume from the carried checkpoint, else from the bundled default model, unless the carry says FRESH.
resume=()
if [ -f train/.carry/ckpt/resume.safetensors ]; then resume=(--resume train/.carry/ckpt/resume.safetensors)
elif [ ! -f train/.carry/FRESH ] && [ -f models/east.safetensors ]; then resume=(--resume models/east.safetensors)
fi
echo "resume: ${resume[*]:-none (from scratch)}"
python3 train/train.py --phase "$phase" --minutes "$minutes" --out "$out" "${resume[@]}" "$@"
if [ -d train/.carry/heldout/images ]; then
  python3 train/eval_heldout.py --weights "$out" --heldout train/.carry/heldout --out "$out"
fi
ls -la "$out"
