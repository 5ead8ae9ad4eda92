#!/usr/bin/env bash
# The GPU checks of issue 14 as one prepared run, for a session that is lent a GPU machine (15 minutes of device
# time in all, 10 per command; that machine has PyTorch, torchvision, timm, PyYAML, SciPy, matplotlib and pytest,
# no network and no ../shared/data). From the repository root there:
#
#   bash benchmarks/gpu_check.sh                 # writes into $OUT (the device tool's folder), else ./gpu-check
#   GPU_CHECK_SMOKE=1 bash benchmarks/gpu_check.sh   # the same steps, tiny, on any machine (checks this script)
#   GPU_CHECK_STEPS=4 bash benchmarks/gpu_check.sh   # some steps only (the rest of a run a limit cut short)
#
# Expected about 6 minutes in all (an estimate: not yet timed there): run it as one device command with the
# longest timeout (600 s). The per-step limits below are guards against a hang, not a budget (they add up to more);
# `timeout -k` kills a step 15 s after asking it to stop (the trainer stops at the end of a step).
# PYTHON=... picks the interpreter (default: the checkout's .venv/bin/python where `make install` made one, else
# python3). The last line names the steps that failed, and so does the exit status (0: none failed).
# Steps, each time-limited, each reporting and the next running whatever it gave:
#   1. the machine: GPU name and driver, torch / torchvision / timm versions           -> gpu-check.log
#   2. the tests that take a CUDA path when one exists (functional, trainer, device)  -> tests.log
#   3. bench_mixing.py --device cuda: float32 / bfloat16 / uint8 vs timm and torchvision -> <tag>.json / <tag>.md
#   4. the lab's trainer end to end on the GPU, two epochs of the paper's CIFAR-10 PreAct ResNet-18 row (mixup,
#      batch 128) on a CIFAR-10-shaped tree of random JPEGs (fake_cifar10.py: speed only, labels random), in
#      fp32, bf16 + channels_last, and bf16 + channels_last + torch.compile; the second epoch's record is the
#      epoch time (the first holds the warm-up and the compilation)                 -> trainer.jsonl
# No DDP step: NCCL needs one GPU per process and the machine has one (tests/experiments/test_distributed.py
# covers the gloo path on CPUs).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-$PWD/gpu-check}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu-check.log"
# the project's venv where there is one (make install), else the machine's python3 (the GPU machine's holds torch)
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="${PYTHON:-python3}"; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
SCRATCH="$(mktemp -d)"
export VICINAL_CACHE="$SCRATCH/cache"  # the decoded random images: not into a user's cache
if [ -n "${GPU_CHECK_SMOKE:-}" ]; then
    DEVICE=cpu PER_CLASS=12 TEST_PER_CLASS=4 STEPS=3 BENCH="--sizes small --repeats 10 --warmup 1 --dtypes float32"
else
    DEVICE=cuda PER_CLASS=5000 TEST_PER_CLASS=1000 STEPS= BENCH=""
fi
TAG="${GPU_CHECK_TAG:-gpu-$DEVICE}"

STEPS_WANTED=",${GPU_CHECK_STEPS:-1,2,3,4},"

FAILED=()

step() { echo "== $* ($(date -u +%H:%M:%S))" | tee -a "$LOG"; }
# note(name, status): a failed step is named in the last line and in the exit status; the next step runs
note() { [ "$2" -eq 0 ] || FAILED+=("$1"); }
want() { [[ "$STEPS_WANTED" == *",$1,"* ]]; }

if want 1; then
step "1. machine"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi: not found"
    "$PY" -c "import timm; print('timm', timm.__version__)" 2>/dev/null || echo "timm: not installed"
    # last, so that its status is the step's: nothing below runs without torch
    "$PY" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'cuda', torch.cuda.is_available() and torch.cuda.get_device_name())"
} 2>&1 | tee -a "$LOG"
note machine "${PIPESTATUS[0]}"
fi

if want 2; then
step "2. tests with a CUDA path"
timeout -k 15 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_functional.py tests/experiments/test_trainer.py \
    tests/experiments/test_distributed.py >"$OUT_DIR/tests.log" 2>&1
status=$?
note tests "$status"
echo "pytest exit $status: $(tail -n 1 "$OUT_DIR/tests.log")" | tee -a "$LOG"
fi

if want 3; then
step "3. mixing benchmark on $DEVICE"
# shellcheck disable=SC2086  # BENCH is a list of options
timeout -k 15 240 "$PY" benchmarks/bench_mixing.py --device "$DEVICE" --only mix --tag "$TAG" $BENCH 2>&1 |
    tail -n 60 >>"$LOG"
status=${PIPESTATUS[0]}
note bench "$status"
echo "bench_mixing exit $status" | tee -a "$LOG"
for f in json md; do mv "benchmarks/results/$TAG.$f" "$OUT_DIR/" 2>>"$LOG"; done  # out of the checkout
fi

if want 4; then
step "4. trainer, two epochs of cifar/paper/cifar10-preact_resnet18-mixup on random JPEGs"
timeout -k 15 60 "$PY" benchmarks/fake_cifar10.py "$SCRATCH/data" --per-class "$PER_CLASS" \
    --test-per-class "$TEST_PER_CLASS" --workers 8 2>&1 | tee -a "$LOG"
note fake-data "${PIPESTATUS[0]}"
: >"$OUT_DIR/trainer.jsonl"
# name:limit:overrides (each run: decoding the 60,000 images, two epochs, two evaluations; compile takes longer)
for setting in "fp32:140:train.amp=none" "bf16-cl:140:train.amp=bf16 train.channels_last=true" \
    "bf16-cl-compile:240:train.amp=bf16 train.channels_last=true train.compile=true"; do
    name="${setting%%:*}" rest="${setting#*:}"
    limit="${rest%%:*}" overrides="${rest#*:}"
    # shellcheck disable=SC2086  # $overrides is several words
    timeout -k 15 "$limit" "$PY" -m vicinal train cifar/paper/cifar10-preact_resnet18-mixup --data "$SCRATCH/data" --quiet \
        --out "$SCRATCH/runs/$name" --set 'data.kwargs={source: jpeg}' train.epochs=2 "train.device=$DEVICE" \
        ${STEPS:+train.max_steps=$STEPS} $overrides >>"$LOG" 2>&1
    status=$?
    note "$name" "$status"
    echo "$name: exit $status" | tee -a "$LOG"
    metrics=$(find "$SCRATCH/runs/$name" -name metrics.jsonl | head -n 1)
    [ -n "$metrics" ] && "$PY" -c "import json, sys; r = json.loads(open(sys.argv[1]).readlines()[-1]); \
r['setting'] = sys.argv[2]; print(json.dumps(r))" "$metrics" "$name" | tee -a "$OUT_DIR/trainer.jsonl" >>"$LOG"
done
fi
rm -rf "$SCRATCH"
step "done; files in $OUT_DIR; ${#FAILED[@]} step(s) failed${FAILED[*]:+: ${FAILED[*]}}"
[ "${#FAILED[@]}" -eq 0 ]
