#!/usr/bin/env bash
# The prepared GPU check (issues 31 and 32): one NVIDIA GPU, no network, at most 8 minutes.
#   bash benchmarks/gpu/run.sh            # writes benchmarks/results/gpu_*.md/csv/png and, where $OUT is set
#                                         # (the device tool), a copy of them plus the log under $OUT
# Runs from a checkout without installing anything: PYTHONPATH is the checkout (../shared/GPU.md). Each stage has
# its own time limit, so a stage that hangs or fails is recorded and the next one still runs.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PY:-python3}
RES=benchmarks/results
DEST=${OUT:-$RES}
mkdir -p "$DEST"
LOG="$DEST/gpu_run.log"
T0=$(date +%s)
stage() {  # stage NAME SECONDS CMD...: run with a limit, log its exit status and time
  local name=$1 limit=$2; shift 2
  local s=$(date +%s)
  echo "=== $name (limit ${limit}s, at +$((s - T0))s)" | tee -a "$LOG"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc in $(( $(date +%s) - s ))s" | tee -a "$LOG"
}
: > "$LOG"
stage machine 30 bash -c "nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu --format=csv; \
  $PY -c 'import torch; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name(0))'; nproc; uptime"
# The GPU tests (they skip only where the hardware is absent; here nothing may skip for want of a GPU).
T=tests/test_train_device.py
GPU_TESTS=${GPU_TESTS:-"tests/test_gpu_targets.py tests/test_deploy.py::test_every_device_runs_the_same_loop \
  $T::test_cuda_training_resumes_on_the_cpu_within_seed_noise $T::test_cuda_and_bf16_train_on_the_gpu \
  $T::test_executor_slots_spread_gpus_and_leave_the_cpu_alone $T::test_auto_resolves_to_what_is_here_and_precision_per_device \
  tests/test_search.py::test_darts_searches_on_the_gpu_and_resumes_on_the_cpu"}
stage gpu-tests 90 $PY -m pytest -q -p no:cacheprovider -rs -n 4 $GPU_TESTS
stage gpu-train 215 $PY benchmarks/gpu/train.py --budget-s 200 --out "$RES"
stage gpu-target 175 $PY benchmarks/gpu/target.py --budget-s 160 --out "$RES"
echo "=== total $(( $(date +%s) - T0 ))s" | tee -a "$LOG"
if [ "$DEST" != "$RES" ]; then  # the device tool returns at most 8 files: the reports, plus everything in one tarball
  cp "$RES"/gpu_train.md "$RES"/gpu_target.md "$DEST"/ 2>/dev/null
  tar czf "$DEST/gpu_results.tgz" "$RES"/gpu_* 2>/dev/null
fi
