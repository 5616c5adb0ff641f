package cpu

import (
	"runtime"
	"sync/atomic"
	"time"
)

// job is an operation split into units [0, total): run does units
// [lo, hi) on worker w (0 is the calling goroutine), using only worker w's
// scratch memory.
type job interface {
	run(w, lo, hi int)
}

// pool is a fixed set of goroutines that, with the caller, share out the
// units of one job at a time. Chunks of grain units are claimed from an
// atomic counter, so a worker that is descheduled (or late) delays only
// the chunk it holds: the caller waits for units to be finished, never for
// a helper to arrive.
//
// Waking a parked goroutine through the scheduler takes from a few to tens
// of microseconds, longer than many operations of a small model's decode
// step, so (as OpenMP runtimes do) a helper that runs out of work first
// spins on the job generation counter for up to spinFor, yielding its
// processor now and then, and only then parks on its own channel. A decode
// step issues operations every few microseconds, so helpers stay awake
// through it and pick up a new job within a fraction of a microsecond.
//
// Dispatch allocates nothing: the job is a pointer to a preallocated
// descriptor.
//
// Publication protocol: gen is odd while the caller writes a job's fields
// and even once the job is published. A helper that sees a new even gen
// registers in active, then checks gen again before it reads the fields;
// the caller, having made gen odd, waits for active to drop to zero before
// it writes them. So a helper reads a job's fields only while they cannot
// change, and a helper that arrives after the job is over finds no units
// left.
type pool struct {
	helpers int   // pool goroutines (workers 1..helpers)
	spin    int64 // nanoseconds a helper spins before parking (0: park at once)
	gen     atomic.Uint64
	active  atomic.Int32
	next    atomic.Int64 // first unclaimed unit
	done    atomic.Int64 // units finished
	closed  atomic.Bool

	// The current job; written only while gen is odd and active is zero.
	j            job
	total, grain int
	want         int // helpers that take part (workers 1..want)

	park   []parker // per pool goroutine, index w-1
	caller parker   // where the caller sleeps when a helper's chunk takes long
}

// parker is where a pool goroutine sleeps between bursts of jobs.
type parker struct {
	sleeping atomic.Int32 // 1: parked (or about to), waiting on ch
	ch       chan struct{}
	_        [48]byte // keep parkers on separate cache lines
}

// spinFor is how long a helper keeps polling for the next job before it
// parks: longer than the gaps between the operations of a decode step
// (sampling, the scheduler's bookkeeping), short enough that an idle
// backend gives its processors back at once to the eye.
const spinFor = 50 * time.Microsecond

func newPool(threads int) *pool {
	p := &pool{helpers: threads - 1, park: make([]parker, max(threads-1, 0))}
	// Spinning only pays when every worker can have a processor of its
	// own; with more workers than processors it would take time from the
	// worker that holds a chunk.
	if threads <= runtime.GOMAXPROCS(0) {
		p.spin = int64(spinFor)
	}
	p.caller.ch = make(chan struct{}, 1)
	for i := range p.park {
		p.park[i].ch = make(chan struct{}, 1)
		go p.loop(i + 1)
	}
	return p
}

// loop is pool goroutine w: it takes part in every job that wants it,
// until the pool is closed.
func (p *pool) loop(w int) {
	var seen uint64
	for {
		g, ok := p.await(w, seen)
		if !ok {
			return
		}
		seen = g
		p.active.Add(1)
		if p.gen.Load() == g && w <= p.want {
			p.work(w)
		}
		p.active.Add(-1)
	}
}

