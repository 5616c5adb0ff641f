//go:build cuda

package main

// builtWithCUDA reports that this is loom-cuda, the binary with the CUDA
// backend: it never dispatches (see cuda_dispatch.go).
const builtWithCUDA = true
