package gpu

import (
	"fmt"
	"strings"

	"github.com/loomllm/loom/runtime/backend"
)

// Bits of the device error word (loom_error in kernels/common.cuh).
const (
	errWordToken    = 1 // LOOM_ERR_TOKEN: Embed met a token id outside the table
	errWordPosition = 2 // LOOM_ERR_POSITION: Attention met a position or block id out of range
)

// deviceError describes a non-zero device error word.
func deviceError(word int32) error {
	var what []string
	if word&errWordToken != 0 {
		what = append(what, "a token id outside the embedding table (Embed)")
	}
	if word&errWordPosition != 0 {
		what = append(what, "a position or block id outside the KV cache or block table (Attention)")
	}
	if rest := word &^ (errWordToken | errWordPosition); rest != 0 {
		what = append(what, fmt.Sprintf("unknown error bits %#x", rest))
	}
	return fmt.Errorf("%w: a kernel found %s", backend.ErrIndex, strings.Join(what, " and "))
}

// human formats a byte count.
func human(n int64) string {
	switch {
	case n >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
