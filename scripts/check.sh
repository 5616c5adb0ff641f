#!/usr/bin/env bash
# check.sh: loom's one prepared script for the lent GPU machine (see
# ../shared/GPU.md). make device-bundle copies it into build/device/; run
#
#   bash build/device/check.sh
#
# It finds the driver, prints the card, measures the ceilings, runs every
# CUDA test binary, the kernel benchmarks and Compute Sanitizer, each step
# under a timeout and all within CHECK_BUDGET seconds (default 400), and
# prints a summary table last. Logs go to $OUT (default ./out beside this
# script): check.log, tests.log, bench.log, sanitizer.log, summary.txt.
# On a machine without a usable GPU it stops at once with a line starting
# "check.sh: no CUDA device:" and exit status 1.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE/out}
BUDGET=${CHECK_BUDGET:-400}
START=$(date +%s)
mkdir -p "$OUT"
LOG=$OUT/check.log
: >"$LOG"
ROWS=()  # summary rows: step|result|seconds|note

say() { echo "$*" | tee -a "$LOG"; }
left() { echo $((BUDGET - ($(date +%s) - START))); }
row() { ROWS+=("$1|$2|$3|$4"); }
nodevice() {
  say "check.sh: no CUDA device: $*"
  exit 1
}

# run NAME LIMIT LOGFILE CMD...: runs CMD with the smaller of LIMIT and the
# time left (less a reserve for the summary), appending to LOGFILE; sets RC
# and SECS. Skips (RC=125) when under 20 s are left.
run() {
  local name=$1 limit=$2 logf=$3
  shift 3
  local t=$(($(left) - 15))
  [ "$t" -lt "$limit" ] && limit=$t
  if [ "$limit" -lt 20 ]; then
    say "== $name: skipped (time budget spent)"
    RC=125 SECS=0
    return
  fi
  say "== $name (timeout ${limit}s)"
  echo "== $name: $*" >>"$logf"
  local s=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >>"$logf" 2>&1
  RC=$?
  SECS=$(($(date +%s) - s))
  [ "$RC" = 124 ] || [ "$RC" = 137 ] && say "   timed out after ${limit}s"
  say "   exit $RC after ${SECS}s"
}

# --- 1. The driver and the card ---------------------------------------------
say "check.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
lib=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF; exit}')
if [ -z "$lib" ]; then
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/compat /usr/local/cuda/lib64; do
    if [ -e "$d/libcuda.so.1" ]; then
      lib=$d/libcuda.so.1
      export LD_LIBRARY_PATH=$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
      break
    fi
  done
fi
[ -n "$lib" ] || nodevice "the NVIDIA driver library libcuda.so.1 is not installed (not in ldconfig's cache nor under /usr/local/nvidia)"
say "driver library: $lib${LD_LIBRARY_PATH:+ (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -L 2>&1 | tee -a "$LOG"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv 2>&1 | tee -a "$LOG"
else
  say "nvidia-smi: not found"
fi
probe=$(timeout 60 "$HERE/bin/loom-cuda" __probe 2>&1)
rc=$?
echo "$probe" >>"$LOG"
if [ $rc != 0 ]; then
  case $probe in
  *"details on: "*) nodevice "the CUDA driver did not initialise: ${probe##*details on: }" ;;
  *libcuda.so*) nodevice "libcuda.so.1 could not be loaded: $probe" ;;
  *) nodevice "loom-cuda __probe failed (exit $rc): $(echo "$probe" | tail -n 1)" ;;
  esac
fi
say "device: $probe"
CARD=$(echo "$probe" | sed -E 's/^cuda:[0-9]+ ([^,]*),.*/\1/')
row "device" "ok" 0 "$probe"

# --- 2. Correctness: every CUDA test binary ---------------------------------
export LOOM_SHARED=$HERE/shared
TESTS=$OUT/tests.log
: >"$TESTS"
for t in $(cd "$HERE/tests" 2>/dev/null && find . -name '*.test' | sort); do
  pkg=$(dirname "${t#./}")
  n0=$(wc -l <"$TESTS")
  pushd "$HERE/tests/$pkg" >/dev/null
  run "test $pkg" 240 "$TESTS" "./$(basename "$t")" -test.v -test.count=1 -test.timeout=230s
  popd >/dev/null
  part=$(tail -n +$((n0 + 1)) "$TESTS")
  pass=$(grep -c -- '--- PASS' <<<"$part")
  skip=$(grep -c -- '--- SKIP' <<<"$part")
  fail=$(grep -- '--- FAIL' <<<"$part" | sed -E 's/.*--- FAIL: ([^ ]*).*/\1/' | head -n 8 | tr '\n' ' ')
  case $RC in
  0) row "test $pkg" "PASS" "$SECS" "$pass passed, $skip skipped" ;;
  124 | 137) row "test $pkg" "TIMEOUT" "$SECS" "$pass passed${fail:+, failed: $fail}" ;;
  125) row "test $pkg" "SKIP" 0 "no time left" ;;
  *) row "test $pkg" "FAIL" "$SECS" "failed: ${fail:-exit $RC (see tests.log)}" ;;
  esac
done

# --- 3. Ceilings: copy bandwidth and BF16 matmul rate through PyTorch ------
cat >"$OUT/.ceilings.py" <<'EOF'
import torch
dev = torch.device("cuda")
def timed(f, reps):
    f(); torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        f()
    b.record(); torch.cuda.synchronize()
    return a.elapsed_time(b) / 1e3 / reps
