# loom: the verbs. `make test` is what CI runs.
GO        ?= go
BIN       := bin
PKGS      := ./...

.PHONY: all test build bench fmt-check vet cuda-toolchain cuda cuda-check device-bundle clean

all: build

## test: gofmt check, go vet, every test, and the CPU backend again on its plain-Go (purego) and AVX2-only paths (what CI runs).
test: fmt-check vet
	$(GO) test -count=1 $(PKGS)
	$(GO) test -count=1 -tags purego ./cpu/...
	LOOM_NO_AVX512=1 $(GO) test -count=1 ./cpu/...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## build: bin/loom (CPU backend only).
build:
	$(GO) build -o $(BIN)/loom ./cmd/loom

## bench: CPU operation benchmarks.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1s ./cpu/... ./runtime/...

## cuda-toolchain: installs the CUDA 11.8 toolkit and CMake from Debian (idempotent).
cuda-toolchain:
	scripts/cuda-toolchain.sh

CUDA_BUILD := build/kernels
FATBIN     := gpu/loom.fatbin
# Packages with CUDA tests (a _test.go file whose build constraint names cuda).
CUDA_TEST_PKGS = $(shell git ls-files --cached --others --exclude-standard '*_test.go' | \
	xargs grep -lE '^//go:build (.*[^!])?\bcuda\b' | xargs -r -n1 dirname | sort -u | sed 's|^|./|')

## cuda: the kernels (CMake + nvcc: build/kernels/loom.fatbin, copied to gpu/
## for go:embed), bin/loom (pure Go) and bin/loom-cuda (-tags cuda), which
## bin/loom hands GPU commands to after probing the device.
cuda:
	cmake -S . -B $(CUDA_BUILD) -Wno-dev
	cmake --build $(CUDA_BUILD)
	cp $(CUDA_BUILD)/loom.fatbin $(FATBIN)
	$(GO) build -o $(BIN)/loom ./cmd/loom
	$(GO) build -tags cuda -o $(BIN)/loom-cuda ./cmd/loom

## cuda-check: toolchain, kernels, vet and build with -tags cuda, compile
## every CUDA test binary (they run only on a GPU), and check the kernels'
## parameters against the Go launchers (TestKernelABI, no GPU needed).
cuda-check: cuda-toolchain cuda
	$(GO) vet -tags cuda $(PKGS)
	$(GO) build -tags cuda $(PKGS)
	@mkdir -p build/cuda-tests
	for p in $(CUDA_TEST_PKGS); do \
		$(GO) test -tags cuda -c -o build/cuda-tests/ $$p || exit 1; \
	done
	$(GO) test -count=1 -run '^TestKernelABI$$' ./gpu/

## device-bundle: build/device/, what the lent GPU machine runs (check.sh;
## see ../shared/GPU.md).
device-bundle: cuda
	scripts/device-bundle.sh

clean:
	rm -rf $(BIN) build
