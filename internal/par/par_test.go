package par

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFor(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 100} {
		for _, w := range []int{0, 1, 2, 3, 16} {
			hits := make([]atomic.Int32, n)
			For(n, w, func(i int) { hits[i].Add(1) })
			for i := range hits {
				require.Equal(t, int32(1), hits[i].Load(), "n %d workers %d: index %d", n, w, i)
			}
		}
	}
}
