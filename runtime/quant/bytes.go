package quant

import (
	"encoding/binary"
	"unsafe"
)

// F32Bytes returns the little-endian bytes of v, sharing v's memory (loom
// only builds for little-endian machines). The result must not outlive v.
func F32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// I32Bytes returns the little-endian bytes of v, sharing v's memory.
func I32Bytes(v []int32) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
}

// BytesF32 views b (whose length is a multiple of 4 and whose start is
// 4-byte aligned) as float32 values, sharing b's memory.
func BytesF32(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// BytesI32 views b as int32 values, sharing b's memory (see BytesF32).
func BytesI32(b []byte) []int32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// EncodeF16 rounds src to binary16 and writes the little-endian halves to dst
// (len(dst) >= 2*len(src)).
func EncodeF16(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
	}
}

// EncodeBF16 rounds src to bfloat16 and writes the little-endian values to dst.
func EncodeBF16(dst []byte, src []float32) {
	for i, v := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
	}
}