// await returns the next published generation after seen, spinning for a
// while and then parking; ok is false once the pool is closed.
func (p *pool) await(w int, seen uint64) (gen uint64, ok bool) {
	pk := &p.park[w-1]
	var start int64
	for i := 0; ; i++ {
		if g := p.gen.Load(); g != seen && g&1 == 0 {
			return g, true
		}
		if p.closed.Load() {
			return 0, false
		}
		if i&63 != 63 {
			continue
		}
		// Every 64 polls: give other goroutines on this processor a turn,
		// and check the clock.
		now := nanotime()
		if start == 0 {
			start = now
		}
		if now-start < p.spin {
			if i&1023 == 1023 {
				runtime.Gosched()
			}
			continue
		}
		// Park. Announce it first, then look once more: either we see the
		// new job, or the caller (which publishes before it looks at
		// sleeping) sees us asleep and sends a token.
		pk.sleeping.Store(1)
		if g := p.gen.Load(); (g != seen && g&1 == 0) || p.closed.Load() {
			if !pk.sleeping.CompareAndSwap(1, 0) {
				<-pk.ch // the caller is sending a token: take it
			}
		} else {
			<-pk.ch
		}
		i, start = 0, 0
	}
}

// work claims and runs chunks until none are left.
func (p *pool) work(w int) {
	for {
		lo := int(p.next.Add(int64(p.grain))) - p.grain
		if lo >= p.total {
			return
		}
		hi := min(lo+p.grain, p.total)
		p.j.run(w, lo, hi)
		if p.done.Add(int64(hi-lo)) == int64(p.total) && w != 0 {
			// The last chunk: wake the caller if it went to sleep.
			if c := &p.caller; c.sleeping.Load() == 1 && c.sleeping.CompareAndSwap(1, 0) {
				c.ch <- struct{}{}
			}
		}
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
	want := min(p.helpers, chunks-1)
	if want <= 0 {
		j.run(0, 0, total)
		return
	}
	g := p.gen.Load()
	p.gen.Store(g + 1) // odd: fields being written
	for p.active.Load() != 0 {
		// A helper is still looking at the previous job (it finds no units
		// left and leaves at once).
		runtime.Gosched()
	}
	p.j, p.total, p.grain, p.want = j, total, grain, want
	p.next.Store(0)
	p.done.Store(0)
	p.gen.Store(g + 2) // published
	for i := range want {
		if pk := &p.park[i]; pk.sleeping.Load() == 1 && pk.sleeping.CompareAndSwap(1, 0) {
			pk.ch <- struct{}{}
		}
	}
	p.work(0)
	// Wait for the chunks the helpers hold: spin briefly, then (a helper
	// was descheduled, say by another process) sleep until the one that
	// finishes the last chunk wakes us, leaving the processor to it.
	var start int64
	for i := 0; p.done.Load() < int64(total); i++ {
		if i&63 != 63 {
			continue
		}
		now := nanotime()
		if start == 0 {
			start = now
		}
		if now-start < callerSpin {
			runtime.Gosched()
			continue
		}
		c := &p.caller
		c.sleeping.Store(1)
		if p.done.Load() < int64(total) {
			<-c.ch
		} else if !c.sleeping.CompareAndSwap(1, 0) {
			<-c.ch // a helper is sending the token: take it
		}
	}
}

// callerSpin is how long, in nanoseconds, the caller polls for the
// helpers' last chunks before it sleeps.
const callerSpin = int64(30 * time.Microsecond)

// close stops the pool goroutines.
func (p *pool) close() {
	p.closed.Store(true)
	for i := range p.park {
		if pk := &p.park[i]; pk.sleeping.CompareAndSwap(1, 0) {
			pk.ch <- struct{}{}
		}
	}
}

// nanotime is a monotonic clock in nanoseconds.
func nanotime() int64 { return int64(time.Since(epoch)) }

var epoch = time.Now()

// minChunk is the least work, in multiply-adds or elements, worth handing
// to another goroutine: with the helpers awake a chunk costs well under a
// microsecond to hand out.
const minChunk = 16384

// splitGrain returns a chunk size that gives each of threads goroutines
// about four chunks of total units, and at least minGrain units per chunk
// so the per-chunk overhead stays small.
func splitGrain(total, threads, minGrain int) int {
	g := (total + 4*threads - 1) / (4 * threads)
	return max(g, minGrain, 1)
}
