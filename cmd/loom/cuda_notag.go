//go:build !cuda

package main

// builtWithCUDA reports that this is the pure-Go loom, which may hand a
// command to loom-cuda (see cuda_dispatch.go).
const builtWithCUDA = false
