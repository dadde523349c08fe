#!/bin/bash
# One call on a GPU machine (the device tool): the GPU figures of the shipped models, a GPU training round and its
# figures; what it writes under $OUT comes back (at most 8 files of 16 MiB: the model in two parts). Prepare gpu/
# with scripts/device_payload.py and carry gpu, runs/gband-trainset and, where the machine lacks them, wheels (.whl).
# Usage: [SHIPPED=0] [PASTE=0.5] bash scripts/device_round.sh [DEVICE [MINUTES [LIMIT]]]
# SHIPPED=0 skips the shipped models' GPU figures (about 2.5 minutes, measured in the first round) to train longer:
# with a 600 s call, MINUTES 7 leaves time for the new model's figures. PASTE: share of real crops given pasted
# copies of their own chromosomes (copy-paste augmentation: more found than its matched CPU control, BENCHMARKS.md).
DEV=${1:-cuda}; MIN=${2:-5}; LIMIT=${3:-}; SHIPPED=${SHIPPED:-1}; PASTE=${PASTE:-0.5}
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpuout}; mkdir -p $OUT
ROOT=$PWD
if [ -d .whl ]; then  # packages the machine lacks (platformdirs, pycocotools), as wheels
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
{
date -u; nvidia-smi -L 2>&1 | head -2; nproc
python3 -c "import torch,torchvision,numpy,skimage;print('torch',torch.__version__,'tv',torchvision.__version__,'np',numpy.__version__,'skimage',skimage.__version__,'cuda',torch.cuda.is_available())"
if [ "$SHIPPED" != 0 ]; then
  cd $ROOT/benchmarks
  echo "== shipped models, G-band validation, $DEV"; date -u
  timeout 90 python3 gband_spreads.py --data ../gpu/data --truth ../gpu/imports --device $DEV ${LIMIT:+--limit $LIMIT} --json $OUT/gband_shipped.json | tail -30
  echo "== prompt speed, $DEV"; date -u
  timeout 45 python3 prompt_speed.py --data ../gpu/data --limit 2 --device $DEV --json $OUT/prompt.json | tail -30
fi
cd $ROOT
echo "== training"; date -u
timeout $(awk "BEGIN{print int($MIN*60+100)}") python3 -m napari_karyo.cli train --config configs/maskrcnn-gband-gpu.yaml --data gpu/data --device $DEV --max-minutes $MIN --paste $PASTE --out runs/gpu1 2>&1 | tail -15
date -u
cp runs/gpu1/log.jsonl $OUT/train_log.jsonl 2>/dev/null
if [ -f runs/gpu1/model.safetensors ]; then
  cp runs/gpu1/model.json $OUT/model.json
  split -b 12m runs/gpu1/model.safetensors $OUT/model.part-
  cd $ROOT/benchmarks
  echo "== new model, G-band validation, $DEV"; date -u
  timeout 60 python3 gband_spreads.py --data ../gpu/data --truth ../gpu/imports --device $DEV ${LIMIT:+--limit $LIMIT} --model ../runs/gpu1/model.safetensors --json $OUT/gband_new.json | tail -30
fi
date -u
} 2>&1 | tee $OUT/log.txt
