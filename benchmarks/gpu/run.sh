#!/usr/bin/env bash
# Everything liccs measures on a lent GPU machine, in one call (see benchmarks/gpu/README.md).
# Prepared here by benchmarks/gpu/prepare.sh (wheels in .whl/, data in .devdata/); run there, from the repo root:
#   bash benchmarks/gpu/run.sh            # results under $OUT (at most 8 files come back: tarballs + logs)
# Each step has its own time limit, so one that hangs or fails does not lose the others.
set -u
OUT=${OUT:-/tmp/liccs-gpu-out}
mkdir -p "$OUT"
WORK=/tmp/liccs-gpu
rm -rf "$WORK" && mkdir -p "$WORK"
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$SECONDS
step() { echo; echo "=== [$((SECONDS - t0)) s] $*"; }
# ONLY="tests mini profile bench" (any subset) reruns some steps; the default runs all of them
want() { [[ " ${ONLY:-env tests mini profile bench} " == *" $1 "* ]]; }

step "install the carried wheels"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD LICCS_DATA=$PWD/.devdata LICCS_CACHE=$WORK/cache LICCS_OFFLINE=1 PYTHONUNBUFFERED=1
export LICCS_COMMIT=$(cat .devdata/COMMIT 2>/dev/null || echo unknown)
export TQDM_DISABLE=1
LICCS="python3 -m liccs.cli"

want env && step "environment" && {
  nvidia-smi; python3 -c "import torch, torchvision, compressai, onnxruntime, numpy; print('torch', torch.__version__,
'cuda', torch.version.cuda, 'torchvision', torchvision.__version__, 'compressai', compressai.__version__,
'onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers(), 'numpy', numpy.__version__)"
  echo "--- tensorrt:"; python3 -c "import tensorrt; print(tensorrt.__version__)" 2>&1 | tail -1
  timeout 20 find / -xdev \( -name 'libnvinfer*' -o -name 'trtexec' \) 2>/dev/null | head -5
  echo "--- cached weights:"; ls -la ~/.cache/torch/hub/checkpoints ~/.cache/huggingface 2>&1 | head -20
  $LICCS doctor
} > "$OUT/env.txt" 2>&1
tail -25 "$OUT/env.txt"

want tests && step "GPU-marked tests" && timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu_paths.py tests/profiling/test_timer.py \
  2>&1 | tail -30

want mini && { step "mini zoo on the GPU: attacks on cuda, transfer to torch fp32/fp16/bf16 (and ort-cpu for reference)"
E='["torch", "torch-fp16", "torch-bf16", "ort-cpu"]'
timeout 200 $LICCS run quick-cpu --no-progress --out "$WORK/mini-cuda" \
  --set 'run.device="cuda"' --set run.threads=8 --set data.images=256 --set data.batch_size=128 \
  --set "export.engines=$E" --set "transfer.engines=$E" --set transfer.batch_size=256 --set profile.enabled=false \
  --set 'report.title="liccs on one GPU: CIFAR-scale LICCS (mini zoo), attacks on the GPU, transfer per precision"' \
  2>&1 | tail -8
tar -C "$WORK" -czf "$OUT/mini-cuda.tgz" --exclude=adversarial mini-cuda 2>/dev/null; }  # the images stay there

want profile && { step "per-stage profile on the GPU: torch fp32/fp16/bf16, copy/compute split, CUDA-graph replay"
timeout 320 $LICCS run gpu --no-progress --out "$WORK/gpu-profile" \
  --set 'models.weights="random"' --set 'models.codecs=["bmshj2018-hyperprior@q4", "mbt2018-mean@q4"]' \
  --set 'models.classifier="resnet50"' --set 'data.source="kodak"' --set data.images=4 --set data.batch_size=4 \
  --set 'export.engines=["torch", "torch-fp16", "torch-bf16"]' --set profile.warmup=2 --set profile.min_iters=5 \
  --set profile.min_duration_s=0.2 --set 'profile.batch_sizes=[1, 4]' \
  --set 'profile.resolutions=[[512, 768], [1088, 1920]]' --set 'profile.stages=["g_a", "h_a", "h_s", "g_s", "classifier"]' \
  --set profile.cuda_graph=true --set profile.matmul_n=8192 --set attack.enabled=false --set transfer.enabled=false \
  --set 'report.title="liccs on one GPU: per-stage latency (random weights: speed does not depend on them)"' \
  2>&1 | tail -8
tar -C "$WORK" -czf "$OUT/gpu-profile.tgz" gpu-profile 2>/dev/null; }

want bench && { step "benchmarks: PGD speed, profiler accuracy (CUDA events vs torch.utils.benchmark)"
mkdir -p "$WORK/bench"
timeout 80 python3 benchmarks/gpu_attack_speed.py --out "$WORK/bench" 2>&1 | tail -12
timeout 40 python3 benchmarks/profiler_accuracy.py --device cuda --rounds 6 --seconds 0.5 --out "$WORK/bench" \
  2>&1 | tail -6
tar -C "$WORK" -czf "$OUT/bench.tgz" bench 2>/dev/null; }

step "done"
ls -la "$OUT"
