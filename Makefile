# loom: the verbs. `make test` is what CI runs.
GO        ?= go
BIN       := bin
PKGS      := ./...

.PHONY: all test build bench fmt-check vet cuda-toolchain cuda cuda-check device-bundle clean

all: build

## test: gofmt check, go vet, and every test (what CI runs).
test: fmt-check vet
	$(GO) test -count=1 $(PKGS)

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

clean:
	rm -rf $(BIN) build
