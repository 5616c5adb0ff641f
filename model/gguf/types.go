package gguf

import (
	"fmt"

	"github.com/loomllm/loom/runtime/backend"
)

// ValueType is the type tag of a metadata value.
type ValueType uint32

// The metadata value types of GGUF versions 2 and 3.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32",
	"float32", "bool", "string", "array", "uint64", "int64", "float64"}

// String returns the type's name as the GGUF specification spells it.
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// size is the encoded size of a fixed-size value, or 0 for strings and arrays.
func (t ValueType) size() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// TensorType is ggml's tensor element type id as stored in a GGUF file.
type TensorType uint32

// The ggml tensor types loom can load. Files may hold others (see
// TensorType.Known); they can be described but not loaded.
const (
	TypeF32  TensorType = 0
	TypeF16  TensorType = 1
	TypeQ4_0 TensorType = 2
	TypeQ8_0 TensorType = 8
	TypeQ4_K TensorType = 12
	TypeQ6_K TensorType = 14
	TypeBF16 TensorType = 30
)

// ggmlTypes lists every ggml type id with its name, elements per block and
// bytes per block (ggml's type traits). Ids removed from ggml are absent.
var ggmlTypes = map[TensorType]struct {
	name         string
	blockElems   int
	blockBytes   int
	loomType     backend.DType
	loomLoadable bool
}{
	0:  {"f32", 1, 4, backend.F32, true},
	1:  {"f16", 1, 2, backend.F16, true},
	2:  {"q4_0", 32, 18, backend.Q4_0, true},
	3:  {"q4_1", 32, 20, backend.Q4_1, true},
	6:  {"q5_0", 32, 22, backend.Q5_0, true},
	7:  {"q5_1", 32, 24, backend.Q5_1, true},
	8:  {"q8_0", 32, 34, backend.Q8_0, true},
	9:  {"q8_1", 32, 36, 0, false},
	10: {"q2_k", 256, 84, backend.Q2_K, true},
	11: {"q3_k", 256, 110, backend.Q3_K, true},
	12: {"q4_k", 256, 144, backend.Q4_K, true},
	13: {"q5_k", 256, 176, backend.Q5_K, true},
	14: {"q6_k", 256, 210, backend.Q6_K, true},
	15: {"q8_k", 256, 292, 0, false},
	16: {"iq2_xxs", 256, 66, 0, false},
	17: {"iq2_xs", 256, 74, 0, false},
	18: {"iq3_xxs", 256, 98, 0, false},
	19: {"iq1_s", 256, 50, 0, false},
	20: {"iq4_nl", 32, 18, backend.IQ4_NL, true},
	21: {"iq3_s", 256, 110, 0, false},
	22: {"iq2_s", 256, 82, 0, false},
	23: {"iq4_xs", 256, 136, backend.IQ4_XS, true},
	24: {"i8", 1, 1, 0, false},
	25: {"i16", 1, 2, 0, false},
	26: {"i32", 1, 4, backend.I32, true},
	27: {"i64", 1, 8, 0, false},
	28: {"f64", 1, 8, 0, false},
	29: {"iq1_m", 256, 56, 0, false},
	30: {"bf16", 1, 2, backend.BF16, true},
	34: {"tq1_0", 256, 54, 0, false},
	35: {"tq2_0", 256, 66, 0, false},
	39: {"mxfp4", 32, 17, 0, false},
}

// Known reports whether t is a ggml type id this package can size.
func (t TensorType) Known() bool { _, ok := ggmlTypes[t]; return ok }

// String returns ggml's lower-case name of the type ("q4_k").
func (t TensorType) String() string {
	if g, ok := ggmlTypes[t]; ok {
		return g.name
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// BlockElems is the number of elements per block (0 for unknown types).
func (t TensorType) BlockElems() int { return ggmlTypes[t].blockElems }

// BlockBytes is the number of bytes per block (0 for unknown types).
func (t TensorType) BlockBytes() int { return ggmlTypes[t].blockBytes }

// DType returns loom's element type for t, and false when loom cannot load
// tensors of type t.
func (t TensorType) DType() (backend.DType, bool) {
	g, ok := ggmlTypes[t]
	return g.loomType, ok && g.loomLoadable
}

// TensorTypeOf returns the ggml type id of a loom element type.
func TensorTypeOf(dt backend.DType) (TensorType, error) {
	for id, g := range ggmlTypes {
		if g.loomLoadable && g.loomType == dt {
			return id, nil
		}
	}
	return 0, fmt.Errorf("%w: no GGUF type for %v", backend.ErrDType, dt)
}
