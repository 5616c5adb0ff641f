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
# script): check.log, tests.log, e2e.log, bench.log, bench.jsonl,
# hf.jsonl, cpu.log, sanitizer.log, summary.txt, and fixtures/ when the
# bundle carries fixture models.
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

# Step limits (seconds), scaled down by the overall budget via run().
T_TESTS=${T_TESTS:-110}
T_E2E=${T_E2E:-40}
T_BENCH=${T_BENCH:-100}
T_CEIL=${T_CEIL:-40}
T_HF=${T_HF:-90}
T_KERNELS=${T_KERNELS:-60}
T_CPU=${T_CPU:-40}
T_SAN=${T_SAN:-120}
BIN=$HERE/bin
if [ -f "$BIN/loom.gz" ] && [ ! -x "$BIN/loom" ]; then # the bundle gzips the CPU build
  gunzip -c "$BIN/loom.gz" >"$BIN/loom" && chmod +x "$BIN/loom"
fi
SHARED_DIR=$HERE/shared
BENCH=$OUT/bench.log
: >"$BENCH"

# --- 2. Correctness: every CUDA test binary ---------------------------------
export LOOM_SHARED=$SHARED_DIR
TESTS=$OUT/tests.log
: >"$TESTS"
for t in $(cd "$HERE/tests" 2>/dev/null && find . -name '*.test' | sort); do
  pkg=$(dirname "${t#./}")
  n0=$(wc -l <"$TESTS")
  pushd "$HERE/tests/$pkg" >/dev/null
  run "test $pkg" "$T_TESTS" "$TESTS" "./$(basename "$t")" -test.v -test.count=1 -test.timeout="$((T_TESTS - 5))s"
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

# --- 3. End to end through the CLI: golden text and GPU-vs-CPU verify -------
E2E=$OUT/e2e.log
: >"$E2E"
if [ -f "$SHARED_DIR/models/stories260K.gguf" ]; then
  run "golden on the GPU" "$T_E2E" "$E2E" bash -c "'$BIN/loom' run --model '$SHARED_DIR/models/stories260K.gguf' --device cuda --temperature 0 --max-tokens 200 >'$OUT/.golden.txt' && cmp '$OUT/.golden.txt' '$SHARED_DIR/golden/stories260K_greedy_n200.txt' && echo golden: byte for byte"
  case $RC in
  0) row "golden (loom run, cuda)" "PASS" "$SECS" "stories260K 200 greedy tokens byte for byte" ;;
  125) row "golden (loom run, cuda)" "SKIP" 0 "no time left" ;;
  *) row "golden (loom run, cuda)" "FAIL" "$SECS" "exit $RC (see e2e.log)" ;;
  esac
  rm -f "$OUT/.golden.txt"
  run "verify --against cuda" "$T_E2E" "$E2E" "$BIN/loom" verify --model "$SHARED_DIR/models/stories260K.gguf" --against cuda --tokens 64
  last=$(grep -iE 'logits' "$E2E" | tail -n 1)
  case $RC in
  0) row "verify (cpu vs cuda)" "PASS" "$SECS" "${last:-see e2e.log}" ;;
  125) row "verify (cpu vs cuda)" "SKIP" 0 "no time left" ;;
  *) row "verify (cpu vs cuda)" "FAIL" "$SECS" "exit $RC (see e2e.log)" ;;
  esac
  # loom chat: three turns through the prefix cache on the GPU, against the
  # same on the CPU (greedy: the replies should agree; a difference is
  # reported, not failed, since the GPU is not batch invariant).
  turns=$(printf 'Once upon a time\nWhat did she see?\nAnd then?\n')
  run "chat (cuda vs cpu)" "$T_E2E" "$E2E" bash -c "printf '%s\n' \"$turns\" | '$BIN/loom' chat --model '$SHARED_DIR/models/stories260K.gguf' --device cuda --temperature 0 --max-tokens 24 >'$OUT/.chat-cuda.txt' 2>>'$E2E' && printf '%s\n' \"$turns\" | '$BIN/loom' chat --model '$SHARED_DIR/models/stories260K.gguf' --device cpu --temperature 0 --max-tokens 24 >'$OUT/.chat-cpu.txt' 2>>'$E2E'"
  cached=$(grep -o '[0-9]* from the prefix cache' "$E2E" | tail -n 6 | sed -n 3p) # the GPU run's third turn
  if [ "$RC" = 0 ] && cmp -s "$OUT/.chat-cuda.txt" "$OUT/.chat-cpu.txt"; then
    row "chat (cuda vs cpu)" "PASS" "$SECS" "3 turns, replies equal; turn 3: ${cached:-?}"
  elif [ "$RC" = 0 ]; then
    row "chat (cuda vs cpu)" "ok" "$SECS" "replies differ (see .chat-*.txt); turn 3: ${cached:-?}"
  else
    row "chat (cuda vs cpu)" "FAIL" "$SECS" "exit $RC (see e2e.log)"
  fi
  # Prompt lookup and a draft model (stories260K drafting for itself) on
  # the GPU: steps of 2 to 5 rows; the golden text is expected, a near-tie
  # flipped by the multi-row kernels is reported, not failed.
  M=$SHARED_DIR/models/stories260K.gguf
  run "lookup and draft (cuda)" "$T_E2E" "$E2E" bash -c "'$BIN/loom' run --model '$M' --device cuda --temperature 0 --max-tokens 200 --lookup 4 >'$OUT/.lookup.txt' 2>>'$E2E' && '$BIN/loom' run --model '$M' --device cuda --temperature 0 --max-tokens 200 --draft-model '$M' >'$OUT/.draft.txt' 2>>'$E2E'"
  drafts=$(grep -o 'drafts: [0-9]* of [0-9]* accepted' "$E2E" | tail -n 2 | tr '\n' ';')
  if [ "$RC" = 0 ] && cmp -s "$OUT/.lookup.txt" "$SHARED_DIR/golden/stories260K_greedy_n200.txt" && cmp -s "$OUT/.draft.txt" "$SHARED_DIR/golden/stories260K_greedy_n200.txt"; then
    row "lookup/draft (cuda)" "PASS" "$SECS" "golden byte for byte both ways; ${drafts:-?}"
  elif [ "$RC" = 0 ]; then
    row "lookup/draft (cuda)" "ok" "$SECS" "text differs from the golden (see .lookup.txt, .draft.txt); ${drafts:-?}"
  else
    row "lookup/draft (cuda)" "FAIL" "$SECS" "exit $RC (see e2e.log)"
  fi
