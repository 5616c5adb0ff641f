package gguf

import (
	"fmt"
	"math"
)

// asInt converts any integer value to int64; ok is false for other types
// and for a uint64 beyond the int64 range.
func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// lookup returns key's entry or an error wrapping ErrKeyMissing.
func (f *File) lookup(key string) (*KV, error) {
	kv, ok := f.Lookup(key)
	if !ok {
		return nil, fmt.Errorf("%s: %w %q", f.Path, ErrKeyMissing, key)
	}
	return kv, nil
}

func (f *File) typeError(kv *KV, want string) error {
	return fmt.Errorf("%s: offset %d: key %q holds %v, want %s: %w", f.Path, kv.Offset, kv.Key, describe(kv.Value), want, ErrKeyType)
}

// describe names a value's type for errors.
func describe(v any) string {
	switch v.(type) {
	case []any:
		return "array of arrays"
	case string:
		return "string"
	}
	return fmt.Sprintf("%T", v)
}

// Int returns the integer value of key, which may be stored as any integer
// type. The error wraps ErrKeyMissing when the key is absent and ErrKeyType
// when it holds something else.
func (f *File) Int(key string) (int64, error) {
	kv, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	v, ok := asInt(kv.Value)
	if !ok {
		return 0, f.typeError(kv, "an integer")
	}
	return v, nil
}

// Float returns the numeric value of key (a float or integer type).
func (f *File) Float(key string) (float64, error) {
	kv, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	switch x := kv.Value.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	if v, ok := asInt(kv.Value); ok {
		return float64(v), nil
	}
	return 0, f.typeError(kv, "a number")
}

// String returns the string value of key.
func (f *File) String(key string) (string, error) {
	kv, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := kv.Value.(string)
	if !ok {
		return "", f.typeError(kv, "a string")
	}
	return s, nil
}

// Bool returns the boolean value of key.
func (f *File) Bool(key string) (bool, error) {
	kv, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := kv.Value.(bool)
	if !ok {
		return false, f.typeError(kv, "a bool")
	}
	return b, nil
}

// Strings returns the string array of key. The slice is the File's own.
func (f *File) Strings(key string) ([]string, error) {
	kv, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	s, ok := kv.Value.([]string)
	if !ok {
		return nil, f.typeError(kv, "an array of strings")
	}
	return s, nil
}

// Float32s returns the float array of key (float32, or float64 rounded).
// A float32 array is returned as the File's own slice.
func (f *File) Float32s(key string) ([]float32, error) {
	kv, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	switch x := kv.Value.(type) {
	case []float32:
		return x, nil
	case []float64:
		return fill(len(x), func(i int) float32 { return float32(x[i]) }), nil
	}
	return nil, f.typeError(kv, "an array of floats")
}

// Int32s returns the integer array of key as int32 values; every element
// must fit.
func (f *File) Int32s(key string) ([]int32, error) {
	kv, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	if x, ok := kv.Value.([]int32); ok {
		return x, nil
	}
	var out []int32
	ok := true
	conv := func(n int, at func(int) int64) {
		out = make([]int32, n)
		for i := range out {
			v := at(i)
			if v < math.MinInt32 || v > math.MaxInt32 {
				ok = false
				return
			}
			out[i] = int32(v)
		}
	}
	switch x := kv.Value.(type) {
	case []uint8:
		conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []int8:
		conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []uint16:
		conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []int16:
		conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []uint32:
		conv(len(x), func(i int) int64 { return int64(x[i]) })
	case []int64:
		conv(len(x), func(i int) int64 { return x[i] })
	case []uint64:
		conv(len(x), func(i int) int64 { return int64(min(x[i], math.MaxInt64)) })
	default:
		return nil, f.typeError(kv, "an array of integers")
	}
	if !ok {
		return nil, fmt.Errorf("%s: offset %d: key %q: element out of the int32 range: %w", f.Path, kv.Offset, key, ErrKeyType)
	}
	return out, nil
}
