package conformance

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/stretchr/testify/require"
)

// poison is the F32 bit pattern outputs are filled with before a call: a
// quiet NaN with a recognisable payload.
const poison = 0x7fe5a5a5

// suite is the state of one subtest.
type suite struct {
	t   *testing.T
	be  backend.Backend // under test
	ref backend.Backend // nil: float64 reference
	opt Options
	rng *rand.Rand
}

// sub returns the suite for subtest t, sharing the random source.
func (s *suite) sub(t *testing.T) *suite {
	c := *s
	c.t = t
	return &c
}

// operand is a host-side tensor: the bytes of a parent tensor of rows ×
// (cols+pad) elements, of which columns [off, off+cols) are the operand
// (pad is 0 for a contiguous operand).
type operand struct {
	dt            backend.DType
	rows, cols    int
	pad, off      int
	raw           []byte
	parentRowSize int // bytes per parent row
}

func newOperand(dt backend.DType, rows, cols, pad, off int) *operand {
	rb, err := dt.RowBytes(cols + pad)
	if err != nil {
		panic(err) // the suite's own shapes are valid
	}
	return &operand{dt: dt, rows: rows, cols: cols, pad: pad, off: off, raw: make([]byte, rows*rb), parentRowSize: rb}
}

// viewBytes returns the bytes of row r of the operand (not the padding).
func (o *operand) viewBytes(r int) []byte {
	eb := o.dt.BlockBytes() / o.dt.BlockElems()
	start := r*o.parentRowSize + o.off*eb
	rb, _ := o.dt.RowBytes(o.cols)
	return o.raw[start : start+rb]
}

// values returns the operand's elements widened to float32, rows packed.
func (o *operand) values() []float32 {
	out := make([]float32, o.rows*o.cols)
	for r := 0; r < o.rows; r++ {
		if err := quant.Dequantize(o.dt, out[r*o.cols:(r+1)*o.cols], o.viewBytes(r)); err != nil {
			panic(err)
		}
	}
	return out
}

// ints returns an I32 operand's elements, rows packed.
func (o *operand) ints() []int32 {
	out := make([]int32, 0, o.rows*o.cols)
	for r := 0; r < o.rows; r++ {
		b := o.viewBytes(r)
		for c := 0; c < o.cols; c++ {
			out = append(out, int32(binary.LittleEndian.Uint32(b[4*c:])))
		}
	}
	return out
}

// padding draws the padding of a strided operand: 0 when strided is false.
func (s *suite) padding(strided bool) (pad, off int) {
	if !strided {
		return 0, 0
	}
	pad = 1 + s.rng.IntN(9)
	return pad, s.rng.IntN(pad + 1)
}

// uniform returns an F32 rows × cols operand of values uniform in [lo, hi),
// strided when asked (the padding holds random values too).
func (s *suite) uniform(rows, cols int, lo, hi float32, strided bool) *operand {
	pad, off := s.padding(strided)
	o := newOperand(backend.F32, rows, cols, pad, off)
	v := quant.BytesF32(o.raw)
	for i := range v {
		v[i] = lo + (hi-lo)*s.rng.Float32()
	}
	return o
}

// ints32 returns an I32 len(v) × 1 operand.
func ints32(v []int32) *operand {
	o := newOperand(backend.I32, len(v), 1, 0, 0)
	copy(quant.BytesI32(o.raw), v)
	return o
}