fi

# --- 3b. transformers fixtures for new architectures ------------------------
# Fixture models the bundle carries (those without a committed fixture,
# e.g. qwen3) through make_fixtures.py on this host's CPU in float32; the
# results in $OUT/fixtures/ are committed to model/testdata/fixtures/.
if [ -d "$HERE/fixmodels" ] && [ -f "$HERE/make_fixtures.py" ]; then
  mkdir -p "$OUT/fixtures"
  run "transformers fixtures" 120 "$LOG" python3 "$HERE/make_fixtures.py" --out "$OUT/fixtures" "$HERE"/fixmodels/*
  made=$(cd "$OUT/fixtures" 2>/dev/null && ls *.json 2>/dev/null | tr '\n' ' ')
  case $RC in
  0) row "fixtures" "ok" "$SECS" "made: ${made:-none}" ;;
  125) row "fixtures" "SKIP" 0 "no time left" ;;
  *) row "fixtures" "FAIL" "$SECS" "exit $RC${made:+; made: $made} (see check.log)" ;;
  esac
fi

# --- 4. loom bench: Llama-3-8B shape, BF16 (synthetic weights) ---------------
# Decode at batch 1, 8 and 32 after a 128-token context, greedy (argmax on
# the device) and sampled at temperature 0.8 (logits to the host, drawn on
# its cores, as the server does); prefill of 2048 tokens. One JSON object
# per measurement in bench.jsonl.
run "loom bench llama3-8b" "$T_BENCH" "$BENCH" bash -c "'$BIN/loom' bench --preset llama3-8b --dtype bf16 --device cuda --prompt-len 2048 --reps 2 --batch 1,8,32 --gen 32 --temperature 0,0.8 --json >'$OUT/bench.jsonl'"
cat "$OUT/bench.jsonl" >>"$BENCH" 2>/dev/null
lb=$(python3 - "$OUT/bench.jsonl" <<'EOF' 2>/dev/null
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = []
for r in rs:
    if r["kind"] == "prefill":
        out.append("prefill %d: %.0f tok/s, %.0f TFLOP/s (%.0f%% of loom's GEMM probe)" % (r["prompt_len"], r["prefill_tok_s"], r["prefill_tflops"], 100 * r.get("prefill_frac_matmul", 0)))
    else:
        t = " sampled" if r.get("temperature", 0) > 0 else ""
        out.append("b%d%s: %.0f tok/s, %.0f GB/s (%.0f%%)" % (r["batch"], t, r["decode_tok_s_aggregate"], r["decode_gbs"], 100 * r.get("decode_frac_bandwidth", 0)))
print("; ".join(out))
EOF
)
case $RC in
0) row "loom bench" "ok" "$SECS" "$lb" ;;
125) row "loom bench" "SKIP" 0 "no time left" ;;
*) row "loom bench" "FAIL" "$SECS" "exit $RC${lb:+; partial: $lb} (see bench.log)" ;;
esac

# --- 5. Ceilings: copy bandwidth and BF16 matmul rate through PyTorch ------
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
run "ceilings (torch)" "$T_CEIL" "$LOG" python3 "$OUT/.ceilings.py"
ceil=$(grep -E '^torch (copy|bf16)' "$LOG" | sed -E 's/^torch //; s/ \(.*//' | tr '\n' ';' | sed 's/;$//; s/;/, /')
case $RC in
0) row "ceilings" "ok" "$SECS" "$ceil" ;;
125) row "ceilings" "SKIP" 0 "no time left" ;;
*) row "ceilings" "FAIL" "$SECS" "python3/torch exit $RC (see check.log)" ;;
esac
rm -f "$OUT/.ceilings.py"

