// Package safetensors reads and writes the safetensors format of Hugging
// Face: an 8-byte little-endian header length N, N bytes of JSON mapping
// each tensor name to its dtype, shape and [begin, end) byte range in the
// data that follows, and an optional "__metadata__" map of strings.
//
// Open memory-maps the file and parses only the header. Every length,
// shape and range is checked against the file before use: a malformed file
// gives an error naming the file, the tensor and the offset, never a panic
// or an allocation beyond the header's size.
package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"sort"

	"github.com/loomllm/loom/internal/mmap"
	"github.com/loomllm/loom/model"
)

// MaxHeader is the largest JSON header accepted (the reference
// implementation's limit).
const MaxHeader = 100 << 20

// Sentinel errors; each wraps model.ErrFormat or model.ErrUnsupported.
var (
	ErrTruncated = fmt.Errorf("%w: truncated safetensors file", model.ErrFormat)
	ErrHeader    = fmt.Errorf("%w: bad safetensors header", model.ErrFormat)
	ErrDType     = fmt.Errorf("%w: safetensors dtype", model.ErrUnsupported)
	ErrShape     = fmt.Errorf("%w: safetensors shape does not match its byte range", model.ErrFormat)
	ErrOffset    = fmt.Errorf("%w: safetensors data range outside the file", model.ErrFormat)
	ErrOverlap   = fmt.Errorf("%w: overlapping safetensors data", model.ErrFormat)
)

// dtypeSizes lists the element sizes of the safetensors dtypes.
var dtypeSizes = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// DTypeSize returns the element size of a safetensors dtype, or 0 when
// the dtype is unknown.
func DTypeSize(dtype string) int { return dtypeSizes[dtype] }

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType string  // "F32", "BF16", ...
	Shape []int64 // PyTorch order: the last dimension varies fastest
	// Begin and End delimit the tensor's bytes within the data section.
	Begin, End int64
}

// Elems is the number of elements (the product of Shape; 1 for a scalar).
func (t *TensorInfo) Elems() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is a parsed safetensors file.
type File struct {
	Path string
	// Tensors lists the tensors sorted by name.
	Tensors  []TensorInfo
	Metadata map[string]string
	// DataOffset is the file offset of the data section (8 + header length).
	DataOffset int64

	data  []byte
	index map[string]int
	unmap func() error
}

// Open memory-maps and parses the safetensors file at path.
func Open(path string) (*File, error) {
	data, unmap, err := mmap.File(path)
	if err != nil {
		if errors.Is(err, mmap.ErrTooLarge) {
			err = fmt.Errorf("%w: %w", err, model.ErrUnsupported)
		}
		return nil, err
	}
	if len(data) < 8 {
		unmap()
		return nil, fmt.Errorf("%s: %d-byte file: %w", path, len(data), ErrTruncated)
	}
	f, err := Parse(path, data)
	if err != nil {
		unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Close unmaps a file returned by Open; tensor data is invalid afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	u := f.unmap
	f.unmap = nil
	return u()
}

// Tensor returns the named tensor's description.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.index[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// Data returns the bytes of t, sharing the file's memory. They are
// aligned only as far as the file's layout aligns them.
func (f *File) Data(t *TensorInfo) []byte {
	s, e := f.DataOffset+t.Begin, f.DataOffset+t.End
	return f.data[s:e:e]
}

type entry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// Parse parses a safetensors file held in data; name identifies it in
// errors.
func Parse(name string, data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%s: offset 0: %d bytes, no header length: %w", name, len(data), ErrTruncated)
	}
	n := binary.LittleEndian.Uint64(data)
	if n > MaxHeader {
		return nil, fmt.Errorf("%s: offset 0: header length %d exceeds %d: %w", name, n, MaxHeader, ErrHeader)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("%s: offset 0: header of %d bytes, file has %d after the length: %w", name, n, len(data)-8, ErrTruncated)
	}
	f := &File{Path: name, DataOffset: 8 + int64(n), data: data, Metadata: map[string]string{}}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("%s: offset 8: %v: %w", name, err, ErrHeader)
	}
	dataLen := int64(len(data)) - f.DataOffset
	for key, msg := range raw {
		if key == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("%s: offset 8: __metadata__: %v: %w", name, err, ErrHeader)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: offset 8: tensor %q: %v: %w", name, key, err, ErrHeader)
		}
		t, err := check(key, &e, dataLen)
		if err != nil {
			return nil, fmt.Errorf("%s: offset %d: %w", name, f.DataOffset, err)
		}
		f.Tensors = append(f.Tensors, t)
	}
	sort.Slice(f.Tensors, func(i, j int) bool { return f.Tensors[i].Name < f.Tensors[j].Name })
	f.index = make(map[string]int, len(f.Tensors))
	for i, t := range f.Tensors {
		f.index[t.Name] = i
	}
	byOffset := make([]*TensorInfo, len(f.Tensors))
	for i := range f.Tensors {
		byOffset[i] = &f.Tensors[i]
	}
	sort.Slice(byOffset, func(i, j int) bool { return byOffset[i].Begin < byOffset[j].Begin })
	for i := 1; i < len(byOffset); i++ {
		a, b := byOffset[i-1], byOffset[i]
		if b.Begin < a.End {
			return nil, fmt.Errorf("%s: offset %d: tensor %q at [%d, %d) overlaps %q at [%d, %d): %w",
				name, f.DataOffset+b.Begin, b.Name, b.Begin, b.End, a.Name, a.Begin, a.End, ErrOverlap)
		}
	}
	return f, nil
}

