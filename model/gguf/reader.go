package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"

	"github.com/loomllm/loom/internal/mmap"
	"github.com/loomllm/loom/model"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment of a file without general.alignment.
const DefaultAlignment = 32

// MaxDims is the largest number of dimensions a tensor may have (ggml's limit).
const MaxDims = 4

// maxDepth bounds the nesting of arrays of arrays, so a hostile file cannot
// make the decoder recurse without limit.
const maxDepth = 8

// Sentinel errors. Each wraps model.ErrFormat (or model.ErrUnsupported /
// model.ErrMissing), and every error returned names the file, the key or
// tensor, and the byte offset at fault.
var (
	ErrMagic      = fmt.Errorf("%w: not a GGUF file (bad magic)", model.ErrFormat)
	ErrVersion    = fmt.Errorf("%w: GGUF version", model.ErrUnsupported)
	ErrTruncated  = fmt.Errorf("%w: truncated", model.ErrFormat)
	ErrValueType  = fmt.Errorf("%w: unknown metadata value type", model.ErrFormat)
	ErrNesting    = fmt.Errorf("%w: arrays nested more than %d deep", model.ErrFormat, maxDepth)
	ErrDuplicate  = fmt.Errorf("%w: duplicate name", model.ErrFormat)
	ErrAlignment  = fmt.Errorf("%w: bad general.alignment", model.ErrFormat)
	ErrTensorType = fmt.Errorf("%w: unknown tensor type", model.ErrFormat)
	ErrShape      = fmt.Errorf("%w: bad tensor shape", model.ErrFormat)
	ErrOffset     = fmt.Errorf("%w: tensor data offset outside the data section or misaligned", model.ErrFormat)
	ErrOverlap    = fmt.Errorf("%w: overlapping tensor data", model.ErrFormat)
	ErrKeyMissing = fmt.Errorf("%w: metadata key", model.ErrMissing)
	ErrKeyType    = fmt.Errorf("%w: metadata value of the wrong type", model.ErrFormat)
)

// File is a parsed GGUF file: its metadata and tensor directory, with the
// tensor data memory-mapped (Open) or held in a caller's buffer (Parse).
type File struct {
	// Path names the file in errors.
	Path    string
	Version uint32
	// Alignment of the data section and of every tensor's offset.
	Alignment int64
	// KV holds the metadata in file order.
	KV []KV
	// Tensors holds the tensor directory in file order.
	Tensors []TensorInfo
	// DataOffset is the file offset where the data section starts.
	DataOffset int64

	data  []byte
	keys  map[string]int
	names map[string]int
	unmap func() error
}

// KV is one metadata key and its value.
//
// Value holds a Go value of the matching type: uint8, int8, uint16, int16,
// uint32, int32, float32, bool, string, uint64, int64, float64; an array of
// one of these is a slice of it ([]float32, []string, ...), and an array of
// arrays is an []any whose elements are such slices (or []any again).
type KV struct {
	Key    string
	Type   ValueType
	Value  any
	Offset int64 // file offset of the key's record
}

// TensorInfo describes one tensor of the directory.
type TensorInfo struct {
	Name string
	Type TensorType
	// Dims is ggml's ne: Dims[0] is the number of elements in a row (the
	// fastest-varying dimension), Dims[1] the number of rows, and so on.
	Dims []uint64
	// Offset is the tensor's byte offset within the data section.
	Offset uint64
	// Size is the tensor's size in bytes.
	Size int64
	// InfoOffset is the file offset of the tensor's directory record.
	InfoOffset int64
}

// Elems returns the number of elements (the product of Dims).
func (t *TensorInfo) Elems() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Cols is Dims[0], the elements in a row.
func (t *TensorInfo) Cols() int { return int(t.Dims[0]) }

// Rows is the product of the other dimensions (1 for a vector).
func (t *TensorInfo) Rows() int { return int(t.Elems() / t.Dims[0]) }