// weights returns a contiguous rows × cols operand of type dt with random
// values of magnitude about 1 (quantized types: random scales and quants).
func (s *suite) weights(dt backend.DType, rows, cols int) *operand {
	o := newOperand(dt, rows, cols, 0, 0)
	switch dt {
	case backend.F32:
		v := quant.BytesF32(o.raw)
		for i := range v {
			v[i] = 2*s.rng.Float32() - 1
		}
	case backend.F16, backend.BF16:
		v := make([]float32, rows*cols)
		for i := range v {
			v[i] = 2*s.rng.Float32() - 1
		}
		if dt == backend.F16 {
			quant.EncodeF16(o.raw, v)
		} else {
			quant.EncodeBF16(o.raw, v)
		}
	case backend.Q8_0, backend.Q4_0:
		bb := dt.BlockBytes()
		for b := 0; b+bb <= len(o.raw); b += bb {
			for i := b + 2; i < b+bb; i++ {
				o.raw[i] = byte(s.rng.Uint32())
			}
			d := (0.5 + s.rng.Float32()) / 127 // q8: |w| ≤ ~1.5
			if dt == backend.Q4_0 {
				d = (0.5 + s.rng.Float32()) / 8
			}
			if s.rng.IntN(2) == 0 {
				d = -d
			}
			binary.LittleEndian.PutUint16(o.raw[b:], quant.F32ToF16(d))
		}
	case backend.Q4_K, backend.Q5_K:
		// Random quants, fifth bits, scales and mins; d and dmin sized so
		// that |d·sc·q − dmin·m| stays around 1 (sc, m ≤ 63, q ≤ 15 or 31).
		bb, qmax := dt.BlockBytes(), float32(15)
		if dt == backend.Q5_K {
			qmax = 31
		}
		for b := 0; b+bb <= len(o.raw); b += bb {
			for i := b + 4; i < b+bb; i++ {
				o.raw[i] = byte(s.rng.Uint32())
			}
			binary.LittleEndian.PutUint16(o.raw[b:], quant.F32ToF16((0.5+s.rng.Float32())/(40*qmax)))
			binary.LittleEndian.PutUint16(o.raw[b+2:], quant.F32ToF16((0.5+s.rng.Float32())/120))
		}
	case backend.Q6_K:
		// Random quants and int8 scales; d sized so that |d·sc·(q−32)|
		// stays around 1 (|sc| ≤ 128, |q−32| ≤ 32).
		bb := dt.BlockBytes()
		for b := 0; b+bb <= len(o.raw); b += bb {
			for i := b; i < b+208; i++ {
				o.raw[i] = byte(s.rng.Uint32())
			}
			binary.LittleEndian.PutUint16(o.raw[b+208:], quant.F32ToF16((0.5+s.rng.Float32())/2048))
		}
	case backend.Q2_K:
		// Random quants, scales and mins; d and dmin sized so that
		// |d·sc·q − dmin·m| stays around 1 (sc, m ≤ 15, q ≤ 3).
		bb := dt.BlockBytes()
		for b := 0; b+bb <= len(o.raw); b += bb {
			for i := b; i < b+80; i++ {
				o.raw[i] = byte(s.rng.Uint32())
			}
			binary.LittleEndian.PutUint16(o.raw[b+80:], quant.F32ToF16((0.5+s.rng.Float32())/45))
			binary.LittleEndian.PutUint16(o.raw[b+82:], quant.F32ToF16((0.5+s.rng.Float32())/30))
		}
	case backend.Q3_K:
		// Random quants, high bits and scales; d sized so that
		// |d·(s−32)·q| stays around 1 (|s−32| ≤ 32, |q| ≤ 4).
		bb := dt.BlockBytes()
		for b := 0; b+bb <= len(o.raw); b += bb {
			for i := b; i < b+108; i++ {
				o.raw[i] = byte(s.rng.Uint32())
			}
			binary.LittleEndian.PutUint16(o.raw[b+108:], quant.F32ToF16((0.5+s.rng.Float32())/64))
		}
	case backend.IQ4_NL, backend.IQ4_XS:
		// Random indices (and IQ4_XS scales); d sized so that
		// |d·(ls−32)·level| stays around 1 (|ls−32| ≤ 32, |level| ≤ 127).
		bb, scale := dt.BlockBytes(), float32(127)
		if dt == backend.IQ4_XS {
			scale *= 32
		}
		for b := 0; b+bb <= len(o.raw); b += bb {
			for i := b + 2; i < b+bb; i++ {
				o.raw[i] = byte(s.rng.Uint32())
			}
			binary.LittleEndian.PutUint16(o.raw[b:], quant.F32ToF16((0.5+s.rng.Float32())/scale))
		}
	default:
		s.t.Fatalf("conformance: no generator for %v weights", dt)
	}
	return o
}