n = 1 << 30
x = torch.empty(n, dtype=torch.uint8, device=dev); y = torch.empty_like(x)
s = timed(lambda: y.copy_(x), 20)
print(f"torch copy bandwidth: {2 * n / s / 1e9:.0f} GB/s (1 GiB device-to-device, read + write)")
m = 8192
a = torch.randn(m, m, device=dev, dtype=torch.bfloat16); b = torch.randn(m, m, device=dev, dtype=torch.bfloat16)
s = timed(lambda: a @ b, 20)
print(f"torch bf16 matmul: {2 * m**3 / s / 1e12:.0f} TFLOP/s ({m}x{m}x{m})")
EOF
run "ceilings (torch)" 90 "$LOG" python3 "$OUT/.ceilings.py"
ceil=$(grep -E '^torch (copy|bf16)' "$LOG" | sed -E 's/^torch //; s/ \(.*//' | tr '\n' ';' | sed 's/;$//; s/;/, /')
case $RC in
0) row "ceilings" "ok" "$SECS" "$ceil" ;;
125) row "ceilings" "SKIP" 0 "no time left" ;;
*) row "ceilings" "FAIL" "$SECS" "python3/torch exit $RC (see check.log)" ;;
esac
rm -f "$OUT/.ceilings.py"

# --- 4. Kernel benchmarks (CUDA events) --------------------------------------
BENCH=$OUT/bench.log
: >"$BENCH"
if [ -x "$HERE/tests/gpu/gpu.test" ]; then
  pushd "$HERE/tests/gpu" >/dev/null
  run "kernel benchmarks" 150 "$BENCH" ./gpu.test -test.run '^$' -test.bench . -test.benchtime 100x -test.timeout=145s
  popd >/dev/null
  copy=$(awk '/^BenchmarkCopy/{for(i=1;i<=NF;i++) if($(i+1)=="GB/s"){print $i; exit}}' "$BENCH")
  gemv=$(awk '/GEMV\/bf16\/14336x4096\/n=1-/{for(i=1;i<=NF;i++) if($(i+1)=="of-copy"){print $i; exit}}' "$BENCH")
  gemm=$(awk '/GEMM\/bf16\/14336x4096\//{for(i=1;i<=NF;i++) if($(i+1)=="TFLOP/s"){print $i; exit}}' "$BENCH")
  case $RC in
  0) row "benchmarks" "ok" "$SECS" "copy ${copy:-?} GB/s; GEMV 14336x4096 n=1 ${gemv:-?} of copy; GEMM n=2048 ${gemm:-?} TFLOP/s" ;;
  125) row "benchmarks" "SKIP" 0 "no time left" ;;
  *) row "benchmarks" "FAIL" "$SECS" "exit $RC (see bench.log)" ;;
  esac
fi

# --- 5. loom bench and the transformers baseline ----------------------------
# PLACE FOR THE BENCHMARK ENGINEER (issue 7): run `bin/loom-cuda bench ...
# --json` on the Llama-3-8B shape (decode at batch 1, 8, 32; prefill of
# 2048 tokens) and bench/hf_baseline.py on the same shapes here, with run
# (above) for the timeout, appending to $BENCH, and add their rows.

# --- 6. Compute Sanitizer, if time allows -----------------------------------
SAN=$OUT/sanitizer.log
: >"$SAN"
if command -v compute-sanitizer >/dev/null && [ -x "$HERE/tests/gpu/gpu.test" ]; then
  # Every op's conformance cases (short shapes) under memcheck; the kernels
  # that use shared memory under racecheck (much slower).
  ops='Embed|MatMul|Add|RMSNorm|LayerNorm|RoPE|Attention|SwiGLU|GELU|Copy|CopyKVBlock|ArgMax'
  for tool in memcheck racecheck; do
    sel="^(TestConformance|TestGraph)\$/^($ops)\$"
    [ "$tool" = racecheck ] && sel='^TestConformance$/^(MatMul|Attention|RMSNorm|LayerNorm|ArgMax)$'
    pushd "$HERE/tests/gpu" >/dev/null
    run "compute-sanitizer $tool" 120 "$SAN" compute-sanitizer --tool "$tool" --error-exitcode 99 \
      ./gpu.test -test.run "$sel" -test.short -test.count=1 -test.timeout=115s
    popd >/dev/null
    errs=$(grep -E '========= (ERROR SUMMARY|RACECHECK SUMMARY)' "$SAN" | tail -n 1 | sed 's/^========= //')
    case $RC in
    0) row "sanitizer $tool" "PASS" "$SECS" "${errs:-clean}" ;;
    99) row "sanitizer $tool" "FAIL" "$SECS" "${errs:-errors} (see sanitizer.log)" ;;
    124 | 137) row "sanitizer $tool" "TIMEOUT" "$SECS" "partial run (see sanitizer.log)" ;;
    125) row "sanitizer $tool" "SKIP" 0 "no time left" ;;
    *) row "sanitizer $tool" "FAIL" "$SECS" "exit $RC: test failures under the tool (see sanitizer.log)" ;;
    esac
  done
else
  row "sanitizer" "SKIP" 0 "compute-sanitizer not found"
fi

# --- Summary -----------------------------------------------------------------
{
  echo
  echo "loom GPU check: ${CARD:-?}, $(date -u +%Y-%m-%d), $(($(date +%s) - START)) s"
  printf '%-26s %-8s %6s  %s\n' STEP RESULT SECONDS NOTE
  for r in "${ROWS[@]}"; do
    IFS='|' read -r a b c d <<<"$r"
    printf '%-26s %-8s %6s  %s\n' "$a" "$b" "$c" "$d"
  done
} | tee "$OUT/summary.txt" | tee -a "$LOG"
grep -qE '^(test|sanitizer|ceilings|benchmarks)[^|]*\|(FAIL|TIMEOUT)\|' <(printf '%s\n' "${ROWS[@]}") && exit 1
exit 0
