#!/usr/bin/env bash
# One-command check of fiper's CUDA code paths on a GPU machine without a package index
# (docs/benchmarks.md, "GPU check").
#
#   python -m benchmarks.gpu_wheels         # first, on a machine that reaches an index: fills wheels/
#   bash benchmarks/gpu_check.sh            # then on the GPU machine, from the repository root, wheels/ beside it
#
# The GPU machine brings Python 3.12 with a CUDA torch (and numpy, numba, matplotlib, tqdm,
# safetensors, pyyaml, imageio); nothing is downloaded. Steps:
# 1. nvidia-smi must work, else nothing is installed (exit 3).
# 2. .venv-gpu: a venv over the system site-packages (the preinstalled torch stays the one used),
#    with the rest of fiper's requirements from wheels/ (pip --no-index --find-links wheels/) and
#    fiper itself (pip install --no-deps -e .). Reused when it already imports everything.
# 3. Stages, each logged to $OUT (else ./gpu_check_out), a failed one does not stop the rest:
#    torch sees the GPU; host synchronisations counted with torch.cuda.set_sync_debug_mode
#    (tests/interventions/test_steering_sync.py: none inside a steered sampling loop, one per plain
#    monitored decision); the CUDA tests (tests/**/test_cuda_*.py); the four benchmarks that take
#    --device (monitor, sampling, runtime, interventions) with --device cuda. FULL_SUITE=1 adds the
#    whole test suite. STAGE_TIMEOUT (s, default 300) bounds each stage.
# 4. The figures: the runtime table (with syncs per decision) and the target, monitored decision
#    <= 1.2x the unmonitored one at B = 32.
# Exit status: 0 when every stage passed, no CUDA test was skipped and the target was met; else 1.
set -u

OUT_DIR="${OUT:-./gpu_check_out}"
mkdir -p "$OUT_DIR" && : > "$OUT_DIR/summary.txt"
VENV=.venv-gpu
PY="$VENV/bin/python"
WHEELS="${WHEELS:-wheels}"
STAGE_TIMEOUT="${STAGE_TIMEOUT:-300}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"

say() { echo "[gpu_check] $*" | tee -a "$OUT_DIR/summary.txt"; }
die() { say "ERROR: $1"; exit "$2"; }

[ -f pyproject.toml ] && [ -d fiper ] || die "run me from the repository root (no pyproject.toml / fiper here)" 4
command -v timeout > /dev/null 2>&1 || timeout() { shift; "$@"; }  # coreutils' timeout, else no limit

# ---------------------------------------------------------------- GPU present?
if ! nvidia-smi > "$OUT_DIR/nvidia-smi.txt" 2>&1; then
    die "nvidia-smi failed (see $OUT_DIR/nvidia-smi.txt): no NVIDIA GPU/driver visible, nothing to check" 3
fi
say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"

# ---------------------------------------------------------------- environment (offline)
ready() { "$PY" -c "import torch, fiper, policies, zarr, mujoco, gymnasium, hydra, pytest; assert torch.cuda.is_available()" > /dev/null 2>&1; }
if [ -x "$PY" ] && ready; then
    say "reusing $VENV"
else
    BASE=""
    for cand in "${PYTHON:-}" python3.12 python3 python; do
        [ -n "$cand" ] && command -v "$cand" > /dev/null 2>&1 || continue
        if "$cand" -c 'import sys, torch; sys.exit(sys.version_info < (3, 11) or torch.version.cuda is None)' > /dev/null 2>&1; then
            BASE="$cand"; break
        fi
    done
    [ -n "$BASE" ] || die "no python (>= 3.11) on PATH imports a CUDA build of torch; set PYTHON=<the interpreter that has it>" 2
    say "base interpreter: $(command -v "$BASE") ($("$BASE" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "CUDA", torch.version.cuda)'))"
    [ -f "$WHEELS/requirements.txt" ] || die "no $WHEELS/requirements.txt: run 'python -m benchmarks.gpu_wheels' on a machine with a package
    index and bring the wheels/ folder it fills (about 40 MiB) beside the repository (or set WHEELS=<folder>)" 2
    rm -rf "$VENV"
    if ! "$BASE" -m venv --system-site-packages "$VENV" > "$OUT_DIR/install.log" 2>&1; then  # no ensurepip: the base pip installs into it
        rm -rf "$VENV"
        "$BASE" -m venv --system-site-packages --without-pip "$VENV" >> "$OUT_DIR/install.log" 2>&1 \
            || die "'$BASE -m venv --system-site-packages $VENV' failed (see $OUT_DIR/install.log; on Debian/Ubuntu the venv module is python3-venv)" 2
    fi
    PIP=("$PY" -m pip); "$PY" -m pip --version > /dev/null 2>&1 || PIP=("$BASE" -m pip --python "$PY")
    say "installing $(tr '\n' ' ' < "$WHEELS/requirements.txt")from $WHEELS/ and fiper (--no-deps -e .) into $VENV (log: $OUT_DIR/install.log)"
    { "${PIP[@]}" install --no-index --find-links "$WHEELS" -r "$WHEELS/requirements.txt" \
      && "${PIP[@]}" install --no-index --no-deps --no-build-isolation -e .; } >> "$OUT_DIR/install.log" 2>&1 \
        || { tail -n 5 "$OUT_DIR/install.log"; die "offline install failed (see $OUT_DIR/install.log): a wheel missing from $WHEELS/ is named there; rebuild the folder with python -m benchmarks.gpu_wheels" 2; }
    "$PY" -c "import torch, sys; sys.exit(torch.version.cuda is None)" \
        || die "the venv's torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>&1)) is a CPU build: something in $WHEELS/ replaced the preinstalled torch" 2
