package gpu

import (
	"fmt"

	"github.com/loomllm/loom/runtime/backend"
)

// This file holds the argument checks of every operation. They are plain
// functions of tensor shapes, free of cgo, so they build and are tested
// without CUDA; the cuda build calls them before each launch.

// errOp wraps a sentinel error with the operation's name and a description.
func errOp(sentinel error, op, format string, args ...any) error {
	return fmt.Errorf("gpu: %s: %w: %s", op, sentinel, fmt.Sprintf(format, args...))
}

// wantType checks t's element type.
func wantType(op, name string, t backend.Tensor, dt backend.DType) error {
	if t.IsZero() {
		return errOp(backend.ErrShape, op, "%s is the zero tensor", name)
	}
	if t.DType() != dt {
		return errOp(backend.ErrDType, op, "%s is %v, want %v", name, t, dt)
	}
	return nil
}

// wantShape checks that t is an F32 tensor of rows × cols.
func wantShape(op, name string, t backend.Tensor, rows, cols int) error {
	if err := wantType(op, name, t, backend.F32); err != nil {
		return err
	}
	if t.Rows() != rows || t.Cols() != cols {
		return errOp(backend.ErrShape, op, "%s is %v, want %d×%d", name, t, rows, cols)
	}
	return nil
}

// wantIndex checks that t is an I32 n × 1 tensor (ids, positions).
func wantIndex(op, name string, t backend.Tensor, n int) error {
	if err := wantType(op, name, t, backend.I32); err != nil {
		return err
	}
	if t.Rows() != n || t.Cols() != 1 {
		return errOp(backend.ErrShape, op, "%s is %v, want %d×1", name, t, n)
	}
	return nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sameShape checks that every t is F32 with dst's shape.
func sameShape(op string, dst backend.Tensor, names []string, ts ...backend.Tensor) error {
	if err := wantType(op, "dst", dst, backend.F32); err != nil {
		return err
	}
	for i, t := range ts {
		if err := wantShape(op, names[i], t, dst.Rows(), dst.Cols()); err != nil {
			return err
		}
	}
	return nil
}

func checkEmbed(dst, table, ids backend.Tensor, weightOK func(backend.DType) bool) error {
	const op = "Embed"
	if err := wantType(op, "dst", dst, backend.F32); err != nil {
		return err
	}
	if table.IsZero() {
		return errOp(backend.ErrShape, op, "table is the zero tensor")
	}
	if !weightOK(table.DType()) {
		return errOp(backend.ErrDType, op, "table is %v", table)
	}
	if table.Cols() != dst.Cols() {
		return errOp(backend.ErrShape, op, "table %v and dst %v differ in columns", table, dst)
	}
	return wantIndex(op, "ids", ids, dst.Rows())
}

func checkAdd(dst, a, b backend.Tensor) error {
	const op = "Add"
	if err := sameShape(op, dst, []string{"a"}, a); err != nil {
		return err
	}
	if err := wantType(op, "b", b, backend.F32); err != nil {
		return err
	}
	if b.Cols() != dst.Cols() || (b.Rows() != dst.Rows() && b.Rows() != 1) {
		return errOp(backend.ErrShape, op, "b is %v, want %d×%d or 1×%d", b, dst.Rows(), dst.Cols(), dst.Cols())
	}
	return nil
}

func checkNorm(op string, dst, x backend.Tensor, params ...backend.Tensor) error {
	if err := sameShape(op, dst, []string{"x"}, x); err != nil {
		return err
	}
	for _, p := range params {
		if err := wantShape(op, "weight", p, 1, dst.Cols()); err != nil {
			return err
		}
	}
	return nil
}

func checkRoPE(dst, x, pos, freqs backend.Tensor, headDim int) error {
	const op = "RoPE"
	if err := sameShape(op, dst, []string{"x"}, x); err != nil {
		return err
	}
	if err := wantIndex(op, "pos", pos, dst.Rows()); err != nil {
		return err
	}
	if err := wantType(op, "freqs", freqs, backend.F32); err != nil {
		return err
	}
	if headDim <= 0 || dst.Cols()%headDim != 0 {
		return errOp(backend.ErrShape, op, "head size %d does not divide %d columns", headDim, dst.Cols())
	}
	if freqs.Rows() != 1 || 2*freqs.Cols() > headDim {
		return errOp(backend.ErrShape, op, "freqs is %v, want 1×half with 2·half ≤ head size %d", freqs, headDim)
	}
	return nil
}

func checkArgMax(dst, x backend.Tensor) error {
	const op = "ArgMax"
	if err := wantType(op, "x", x, backend.F32); err != nil {
		return err
	}
	return wantIndex(op, "dst", dst, x.Rows())
}

func checkMatMul(dst, x, w backend.Tensor, weightOK func(backend.DType) bool) error {
	const op = "MatMul"
	if err := wantType(op, "x", x, backend.F32); err != nil {
		return err
	}
	if w.IsZero() {
		return errOp(backend.ErrShape, op, "w is the zero tensor")
	}
	if !weightOK(w.DType()) {
		return errOp(backend.ErrDType, op, "w is %v", w)
	}
	if w.Cols() != x.Cols() {
		return errOp(backend.ErrShape, op, "x %v and w %v differ in columns", x, w)
	}
	if err := wantShape(op, "dst", dst, x.Rows(), w.Rows()); err != nil {
		return err
	}
	if overlap(dst, x) {
		return errOp(backend.ErrShape, op, "dst %v overlaps x %v", dst, x)
	}
	return nil
}

// overlap reports whether tensors a and b share memory. Column slices of
// one parent (same buffer and stride) overlap only when both their rows
// and their columns do; otherwise the test compares the byte ranges the
// tensors span (conservative).
func overlap(a, b backend.Tensor) bool {
	if a.Buffer() != b.Buffer() {
		return false
	}
	span := func(t backend.Tensor) (int, int) {
		return t.Offset(), t.Offset() + (t.Rows()-1)*t.StrideBytes() + t.RowBytes()
	}
	a0, a1 := span(a)
	b0, b1 := span(b)
	if a0 >= b1 || b0 >= a1 {
		return false
	}
	if s := a.StrideBytes(); s == b.StrideBytes() && a.RowBytes() < s && b.RowBytes() < s {
		ca, cb := a.Offset()%s, b.Offset()%s
		if ca+a.RowBytes() <= s && cb+b.RowBytes() <= s {
			return ca < cb+b.RowBytes() && cb < ca+a.RowBytes()
		}
	}
	return true
}

// checkAttention checks Attention's operands against the cache's spec.
func checkAttention(out, q, k, v backend.Tensor, spec backend.KVSpec, a backend.Attn) error {
	const op = "Attention"
	n := q.Rows()
	if err := wantType(op, "q", q, backend.F32); err != nil {
		return err
	}
	d := spec.HeadDim
	if d <= 0 || q.Cols()%d != 0 {
		return errOp(backend.ErrShape, op, "q %v is not a whole number of %d-element heads", q, d)
	}
	hq, hkv := q.Cols()/d, spec.KVHeads
	if hkv <= 0 || hq%hkv != 0 {
		return errOp(backend.ErrShape, op, "%d query heads are not a multiple of %d KV heads", hq, hkv)
	}
	if err := firstErr(
		wantShape(op, "out", out, n, hq*d),
		wantShape(op, "k", k, n, hkv*d),
		wantShape(op, "v", v, n, hkv*d),
		wantIndex(op, "pos", a.Pos, n),
		wantIndex(op, "seq", a.Seq, n),
		wantType(op, "blocks", a.Blocks, backend.I32),
	); err != nil {
		return err
	}
	if a.Layer < 0 || a.Layer >= spec.Layers {
		return errOp(backend.ErrIndex, op, "layer %d of a %d-layer cache", a.Layer, spec.Layers)
	}
	return nil
}