# --- 6. The transformers baseline on the same shapes -------------------------
HF=$HERE/hf_baseline.py
if [ -f "$HF" ]; then
  run "transformers baseline" "$T_HF" "$BENCH" bash -c "PYTHONUNBUFFERED=1 python3 '$HF' --preset llama3-8b --prompt-len 2048 --gen 32 --batch ${HF_BATCH:-1,32} --reps 2 >'$OUT/hf.jsonl'"
  cat "$OUT/hf.jsonl" >>"$BENCH" 2>/dev/null
  hf=$(python3 - "$OUT/hf.jsonl" <<'EOF' 2>/dev/null
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = []
for r in rs:
    if r["kind"] == "prefill":
        out.append("prefill %d: %.0f tok/s" % (r["prompt_len"], r["prefill_tok_s"]))
    else:
        out.append("b%d: %.0f tok/s" % (r["batch"], r["decode_tok_s_aggregate"]))
print("; ".join(out))
EOF
)
  case $RC in
  0) row "transformers" "ok" "$SECS" "$hf" ;;
  125) row "transformers" "SKIP" 0 "no time left" ;;
  *) row "transformers" "FAIL" "$SECS" "exit $RC${hf:+; partial: $hf} (see bench.log)" ;;
  esac
fi

# --- 6b. CPU side on this host's cores: serving ratio, sampling rows ---------
# The serving criterion (concurrency 16 >= 4x concurrency 1, CPU backend,
# stories260K) measured here with 2 and 8 backend threads, and a step's
# token draws for 32 rows of a 128k vocabulary on 1 and all cores.
CPUL=$OUT/cpu.log
: >"$CPUL"
if ls "$HERE"/cpu/*.test.gz >/dev/null 2>&1 && [ -f "$SHARED_DIR/models/stories260K.gguf" ]; then
  mkdir -p "$OUT/.cpu"
  for z in "$HERE"/cpu/*.test.gz; do gunzip -c "$z" >"$OUT/.cpu/$(basename "$z" .gz)"; done
  chmod +x "$OUT"/.cpu/*.test
  pushd "$OUT/.cpu" >/dev/null
  for th in 2 8; do
    n0=$(wc -l <"$CPUL")
    run "serve ratio, $th threads" "$T_CPU" "$CPUL" env LOOM_SHARED="$SHARED_DIR" ./server.test -test.run '^TestThroughput$' -test.v -throughput 2 -throughput-each 3s -throughput-threads "$th"
    part=$(tail -n +$((n0 + 1)) "$CPUL")
    ratio=$(grep -o 'median [0-9.]*x, best/best [0-9.]*x' <<<"$part" | tail -n 1)
    rates=$(grep -o 'concurrency 1: best [0-9]*.*' <<<"$part" | tail -n 1)
    grep -q -- '--- SKIP' <<<"$part" && RC=skip
    case $RC in
    skip) row "serve ratio ${th}t (cpu)" "SKIP" "$SECS" "test skipped (see cpu.log)" ;;
    0) row "serve ratio ${th}t (cpu)" "ok" "$SECS" "c16/c1: ${ratio:-?} (${rates:-?})" ;;
    125) row "serve ratio ${th}t (cpu)" "SKIP" 0 "no time left" ;;
    *) row "serve ratio ${th}t (cpu)" "FAIL" "$SECS" "exit $RC (see cpu.log)" ;;
    esac
  done
  run "sampling 32 rows x 128k" "$T_CPU" "$CPUL" ./sched.test -test.run '^$' -test.bench '^BenchmarkDraw$' -test.benchtime 20x
  draw=$(awk '/^BenchmarkDraw\/temperature\/workers=/{for(i=1;i<=NF;i++) if($(i+1)=="µs/row") printf "%s ", $i}' "$CPUL")
  case $RC in
  0) row "sampling rows (cpu)" "ok" "$SECS" "temperature µs/row, 1 and all workers: ${draw:-?}" ;;
  125) row "sampling rows (cpu)" "SKIP" 0 "no time left" ;;
  *) row "sampling rows (cpu)" "FAIL" "$SECS" "exit $RC (see cpu.log)" ;;
  esac
  popd >/dev/null
fi

# --- 7. Kernel benchmarks (CUDA events), if time allows ----------------------
if [ -x "$HERE/tests/gpu/gpu.test" ]; then
  pushd "$HERE/tests/gpu" >/dev/null
  run "kernel benchmarks" "$T_KERNELS" "$BENCH" ./gpu.test -test.run '^$' -test.bench "${KBENCH:-.}" -test.benchtime 20x -test.timeout="$((T_KERNELS - 5))s"
  popd >/dev/null
  copy=$(awk '/^BenchmarkCopy/{for(i=1;i<=NF;i++) if($(i+1)=="GB/s"){print $i; exit}}' "$BENCH")
  gemv=$(awk '/GEMV\/bf16\/14336x4096\/n=1-/{for(i=1;i<=NF;i++) if($(i+1)=="of-copy"){print $i; exit}}' "$BENCH")
  gemm=$(awk '/GEMM\/bf16\/14336x4096\//{for(i=1;i<=NF;i++) if($(i+1)=="TFLOP/s"){print $i; exit}}' "$BENCH")
  case $RC in
  0) row "kernel benchmarks" "ok" "$SECS" "copy ${copy:-?} GB/s; GEMV 14336x4096 n=1 ${gemv:-?} of copy; GEMM n=2048 ${gemm:-?} TFLOP/s" ;;
  125) row "kernel benchmarks" "SKIP" 0 "no time left" ;;
  *) row "kernel benchmarks" "FAIL" "$SECS" "exit $RC (see bench.log)" ;;
  esac
fi

# --- 8. Compute Sanitizer, if time allows -----------------------------------
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
    run "compute-sanitizer $tool" "$T_SAN" "$SAN" compute-sanitizer --tool "$tool" --error-exitcode 99 \
      ./gpu.test -test.run "$sel" -test.short -test.count=1 -test.timeout="$((T_SAN - 5))s"
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
grep -qE '^(test|golden|verify|chat|loom bench|sanitizer|ceilings|kernel benchmarks|transformers)[^|]*\|(FAIL|TIMEOUT)\|' <(printf '%s\n' "${ROWS[@]}") && exit 1
exit 0
