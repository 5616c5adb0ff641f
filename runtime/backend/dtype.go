package backend

import "fmt"

// DType is the element type of a tensor. Float types hold one value per
// element; block-quantized types pack a fixed number of elements (the block
// size) into a fixed number of bytes, in exactly the byte layout GGUF uses,
// so weights can be uploaded straight from a mapped file.
type DType uint8

// The element types loom knows. The numeric values are loom's own, not GGUF's
// type ids (the gguf package maps between the two).
const (
	// F32 is IEEE 754 binary32.
	F32 DType = iota
	// F16 is IEEE 754 binary16.
	F16
	// BF16 is bfloat16: the top 16 bits of a binary32.
	BF16
	// Q8_0 packs 32 elements as one F16 scale d followed by 32 int8 q;
	// element i is d*q[i]. 34 bytes per block.
	Q8_0
	// Q4_0 packs 32 elements as one F16 scale d followed by 16 bytes of
	// 4-bit quants; element i (i < 16) is d*((byte[i]&15)-8) and element
	// i+16 is d*((byte[i]>>4)-8). 18 bytes per block.
	Q4_0
	// Q4_K is llama.cpp's 4-bit k-quant: 256 elements in 144 bytes.
	Q4_K
	// Q6_K is llama.cpp's 6-bit k-quant: 256 elements in 210 bytes.
	Q6_K
	// I32 is a signed 32-bit integer (token ids, positions, block tables).
	I32

	// The types below are llama.cpp's other GGUF weight formats, in
	// exactly its block layouts (runtime/quant documents each element's
	// formula). Loaders read them; a backend that cannot multiply by one
	// gets the weights converted to Q8_0 at load.

	// Q4_1 packs 32 elements as F16 d and m, then 16 bytes of 4-bit q;
	// element i is d*q+m. 20 bytes per block.
	Q4_1
	// Q5_0 is Q4_0 with a fifth bit per element: F16 d, 4 bytes of high
	// bits, 16 bytes of nibbles; element i is d*(q-16). 22 bytes per block.
	Q5_0
	// Q5_1 is Q4_1 with a fifth bit per element: F16 d and m, 4 bytes of
	// high bits, 16 bytes of nibbles; element i is d*q+m. 24 bytes per block.
	Q5_1
	// Q2_K is llama.cpp's 2-bit k-quant: 256 elements in 84 bytes.
	Q2_K
	// Q3_K is llama.cpp's 3-bit k-quant: 256 elements in 110 bytes.
	Q3_K
	// Q5_K is llama.cpp's 5-bit k-quant: 256 elements in 176 bytes.
	Q5_K
	// IQ4_NL packs 32 elements as F16 d and 16 bytes of 4-bit indices
	// into a fixed non-linear table of 16 int8 levels. 18 bytes per block.
	IQ4_NL
	// IQ4_XS is IQ4_NL in 256-element super-blocks with a 6-bit scale per
	// 32 elements: 136 bytes per block.
	IQ4_XS

	numDTypes
)

var dtypeInfo = [numDTypes]struct {
	name       string
	blockElems int
	blockBytes int
}{
	F32:  {"f32", 1, 4},
	F16:  {"f16", 1, 2},
	BF16: {"bf16", 1, 2},
	Q8_0: {"q8_0", 32, 34},
	Q4_0: {"q4_0", 32, 18},
	Q4_K: {"q4_k", 256, 144},
	Q6_K: {"q6_k", 256, 210},
	I32:  {"i32", 1, 4},

	Q4_1:   {"q4_1", 32, 20},
	Q5_0:   {"q5_0", 32, 22},
	Q5_1:   {"q5_1", 32, 24},
	Q2_K:   {"q2_k", 256, 84},
	Q3_K:   {"q3_k", 256, 110},
	Q5_K:   {"q5_k", 256, 176},
	IQ4_NL: {"iq4_nl", 32, 18},
	IQ4_XS: {"iq4_xs", 256, 136},
}

// Valid reports whether d is one of the declared types.
func (d DType) Valid() bool { return d < numDTypes }

// String returns the lower-case name used on the command line ("f32", "q8_0").
func (d DType) String() string {
	if !d.Valid() {
		return fmt.Sprintf("dtype(%d)", uint8(d))
	}
	return dtypeInfo[d].name
}

// BlockElems is the number of elements one block holds (1 for float types).
func (d DType) BlockElems() int {
	if !d.Valid() {
		return 0
	}
	return dtypeInfo[d].blockElems
}

// BlockBytes is the number of bytes one block occupies.
func (d DType) BlockBytes() int {
	if !d.Valid() {
		return 0
	}
	return dtypeInfo[d].blockBytes
}

// Quantized reports whether d is a block-quantized type.
func (d DType) Quantized() bool { return d.BlockElems() > 1 }

// RowBytes returns the bytes one row of cols elements occupies, or an error
// when cols is not a positive multiple of the block size.
func (d DType) RowBytes(cols int) (int, error) {
	if !d.Valid() {
		return 0, fmt.Errorf("%w: %v", ErrDType, d)
	}
	be := d.BlockElems()
	if cols <= 0 || cols%be != 0 {
		return 0, fmt.Errorf("%w: %d columns is not a positive multiple of the %v block size %d", ErrShape, cols, d, be)
	}
	return cols / be * d.BlockBytes(), nil
}

// ParseDType returns the type named s, as printed by String.
func ParseDType(s string) (DType, error) {
	for i := DType(0); i < numDTypes; i++ {
		if dtypeInfo[i].name == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown type %q", ErrDType, s)
}
