#!/usr/bin/env bash
# Builds build/device/, everything the lent GPU machine needs to check loom
# (it has no Go and cannot reach ../shared; see ../shared/GPU.md):
#
#   check.sh                     the one script to run there (scripts/check.sh)
#   bin/loom.gz, bin/loom-cuda   the CLI, CPU (gzipped) and CUDA builds, stripped
#   tests/<pkg>/<pkg>.test       go test -c -tags cuda of every package with
#                                CUDA tests (a file tagged cuda), stripped,
#                                with the package's testdata/ beside it
#   cpu/*.test.gz                CPU-only test binaries (server, runtime/sched)
#                                for the serving ratio and sampling on many cores
#   shared/                      the shared files the checks read
#   hf_baseline.py               the transformers baseline (bench/)
#   fixmodels/, make_fixtures.py the fixture models without a committed
#                                transformers fixture, and the script that
#                                makes one (model/testdata/)
#
# Run by make device-bundle after make cuda (the fatbin must be in gpu/).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
OUT=build/device
SHARED=${LOOM_SHARED:-../shared}
LDFLAGS="-s -w"

[ -f gpu/loom.fatbin ] || { echo "device-bundle: gpu/loom.fatbin missing: run make cuda first" >&2; exit 1; }
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/tests" "$OUT/shared"

echo "device-bundle: loom and loom-cuda"
$GO build -trimpath -ldflags "$LDFLAGS" -o "$OUT/bin/loom" ./cmd/loom
$GO build -trimpath -tags cuda -ldflags "$LDFLAGS" -o "$OUT/bin/loom-cuda" ./cmd/loom
gzip -9 "$OUT/bin/loom" # check.sh unpacks it beside loom-cuda (a third of the size)

# Packages with CUDA tests: a _test.go file whose build constraint names cuda.
pkgs=$(git ls-files --cached --others --exclude-standard '*_test.go' |
  xargs grep -lE '^//go:build (.*[^!])?\bcuda\b' | grep -v '^build/' | xargs -r -n1 dirname | sort -u)
for p in $pkgs; do
  name=$(echo "$p" | tr / _)
  [ "$p" = . ] && name=loom
  echo "device-bundle: tests of ./$p"
  mkdir -p "$OUT/tests/$p"
  $GO test -c -trimpath -tags cuda -ldflags "$LDFLAGS" -o "$OUT/tests/$p/$name.test" "./$p"
  if [ -d "$p/testdata" ]; then cp -r "$p/testdata" "$OUT/tests/$p/"; fi
done

# CPU-side checks that want the GPU host's 16 cores (issue 8's serving
# ratio, sampling across rows): plain test binaries, gzipped (about a third).
echo "device-bundle: CPU-side test binaries (server, runtime/sched)"
mkdir -p "$OUT/cpu"
$GO test -c -trimpath -ldflags "$LDFLAGS" -o "$OUT/cpu/server.test" ./server
$GO test -c -trimpath -ldflags "$LDFLAGS" -o "$OUT/cpu/sched.test" ./runtime/sched
gzip -9 "$OUT"/cpu/*.test

# Fixture models whose transformers outputs are not committed yet
# (model/testdata/README.md): their Hugging Face directories, for
# make_fixtures.py on the GPU host, which has transformers.
rm -rf build/fixmodels
LOOM_SHARED="$SHARED" LOOM_WRITE_FIXTURE_MODELS="$PWD/build/fixmodels" $GO test -count=1 -run '^TestWriteFixtureModels$' ./model/arch >/dev/null
for d in build/fixmodels/*/; do
  name=$(basename "$d")
  if [ ! -f "model/testdata/fixtures/$name.json" ]; then
    echo "device-bundle: fixture model $name (no committed fixture yet)"
    mkdir -p "$OUT/fixmodels"
    cp -r "$d" "$OUT/fixmodels/$name"
  fi
done
cp model/testdata/make_fixtures.py "$OUT/make_fixtures.py"

echo "device-bundle: shared data from $SHARED"
for f in models/stories260K.gguf golden/stories260K_greedy_n200.txt golden/stories260K_greedy_n200_ids.txt; do
  if [ -f "$SHARED/$f" ]; then
    mkdir -p "$OUT/shared/$(dirname "$f")"
    cp "$SHARED/$f" "$OUT/shared/$f"
  else
    echo "device-bundle: warning: $SHARED/$f not found; the checks that need it will skip" >&2
  fi
done

cp scripts/check.sh "$OUT/check.sh"
cp bench/hf_baseline.py "$OUT/hf_baseline.py"
chmod +x "$OUT/check.sh"

size=$(du -sm "$OUT" | cut -f1)
echo "device-bundle: $OUT is $size MiB"
du -sh "$OUT"/bin/* "$OUT"/tests/*/* 2>/dev/null | sed 's/^/  /'
if [ "$size" -ge 60 ]; then
  echo "device-bundle: $OUT is over the 60 MiB the device tool carries" >&2
  exit 1
fi