fi
"$PY" -m pip list --format=freeze > "$OUT_DIR/pip_freeze.txt" 2>&1

# ---------------------------------------------------------------- stages
NAMES=(); CODES=(); SECS=()
stage() {  # stage NAME COMMAND... : run with a time limit, log to $OUT_DIR/NAME.log, record the exit status
    local name="$1"; shift
    local start=$SECONDS rc
    say "stage $name: $*"
    timeout "$STAGE_TIMEOUT" "$@" > "$OUT_DIR/$name.log" 2>&1
    rc=$?
    tail -n 15 "$OUT_DIR/$name.log"
    NAMES+=("$name"); CODES+=("$rc"); SECS+=("$((SECONDS - start))")
    say "stage $name: exit $rc ($((SECONDS - start)) s)"
}

stage torch_cuda "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch does not see the GPU'; \
print(torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.get_device_name(0))"
stage syncs "$PY" -m pytest -q -rs -p no:cacheprovider tests/interventions/test_steering_sync.py
mapfile -t CUDA_TESTS < <(find tests -name 'test_cuda_*.py' | sort)
stage pytest_cuda "$PY" -m pytest -q -rs -p no:cacheprovider --junitxml="$OUT_DIR/pytest_cuda.xml" "${CUDA_TESTS[@]}"
stage bench_runtime "$PY" -m benchmarks.runtime --device cuda --repeats 30
stage bench_runtime_diffusion "$PY" -m benchmarks.runtime --device cuda --repeats 30 --kind diffusion
stage bench_monitor "$PY" -m benchmarks.monitor --device cuda --episodes 20
stage bench_sampling "$PY" -m benchmarks.sampling --device cuda
stage bench_interventions "$PY" -m benchmarks.interventions --device cuda
if [ "${FULL_SUITE:-0}" = "1" ]; then
    stage pytest_full "$PY" -m pytest -q -rs -p no:cacheprovider
fi

# ---------------------------------------------------------------- figures and summary
failed=0
say "runtime (one decision through MonitoredPolicy; ratios paired per repeat; syncs counted by torch):"
grep -E '^ *(B|[0-9]+) \||^target' "$OUT_DIR/bench_runtime.log" "$OUT_DIR/bench_runtime_diffusion.log" 2>/dev/null | tee -a "$OUT_DIR/summary.txt"
if ! grep -q "^target monitored.*(met)" "$OUT_DIR/bench_runtime.log" 2>/dev/null; then
    say "  target monitored <= 1.2x bare at B = 32: not met or not measured (see bench_runtime.log)"
    failed=1
fi
say "summary (logs in $OUT_DIR):"
for i in "${!NAMES[@]}"; do
    status=ok; [ "${CODES[$i]}" = 0 ] || { status="FAILED (exit ${CODES[$i]})"; failed=1; }
    [ "${CODES[$i]}" = 124 ] && status="TIMED OUT after ${STAGE_TIMEOUT} s"
    say "  $(printf '%-24s %-24s %5s s' "${NAMES[$i]}" "$status" "${SECS[$i]}")"
done
if grep -q "SKIPPED" "$OUT_DIR/pytest_cuda.log" "$OUT_DIR/syncs.log" 2>/dev/null; then
    say "  note: some CUDA tests were skipped (see pytest_cuda.log, syncs.log): they did not run"
    failed=1
fi
exit "$failed"
