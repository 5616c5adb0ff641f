// Package par runs independent pieces of host work on several goroutines.
package par

import (
	"sync"
	"sync/atomic"
)

// For calls fn(i) for every i in [0, n), on up to workers goroutines (the
// caller's included), each taking the next i in turn, and returns when
// all calls have. With workers < 2 or n < 2 it calls fn in order on the
// caller's goroutine.
func For(n, workers int, fn func(i int)) {
	if workers < 2 || n < 2 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= n {
				return
			}
			fn(i)
		}
	}
	var wg sync.WaitGroup
	for range min(workers, n) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