// check validates one header entry against the data section's length.
func check(name string, e *entry, dataLen int64) (TensorInfo, error) {
	t := TensorInfo{Name: name, DType: e.DType, Shape: e.Shape}
	size := DTypeSize(e.DType)
	if size == 0 {
		return t, fmt.Errorf("tensor %q: dtype %q: %w", name, e.DType, ErrDType)
	}
	if e.Shape == nil || len(e.DataOffsets) != 2 {
		return t, fmt.Errorf("tensor %q: needs a shape and two data_offsets: %w", name, ErrHeader)
	}
	t.Begin, t.End = e.DataOffsets[0], e.DataOffsets[1]
	bytes := uint64(size)
	for i, d := range e.Shape {
		if d < 0 {
			return t, fmt.Errorf("tensor %q: dimension %d is %d: %w", name, i, d, ErrShape)
		}
		hi, lo := bits.Mul64(bytes, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return t, fmt.Errorf("tensor %q: shape %v overflows: %w", name, e.Shape, ErrShape)
		}
		bytes = lo
	}
	if t.Begin < 0 || t.End < t.Begin || t.End > dataLen {
		return t, fmt.Errorf("tensor %q: range [%d, %d) outside the %d-byte data section: %w", name, t.Begin, t.End, dataLen, ErrOffset)
	}
	if uint64(t.End-t.Begin) != bytes {
		return t, fmt.Errorf("tensor %q: %s%v needs %d bytes, range [%d, %d) has %d: %w",
			name, e.DType, e.Shape, bytes, t.Begin, t.End, t.End-t.Begin, ErrShape)
	}
	return t, nil
}

// Tensor to write.
type Tensor struct {
	Name  string
	DType string
	Shape []int64
	Data  []byte
}

// Write writes a safetensors file holding tensors, in the given order,
// and metadata (may be nil). The header is padded with spaces so the data
// section starts at a multiple of 8 bytes.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	hdr := map[string]any{}
	if len(metadata) > 0 {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		if _, dup := hdr[t.Name]; dup || t.Name == "__metadata__" {
			return fmt.Errorf("safetensors: tensor name %q repeated or reserved", t.Name)
		}
		need := int64(DTypeSize(t.DType))
		if need == 0 {
			return fmt.Errorf("safetensors: tensor %q: dtype %q: %w", t.Name, t.DType, ErrDType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		for _, d := range shape {
			need *= d
		}
		if need != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: tensor %q: %s%v needs %d bytes, have %d", t.Name, t.DType, t.Shape, need, len(t.Data))
		}
		hdr[t.Name] = entry{DType: t.DType, Shape: shape, DataOffsets: []int64{off, off + need}}
		off += need
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(js)))
	bw.Write(n[:])
	bw.Write(js)
	for _, t := range tensors {
		bw.Write(t.Data)
	}
	return bw.Flush()
}