// poisoned returns an F32 output operand filled with the poison NaN.
func (s *suite) poisoned(rows, cols int, strided bool) *operand {
	pad, off := s.padding(strided)
	o := newOperand(backend.F32, rows, cols, pad, off)
	for i := 0; i+4 <= len(o.raw); i += 4 {
		binary.LittleEndian.PutUint32(o.raw[i:], poison)
	}
	return o
}

// dev is an operand uploaded to a backend.
type dev struct {
	parent, view backend.Tensor
	o            *operand
}

// upload allocates and fills o on be, freeing it when the subtest ends.
func (s *suite) upload(be backend.Backend, o *operand) dev {
	s.t.Helper()
	p, err := be.Alloc(o.dt, o.rows, o.cols+o.pad)
	require.NoError(s.t, err, "%s: Alloc %d×%d %v", be.Name(), o.rows, o.cols+o.pad, o.dt)
	s.t.Cleanup(func() { be.Free(p) })
	require.NoError(s.t, be.Upload(p, o.raw), "%s: Upload", be.Name())
	v := p
	if o.pad > 0 {
		v = p.ColSlice(o.off, o.off+o.cols)
	}
	return dev{parent: p, view: v, o: o}
}

// result downloads an output (after the operation), checks the padding
// around a strided output is untouched, and returns its elements.
func (s *suite) result(be backend.Backend, d dev) []float32 {
	s.t.Helper()
	got := make([]byte, len(d.o.raw))
	require.NoError(s.t, be.Download(got, d.parent), "%s", be.Name())
	if d.o.pad > 0 {
		for r := 0; r < d.o.rows; r++ {
			row, want := got[r*d.o.parentRowSize:(r+1)*d.o.parentRowSize], d.o.raw[r*d.o.parentRowSize:(r+1)*d.o.parentRowSize]
			lo, hi := 4*d.o.off, 4*(d.o.off+d.o.cols)
			if !bytes.Equal(row[:lo], want[:lo]) || !bytes.Equal(row[hi:], want[hi:]) {
				s.t.Fatalf("%s: row %d: the operation wrote outside the columns [%d, %d) of its strided output", be.Name(), r, d.o.off, d.o.off+d.o.cols)
			}
		}
	}
	out := &operand{dt: d.o.dt, rows: d.o.rows, cols: d.o.cols, pad: d.o.pad, off: d.o.off, raw: got, parentRowSize: d.o.parentRowSize}
	return out.values()
}

// compare runs op on the backend under test and returns its output and the
// expected one: op on the reference backend, or ref() when there is none.
func (s *suite) compare(op func(be backend.Backend) []float32, ref func() []float32) (got, want []float32) {
	s.t.Helper()
	got = op(s.be)
	if s.ref != nil {
		return got, op(s.ref)
	}
	return got, ref()
}

// check fails the test when got is not within tol of want (see RelErr).
func (s *suite) check(what string, got, want []float32, tol float64) {
	s.t.Helper()
	e := RelErr(got, want)
	if e <= tol {
		return
	}
	bad := -1
	for i := range min(len(got), len(want)) {
		if math.IsNaN(float64(got[i])) || math.Abs(float64(got[i]-want[i])) > tol*math.Abs(float64(want[i]))+1e-6 {
			bad = i
			break
		}
	}
	msg := fmt.Sprintf("%s: %s: relative error %.3g > %.3g", s.be.Name(), what, e, tol)
	if bad >= 0 {
		msg += fmt.Sprintf("; first bad element %d: got %g, want %g", bad, got[bad], want[bad])
	}
	s.t.Error(msg)
}

// oneOf returns a random element of v.
func oneOf[T any](s *suite, v ...T) T { return v[s.rng.IntN(len(v))] }
