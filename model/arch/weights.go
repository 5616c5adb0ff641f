package arch

import (
	"fmt"
	"runtime"

	"github.com/loomllm/loom/internal/par"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// linear is a weight matrix applied as dst = x·Wᵀ. It is one tensor, or
// several row blocks when matrices that the architecture concatenates
// (Q/K/V, gate/up) are stored in different types; then each block writes
// its own columns of dst.
type linear struct {
	parts []backend.Tensor
	offs  []int // first output column of each part
}

// rows is the number of output columns.
func (l *linear) rows() int {
	n := 0
	for _, p := range l.parts {
		n += p.Rows()
	}
	return n
}

func (l *linear) forward(be backend.Backend, dst, x backend.Tensor) {
	if len(l.parts) == 1 {
		be.MatMul(dst, x, l.parts[0])
		return
	}
	for i, p := range l.parts {
		be.MatMul(dst.ColSlice(l.offs[i], l.offs[i]+p.Rows()), x, p)
	}
}

// part names one tensor of a matrix and the rows it must have.
type part struct {
	name string
	rows int
}

// weights moves a model's tensors onto a backend, remembering what it
// allocated so Close can free it, and the first error, so the
// architectures can load field by field and check once.
type weights struct {
	be          backend.Backend
	m           *model.Model
	opt         Options
	owned       []backend.Tensor
	done, total int64
	err         error
}

func newWeights(be backend.Backend, m *model.Model, opt Options) *weights {
	w := &weights{be: be, m: m, opt: opt}
	for _, t := range m.Tensors {
		w.total += int64(len(t.Data))
	}
	return w
}

func (w *weights) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// free releases everything loaded so far.
func (w *weights) free() {
	for _, t := range w.owned {
		w.be.Free(t)
	}
	w.owned = nil
}

func (w *weights) progress(n int) {
	w.done += int64(n)
	if w.opt.Progress != nil {
		w.opt.Progress(w.done, w.total)
	}
}

func (w *weights) has(name string) bool {
	_, ok := w.m.Tensors[name]
	return ok
}

// tensor looks a tensor up and checks its shape and size.
func (w *weights) tensor(name string, rows, cols int) *model.Tensor {
	if w.err != nil {
		return nil
	}
	t, err := w.m.Tensor(name, rows, cols)
	if err != nil {
		w.fail(err)
		return nil
	}
	rb, err := t.DType.RowBytes(t.Cols)
	if err == nil && (t.Rows <= 0 || len(t.Data) != t.Rows*rb) {
		err = fmt.Errorf("%w: %d bytes for %d×%d %v", model.ErrFormat, len(t.Data), t.Rows, t.Cols, t.DType)
	}
	if err != nil {
		w.fail(fmt.Errorf("%s: tensor %q: %w", w.m.Path, name, err))
		return nil
	}
	return t
}

// target is the type a weight matrix is kept in on the backend.
func (w *weights) target(t *model.Tensor) backend.DType {
	dt := t.DType
	conv := w.opt.Convert
	if conv != backend.F32 && !dt.Quantized() && t.Cols%conv.BlockElems() == 0 && w.be.SupportsWeights(conv) {
		dt = conv
	}
	if !w.be.SupportsWeights(dt) {
		if dt == backend.Q3_K && w.be.SupportsWeights(backend.Q6_K) {
			return backend.Q6_K // the same values at 6.6 bits (quant.ExactQ6_K)
		}
		// A quantized type the backend cannot multiply by (K-quants, Q5_0, ...):
		// Q8_0 keeps its precision (255 levels per 32 elements against at
		// most 64 per 16) at about a quarter of F32's memory.
		dt = backend.F32
		if t.DType.Quantized() && t.Cols%backend.Q8_0.BlockElems() == 0 && w.be.SupportsWeights(backend.Q8_0) {
			dt = backend.Q8_0
		}
	}
	return dt
}

// matrix loads the named tensors, each cols wide, as one weight of their
// rows concatenated, or as separate parts where their types differ or
// where they can be used in place (mapApart).
func (w *weights) matrix(cols int, parts ...part) linear {
	var l linear
	ts := make([]*model.Tensor, len(parts))
	same := true
	for i, p := range parts {
		ts[i] = w.tensor(p.name, p.rows, cols)
		if w.err != nil {
			return l
		}
		same = same && w.target(ts[i]) == w.target(ts[0])
	}
	if same && !w.mapApart(ts) {
		l.parts = []backend.Tensor{w.load(ts...)}
		l.offs = []int{0}
		return l
	}
	off := 0
	for _, t := range ts {
		l.parts = append(l.parts, w.load(t))
		l.offs = append(l.offs, off)
		off += t.Rows
	}
	return l
}

// mapApartMin is the size, in elements, from which the parts of a matrix
// (Q/K/V, gate/up) that a HostMapper can use in place stay apart, one
// product each, instead of being copied into one concatenated weight: at
// a million weights a product's few microseconds of dispatch are nothing,
// and an 8B model's mapped file is not copied again.
const mapApartMin = 1 << 20

// mapApart reports whether ts, parts of one matrix, are better left as
// separate mapped weights than copied together (see mapApartMin).
func (w *weights) mapApart(ts []*model.Tensor) bool {
	if _, ok := w.be.(backend.HostMapper); !ok || len(ts) < 2 {
		return false
	}
	for _, t := range ts {
		if w.target(t) != t.DType || t.Rows*t.Cols < mapApartMin {
			return false
		}
	}
	return true
}

// load puts tensors of one target type onto the backend as one weight of
// their rows concatenated: mapped in place where the backend can and
// nothing needs converting, else uploaded (converted in chunks of rows).
func (w *weights) load(ts ...*model.Tensor) backend.Tensor {
	if w.err != nil {
		return backend.Tensor{}
	}
	dt, cols, rows := w.target(ts[0]), ts[0].Cols, 0
	for _, t := range ts {
		rows += t.Rows
	}
	if hm, ok := w.be.(backend.HostMapper); ok && len(ts) == 1 && dt == ts[0].DType {
		t, err := hm.MapHost(dt, rows, cols, ts[0].Data)
		if err != nil {
			w.fail(fmt.Errorf("%s: tensor %q: %w", w.m.Path, ts[0].Name, err))
			return backend.Tensor{}
		}
		w.owned = append(w.owned, t)
		w.progress(len(ts[0].Data))
		return t
	}
	dst, err := w.be.Alloc(dt, rows, cols)
	if err != nil {
		w.fail(fmt.Errorf("%s: tensor %q: %w", w.m.Path, ts[0].Name, err))
		return backend.Tensor{}
	}
	w.owned = append(w.owned, dst)
	r0 := 0
	for _, t := range ts {
		if err := w.upload(dst.Slice(r0, r0+t.Rows), t); err != nil {
			w.fail(fmt.Errorf("%s: tensor %q: %w", w.m.Path, t.Name, err))
			return backend.Tensor{}
		}
		r0 += t.Rows
	}
	return dst
}

// upload copies t into dst, converting its type in chunks of rows when
// the types differ, so no host buffer of the whole tensor is needed.
func (w *weights) upload(dst backend.Tensor, t *model.Tensor) error {
	if dst.DType() == t.DType {
		err := w.be.Upload(dst, t.Data)
		w.progress(len(t.Data))
		return err
	}
	srb, _ := t.DType.RowBytes(t.Cols)
	drb := dst.RowBytes()
	chunk := max(1, (4<<20)/(4*t.Cols))
	f := make([]float32, chunk*t.Cols)
	buf := make([]byte, chunk*drb)
	errs := make([]error, chunk)
	for r0 := 0; r0 < t.Rows; r0 += chunk {
		n := min(chunk, t.Rows-r0)
		// Rows convert independently: on every core (a Q6_K matrix takes
		// about 8 ns a weight to requantize on one).
		par.For(n, runtime.GOMAXPROCS(0), func(r int) {
			src, out := t.Data[(r0+r)*srb:(r0+r+1)*srb], buf[r*drb:(r+1)*drb]
			switch {
			case dst.DType() == backend.Q8_0 && quant.ExactQ8_0(t.DType, out, src):
				return // Q4_0, Q5_0, IQ4_NL: the same values, no rounding
			case dst.DType() == backend.Q6_K && quant.ExactQ6_K(t.DType, out, src):
				return // Q3_K
			}
			row := f[r*t.Cols : (r+1)*t.Cols]
			errs[r] = quant.Dequantize(t.DType, row, src)
			encode(dst.DType(), out, row)
		})
		for _, err := range errs[:n] {
			if err != nil {
				return err
			}
		}
		if err := w.be.Upload(dst.Slice(r0, r0+n), buf[:n*drb]); err != nil {
			return err
		}
		w.progress(n * srb)
	}
	return nil
}

// encode writes src in type dt (F32, F16, BF16 or Q8_0) to dst.
func encode(dt backend.DType, dst []byte, src []float32) {
	switch dt {
	case backend.F16:
		quant.EncodeF16(dst, src)
	case backend.BF16:
		quant.EncodeBF16(dst, src)
	case backend.Q8_0:
		quant.QuantizeQ8_0(dst, src)
	default:
		copy(dst, quant.F32Bytes(src))
	}
}

// vector loads the named vectors (norm weights, biases; part.rows is each
// one's length) as one F32 1 × n tensor of their elements concatenated.
func (w *weights) vector(parts ...part) backend.Tensor {
	if w.err != nil {
		return backend.Tensor{}
	}
	n := 0
	for _, p := range parts {
		n += p.rows
	}
	v := make([]float32, n)
	off := 0
	for _, p := range parts {
		t := w.tensor(p.name, 1, p.rows)
		if t == nil {
			return backend.Tensor{}
		}
		if err := quant.Dequantize(t.DType, v[off:off+p.rows], t.Data); err != nil {
			w.fail(fmt.Errorf("%s: tensor %q: %w", w.m.Path, p.name, err))
			return backend.Tensor{}
		}
		off += p.rows
		w.progress(len(t.Data))
	}
	return w.f32(1, n, v)
}

// f32 allocates a rows × cols F32 tensor holding v.
func (w *weights) f32(rows, cols int, v []float32) backend.Tensor {
	if w.err != nil {
		return backend.Tensor{}
	}
	t := w.alloc(backend.F32, rows, cols)
	if w.err == nil {
		if err := w.be.Upload(t, quant.F32Bytes(v)); err != nil {
			w.fail(err)
		}
	}
	return t
}

// alloc allocates a tensor the model owns (activations, inputs).
func (w *weights) alloc(dt backend.DType, rows, cols int) backend.Tensor {
	if w.err != nil {
		return backend.Tensor{}
	}
	t, err := w.be.Alloc(dt, rows, cols)
	if err != nil {
		w.fail(fmt.Errorf("%s: activations: %w", w.m.Path, err))
		return backend.Tensor{}
	}
	w.owned = append(w.owned, t)
	return t
}