// Open memory-maps the GGUF file at path and parses its header. Only the
// header's pages are read; tensor data is paged in when used. Close the
// File to unmap it.
func Open(path string) (*File, error) {
	data, unmap, err := mmap.File(path)
	if err != nil {
		if errors.Is(err, mmap.ErrTooLarge) {
			err = fmt.Errorf("%w: %w", err, model.ErrUnsupported)
		}
		return nil, err
	}
	f, err := Parse(path, data)
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Close unmaps the file. Tensor data and byte slices obtained from the File
// are invalid afterwards. Closing a File returned by Parse does nothing.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	u := f.unmap
	f.unmap = nil
	return u()
}

// Size is the size of the file in bytes.
func (f *File) Size() int64 { return int64(len(f.data)) }

// Lookup returns the metadata entry for key.
func (f *File) Lookup(key string) (*KV, bool) {
	i, ok := f.keys[key]
	if !ok {
		return nil, false
	}
	return &f.KV[i], true
}

// Tensor returns the directory entry of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.names[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// Data returns the bytes of tensor t, sharing the file's memory.
func (f *File) Data(t *TensorInfo) []byte {
	start := f.DataOffset + int64(t.Offset)
	return f.data[start : start+t.Size : start+t.Size]
}

// Parse parses a GGUF file held in data; name identifies it in errors. The
// File's tensor data and strings refer to data, which must not change.
// Parse never allocates more than a small multiple of len(data).
func Parse(name string, data []byte) (*File, error) {
	d := &decoder{name: name, b: data}
	f := &File{Path: name, data: data, Alignment: DefaultAlignment}
	if err := d.header(f); err != nil {
		return nil, err
	}
	return f, nil
}

// decoder reads little-endian values from b at off.
type decoder struct {
	name string
	b    []byte
	off  int
}

func (d *decoder) errorf(off int, sentinel error, format string, args ...any) error {
	return fmt.Errorf("%s: offset %d: %s: %w", d.name, off, fmt.Sprintf(format, args...), sentinel)
}

func (d *decoder) left() int { return len(d.b) - d.off }

// need checks that n bytes remain for what.
func (d *decoder) need(n uint64, what string) error {
	if n > uint64(d.left()) {
		return d.errorf(d.off, ErrTruncated, "%s needs %d bytes, %d left", what, n, d.left())
	}
	return nil
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(d.b[d.off:])
	d.off += 8
	return v, nil
}

func (d *decoder) str(what string) (string, error) {
	start := d.off
	s, ok := d.rawStr()
	if !ok {
		return "", d.strError(start, what)
	}
	return s, nil
}

// rawStr reads a length-prefixed string; ok is false (and the offset
// unchanged) when it does not fit. It formats nothing, for the hot loop
// over vocabulary arrays.
func (d *decoder) rawStr() (string, bool) {
	if d.left() < 8 {
		return "", false
	}
	n := binary.LittleEndian.Uint64(d.b[d.off:])
	if n > uint64(d.left()-8) {
		return "", false
	}
	s := string(d.b[d.off+8 : d.off+8+int(n)])
	d.off += 8 + int(n)
	return s, true
}

// strError describes why the string at start does not fit.
func (d *decoder) strError(start int, what string) error {
	d.off = start
	if d.left() < 8 {
		return d.errorf(start, ErrTruncated, "%s length needs 8 bytes, %d left", what, d.left())
	}
	n := binary.LittleEndian.Uint64(d.b[start:])
	return d.errorf(start, ErrTruncated, "%s of %d bytes, %d left", what, n, d.left()-8)
}

