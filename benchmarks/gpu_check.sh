#!/usr/bin/env bash
# One-command check of fiper's CUDA code paths on a fresh GPU machine (docs/benchmarks.md, "GPU check").
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# 1. nvidia-smi must work, else nothing is installed (exit 3).
# 2. .venv-gpu: python3.11 (or python3 >= 3.11) venv with the pinned torch from the default index
#    (on Linux x86_64 that is the CUDA build) and the project with its dev extra. An existing
#    .venv-gpu whose torch sees the GPU is reused. No reachable index: a clear message, exit 2.
# 3. Stages, each logged to $OUT (else ./gpu_check_out), a failed one does not stop the rest:
#    the CUDA tests (tests/scores/test_cuda.py, tests/policies/test_cuda_policies.py,
#    tests/control/test_cuda_control.py) and the benchmarks that take --device (monitor,
#    sampling, runtime, interventions) with --device cuda. FULL_SUITE=1 also runs the whole
#    test suite on the GPU machine. STAGE_TIMEOUT (s, default 900) bounds each stage.
# Exit status: 0 when every stage passed, 1 otherwise.
set -u

OUT_DIR="${OUT:-./gpu_check_out}"
mkdir -p "$OUT_DIR" && : > "$OUT_DIR/summary.txt"
VENV=.venv-gpu
PY="$VENV/bin/python"
STAGE_TIMEOUT="${STAGE_TIMEOUT:-900}"
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

# ---------------------------------------------------------------- environment
ready() { "$PY" -c "import torch, fiper, policies, pytest; assert torch.cuda.is_available()" > /dev/null 2>&1; }
if [ -x "$PY" ] && ready; then
    say "reusing $VENV"
else
    BASE=""
    for cand in python3.11 python3; do
        if command -v "$cand" > /dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            BASE="$cand"; break
        fi
    done
    [ -n "$BASE" ] || die "need python3.11 (or a python3 >= 3.11) on PATH" 2
    [ -x "$PY" ] || "$BASE" -m venv "$VENV" || die "'$BASE -m venv $VENV' failed (on Debian/Ubuntu: apt-get install python3-venv)" 2
    TORCH_PIN=$(grep -o '"torch==[^"]*"' pyproject.toml | head -1 | tr -d '"')  # the project's own pin
    [ -n "$TORCH_PIN" ] || die "no torch==<version> pin found in pyproject.toml" 2
    if [ -z "${PIP_NO_INDEX:-}" ] && ! "$PY" -m pip index versions torch --timeout 20 --retries 1 > "$OUT_DIR/pip_index.txt" 2>&1; then
        die "pip cannot reach a package index (see $OUT_DIR/pip_index.txt). This script installs $TORCH_PIN (CUDA build) and
    the project into $VENV and needs an index for that: set PIP_INDEX_URL to a reachable mirror (or PIP_NO_INDEX=1
    with PIP_FIND_LINKS=<wheel dir>), or provide a ready $VENV." 2
    fi
    say "installing $TORCH_PIN and the project (.[dev]) into $VENV (log: $OUT_DIR/install.log)"
    { "$PY" -m pip install --upgrade pip || true  # as the Makefile does; an old pip still works
      "$PY" -m pip install "$TORCH_PIN" && "$PY" -m pip install -e ".[dev]"; } > "$OUT_DIR/install.log" 2>&1 \
        || { tail -n 3 "$OUT_DIR/install.log"; die "pip install failed (see $OUT_DIR/install.log; connection errors there mean the index is unreachable)" 2; }
    # A local '+cpu' wheel satisfies the pin too (pip prefers it): refuse it rather than skip every test.
    "$PY" -c "import sys, torch; sys.exit(torch.version.cuda is None)" \
        || die "the installed torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>&1)) is a CPU build: point pip at an index with the CUDA wheels of $TORCH_PIN and delete $VENV" 2
fi

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
stage pytest_cuda "$PY" -m pytest -q -rs -p no:cacheprovider --junitxml="$OUT_DIR/pytest_cuda.xml" \
    tests/scores/test_cuda.py tests/policies/test_cuda_policies.py tests/control/test_cuda_control.py
for bench in monitor sampling runtime interventions; do
    stage "bench_$bench" "$PY" -m "benchmarks.$bench" --device cuda
done
if [ "${FULL_SUITE:-0}" = "1" ]; then
    stage pytest_full "$PY" -m pytest -q -rs -p no:cacheprovider
fi

# ---------------------------------------------------------------- summary
failed=0
say "summary (logs in $OUT_DIR):"
for i in "${!NAMES[@]}"; do
    status=ok; [ "${CODES[$i]}" = 0 ] || { status="FAILED (exit ${CODES[$i]})"; failed=1; }
    [ "${CODES[$i]}" = 124 ] && status="TIMED OUT after ${STAGE_TIMEOUT} s"
    say "  $(printf '%-22s %-24s %5s s' "${NAMES[$i]}" "$status" "${SECS[$i]}")"
done
if grep -q "SKIPPED" "$OUT_DIR/pytest_cuda.log" 2>/dev/null; then
    say "  note: some CUDA tests were skipped (see pytest_cuda.log): they did not run"
    failed=1
fi
exit "$failed"
