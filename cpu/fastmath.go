package cpu

import "github.com/loomllm/loom/cpu/vec"

// expf returns e**x in float32 arithmetic: vec.Exp (within 2 ulp of
// math.Exp for normal results, 0 below the normal range).
func expf(x float32) float32 { return vec.Exp(x) }

// sigmoid returns 1 / (1 + e**-x).
func sigmoid(x float32) float32 { return 1 / (1 + expf(-x)) }