func (d *decoder) header(f *File) error {
	if len(d.b) < 4 || string(d.b[:4]) != Magic {
		n := min(len(d.b), 4)
		return d.errorf(0, ErrMagic, "magic %q", d.b[:n])
	}
	d.off = 4
	v, err := d.u32("version")
	if err != nil {
		return err
	}
	if v != 2 && v != 3 {
		return d.errorf(4, ErrVersion, "version %d (want 2 or 3)", v)
	}
	f.Version = v
	nt, err := d.u64("tensor count")
	if err != nil {
		return err
	}
	nkv, err := d.u64("metadata count")
	if err != nil {
		return err
	}
	// Every record takes at least this many bytes, which bounds the counts
	// by the file size before anything is allocated.
	const minKV, minTensor = 8 + 4 + 1, 8 + 4 + 8 + 4 + 8
	if nkv > uint64(d.left())/minKV {
		return d.errorf(16, ErrTruncated, "%d metadata entries cannot fit in %d bytes", nkv, d.left())
	}
	if nt > uint64(d.left())/minTensor {
		return d.errorf(8, ErrTruncated, "%d tensors cannot fit in %d bytes", nt, d.left())
	}
	f.KV = make([]KV, 0, nkv)
	f.keys = make(map[string]int, nkv)
	for i := uint64(0); i < nkv; i++ {
		kv, err := d.kv()
		if err != nil {
			return err
		}
		if _, dup := f.keys[kv.Key]; dup {
			return d.errorf(int(kv.Offset), ErrDuplicate, "metadata key %q repeated", kv.Key)
		}
		f.keys[kv.Key] = len(f.KV)
		f.KV = append(f.KV, kv)
	}
	if kv, ok := f.Lookup("general.alignment"); ok {
		a, ok := asInt(kv.Value)
		if !ok || a <= 0 || a&(a-1) != 0 || a > 1<<30 {
			return d.errorf(int(kv.Offset), ErrAlignment, "general.alignment = %v (%v), want a power of two", kv.Value, kv.Type)
		}
		f.Alignment = a
	}
	f.Tensors = make([]TensorInfo, 0, nt)
	f.names = make(map[string]int, nt)
	for i := uint64(0); i < nt; i++ {
		t, err := d.tensorInfo()
		if err != nil {
			return err
		}
		if _, dup := f.names[t.Name]; dup {
			return d.errorf(int(t.InfoOffset), ErrDuplicate, "tensor %q repeated", t.Name)
		}
		f.names[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	f.DataOffset = (int64(d.off) + f.Alignment - 1) / f.Alignment * f.Alignment
	return d.checkData(f)
}

// checkData checks that every tensor lies aligned inside the data section
// and that no two tensors overlap.
func (d *decoder) checkData(f *File) error {
	if len(f.Tensors) == 0 {
		return nil
	}
	dataLen := int64(len(d.b)) - f.DataOffset
	if dataLen < 0 {
		return d.errorf(d.off, ErrTruncated, "data section starts at %d, past the end of the file", f.DataOffset)
	}
	order := make([]*TensorInfo, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		order[i] = t
		if t.Offset%uint64(f.Alignment) != 0 {
			return d.errorf(int(t.InfoOffset), ErrOffset, "tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		if t.Offset > uint64(dataLen) {
			return d.errorf(int(t.InfoOffset), ErrOffset, "tensor %q: offset %d is past the %d-byte data section", t.Name, t.Offset, dataLen)
		}
		if t.Size > dataLen-int64(t.Offset) {
			return d.errorf(int(t.InfoOffset), ErrTruncated, "tensor %q: data [%d, %d) ends past the %d-byte data section (file offset %d)",
				t.Name, t.Offset, int64(t.Offset)+t.Size, dataLen, f.DataOffset)
		}
	}
	sort.Slice(order, func(i, j int) bool { return order[i].Offset < order[j].Offset })
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		if int64(a.Offset)+a.Size > int64(b.Offset) {
			return d.errorf(int(b.InfoOffset), ErrOverlap, "tensor %q at [%d, %d) overlaps %q at [%d, %d)",
				b.Name, b.Offset, int64(b.Offset)+b.Size, a.Name, a.Offset, int64(a.Offset)+a.Size)
		}
	}
	return nil
}

func (d *decoder) kv() (KV, error) {
	kv := KV{Offset: int64(d.off)}
	var err error
	if kv.Key, err = d.str("metadata key"); err != nil {
		return kv, err
	}
	t, err := d.u32(fmt.Sprintf("type of key %q", kv.Key))
	if err != nil {
		return kv, err
	}
	kv.Type = ValueType(t)
	if kv.Value, err = d.value(kv.Type, kv.Key, 0); err != nil {
		return kv, err
	}
	return kv, nil
}

// value decodes one value of type t for key at array depth depth.
func (d *decoder) value(t ValueType, key string, depth int) (any, error) {
	start := d.off
	if sz := t.size(); sz > 0 {
		if err := d.need(uint64(sz), fmt.Sprintf("key %q value", key)); err != nil {
			return nil, err
		}
		b := d.b[d.off:]
		d.off += sz
		switch t {
		case TypeUint8:
			return b[0], nil
		case TypeInt8:
			return int8(b[0]), nil
		case TypeBool:
			return b[0] != 0, nil
		case TypeUint16:
			return binary.LittleEndian.Uint16(b), nil
		case TypeInt16:
			return int16(binary.LittleEndian.Uint16(b)), nil
		case TypeUint32:
			return binary.LittleEndian.Uint32(b), nil
		case TypeInt32:
			return int32(binary.LittleEndian.Uint32(b)), nil
		case TypeFloat32:
			return math.Float32frombits(binary.LittleEndian.Uint32(b)), nil
		case TypeUint64:
			return binary.LittleEndian.Uint64(b), nil
		case TypeInt64:
			return int64(binary.LittleEndian.Uint64(b)), nil
		default: // TypeFloat64
			return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
		}
	}
	switch t {
	case TypeString:
		return d.str(fmt.Sprintf("key %q string", key))
	case TypeArray:
		return d.array(key, depth)
	}
	return nil, d.errorf(start-4, ErrValueType, "key %q: value type %d", key, uint32(t))
}

func (d *decoder) array(key string, depth int) (any, error) {
	start := d.off
	if depth >= maxDepth {
		return nil, d.errorf(start, ErrNesting, "key %q", key)
	}
	et, err := d.u32(fmt.Sprintf("key %q array type", key))
	if err != nil {
		return nil, err
	}
	n, err := d.u64(fmt.Sprintf("key %q array length", key))
	if err != nil {
		return nil, err
	}
	elem := ValueType(et)
	minSize := elem.size()
	switch elem {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	if minSize == 0 {
		return nil, d.errorf(start, ErrValueType, "key %q: array of value type %d", key, et)
	}
	if n > uint64(d.left()/minSize) {
		return nil, d.errorf(start, ErrTruncated, "key %q: array of %d %v needs at least %d bytes, %d left", key, n, elem, n*uint64(minSize), d.left())
	}
	cnt := int(n)
	if sz := elem.size(); sz > 0 {
		b := d.b[d.off : d.off+cnt*sz]
		d.off += cnt * sz
		return decodeFixed(elem, b, cnt), nil
	}
	if elem == TypeString {
		out := make([]string, cnt)
		for i := range out {
			start := d.off
			var ok bool
			if out[i], ok = d.rawStr(); !ok {
				return nil, d.strError(start, fmt.Sprintf("key %q element %d", key, i))
			}
		}
		return out, nil
	}
	out := make([]any, cnt)
	for i := range out {
		if out[i], err = d.array(key, depth+1); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// decodeFixed decodes n fixed-size values of type t from b.
func decodeFixed(t ValueType, b []byte, n int) any {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return append(make([]uint8, 0, n), b...)
	case TypeInt8:
		return fill(n, func(i int) int8 { return int8(b[i]) })
	case TypeBool:
		return fill(n, func(i int) bool { return b[i] != 0 })
	case TypeUint16:
		return fill(n, func(i int) uint16 { return le.Uint16(b[2*i:]) })
	case TypeInt16:
		return fill(n, func(i int) int16 { return int16(le.Uint16(b[2*i:])) })
	case TypeUint32:
		return fill(n, func(i int) uint32 { return le.Uint32(b[4*i:]) })
	case TypeInt32:
		return fill(n, func(i int) int32 { return int32(le.Uint32(b[4*i:])) })
	case TypeFloat32:
		return fill(n, func(i int) float32 { return math.Float32frombits(le.Uint32(b[4*i:])) })
	case TypeUint64:
		return fill(n, func(i int) uint64 { return le.Uint64(b[8*i:]) })
	case TypeInt64:
		return fill(n, func(i int) int64 { return int64(le.Uint64(b[8*i:])) })
	default: // TypeFloat64
		return fill(n, func(i int) float64 { return math.Float64frombits(le.Uint64(b[8*i:])) })
	}
}

func fill[T any](n int, at func(int) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = at(i)
	}
	return out
}

func (d *decoder) tensorInfo() (TensorInfo, error) {
	t := TensorInfo{InfoOffset: int64(d.off)}
	var err error
	if t.Name, err = d.str("tensor name"); err != nil {
		return t, err
	}
	nd, err := d.u32(fmt.Sprintf("tensor %q dimension count", t.Name))
	if err != nil {
		return t, err
	}
	if nd == 0 || nd > MaxDims {
		return t, d.errorf(int(t.InfoOffset), ErrShape, "tensor %q: %d dimensions (want 1 to %d)", t.Name, nd, MaxDims)
	}
	t.Dims = make([]uint64, nd)
	for i := range t.Dims {
		if t.Dims[i], err = d.u64(fmt.Sprintf("tensor %q dimension %d", t.Name, i)); err != nil {
			return t, err
		}
	}
	tt, err := d.u32(fmt.Sprintf("tensor %q type", t.Name))
	if err != nil {
		return t, err
	}
	t.Type = TensorType(tt)
	if !t.Type.Known() {
		return t, d.errorf(d.off-4, ErrTensorType, "tensor %q: type %d", t.Name, tt)
	}
	if t.Offset, err = d.u64(fmt.Sprintf("tensor %q offset", t.Name)); err != nil {
		return t, err
	}
	if t.Size, err = tensorSize(t.Type, t.Dims); err != nil {
		return t, d.errorf(int(t.InfoOffset), ErrShape, "tensor %q: %v", t.Name, err)
	}
	return t, nil
}

var errOverflow = errors.New("size overflows")

// tensorSize returns the bytes a tensor of type t and shape dims occupies,
// checking that both the element count and the byte size fit in an int64.
func tensorSize(t TensorType, dims []uint64) (int64, error) {
	be, bb := uint64(t.BlockElems()), uint64(t.BlockBytes())
	for i, n := range dims {
		if n == 0 {
			return 0, fmt.Errorf("dimension %d is 0", i)
		}
	}
	if dims[0]%be != 0 {
		return 0, fmt.Errorf("row of %d elements is not a multiple of the %v block size %d", dims[0], t, be)
	}
	elems, size := dims[0], dims[0]/be*bb
	for _, n := range dims[1:] {
		hi1, lo1 := bits.Mul64(elems, n)
		hi2, lo2 := bits.Mul64(size, n)
		if hi1 != 0 || hi2 != 0 || lo1 > math.MaxInt64 || lo2 > math.MaxInt64 {
			return 0, fmt.Errorf("dimensions %v: %w", dims, errOverflow)
		}
		elems, size = lo1, lo2
	}
	if elems > math.MaxInt64 || size > math.MaxInt64 {
		return 0, fmt.Errorf("dimensions %v: %w", dims, errOverflow)
	}
	return int64(size), nil
}
