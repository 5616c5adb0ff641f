package cpu

import (
	"sync"
	"sync/atomic"
)

// job is an operation split into units [0, total): run does units
// [lo, hi) on worker w (0 is the calling goroutine), using only worker w's
// scratch memory.
type job interface {
	run(w, lo, hi int)
}

// pool is a fixed set of goroutines that, with the caller, share out the
// units of one job at a time. Chunks of grain units are claimed from an
// atomic counter, so a worker that is descheduled delays only its chunk.
// Dispatch allocates nothing: the job is a pointer to a preallocated
// descriptor and the goroutines wait on their own channels.
type pool struct {
	wake []chan struct{} // one per pool goroutine (workers 1..n-1)
	wg   sync.WaitGroup

	j     job
	total int
	grain int
	next  atomic.Int64
}

func newPool(threads int) *pool {
	p := &pool{wake: make([]chan struct{}, threads-1)}
	for i := range p.wake {
		p.wake[i] = make(chan struct{}, 1)
		go p.loop(i+1, p.wake[i])
	}
	return p
}

// loop is pool goroutine w: one share of a job per wake-up, until closed.
func (p *pool) loop(w int, wake chan struct{}) {
	for range wake {
		p.work(w)
		p.wg.Done()
	}
}

// work claims and runs chunks until none are left.
func (p *pool) work(w int) {
	for {
		lo := int(p.next.Add(int64(p.grain))) - p.grain
		if lo >= p.total {
			return
		}
		p.j.run(w, lo, min(lo+p.grain, p.total))
	}
}

// run does units [0, total) of j in chunks of grain units, on as many
// goroutines as there are chunks (at most the pool's size), and returns
// when all are done.
func (p *pool) run(j job, total, grain int) {
	if total <= 0 {
		return
	}
	grain = max(grain, 1)
	chunks := (total + grain - 1) / grain
	helpers := min(len(p.wake), chunks-1)
	if helpers <= 0 {
		j.run(0, 0, total)
		return
	}
	p.j, p.total, p.grain = j, total, grain
	p.next.Store(0)
	p.wg.Add(helpers)
	for i := 0; i < helpers; i++ {
		p.wake[i] <- struct{}{}
	}
	p.work(0)
	p.wg.Wait()
	p.j = nil
}

// close stops the pool goroutines.
func (p *pool) close() {
	for _, c := range p.wake {
		close(c)
	}
}

// minChunk is the least work, in multiply-adds or elements, worth handing
// to another goroutine: waking one costs a few microseconds.
const minChunk = 16384

// splitGrain returns a chunk size that gives each of threads goroutines
// about four chunks of total units, and at least minGrain units per chunk
// so the per-chunk overhead stays small.
func splitGrain(total, threads, minGrain int) int {
	g := (total + 4*threads - 1) / (4 * threads)
	return max(g, minGrain, 1)
}
