package chat

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Values are Go values of these types: nil (Python's None), undefined,
// bool, int64, float64, string, []value (a list or tuple), *dict, and the
// callables *macroValue and *function.
type value = any

// undefined is a name or key that does not exist. It prints as nothing,
// is false, iterates as empty, and its attributes and items are undefined
// too (the lenient behaviour templates expect of optional fields).
type undefined struct{}

// dict is an insertion-ordered mapping with string keys, as Python's
// dicts keep their order (tojson prints keys in that order).
type dict struct {
	keys []string
	m    map[string]value
	ns   bool // made by namespace(): "set ns.x = ..." may change it
}

func newDict() *dict { return &dict{m: map[string]value{}} }

func (d *dict) get(k string) (value, bool) {
	v, ok := d.m[k]
	return v, ok
}

func (d *dict) set(k string, v value) {
	if _, ok := d.m[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.m[k] = v
}

// function is a built-in callable (a global such as range, or a method
// bound to its receiver).
type function struct {
	name string
	call func(r *renderer, args []value, kw map[string]value) (value, error)
}

// macroValue is a macro bound to the scope it was defined in.
type macroValue struct {
	m     *macroNode
	scope *scope
}

// truthy is Python's truth value.
func truthy(v value) bool {
	switch v := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return v
	case int64:
		return v != 0
	case float64:
		return v != 0
	case string:
		return v != ""
	case []value:
		return len(v) > 0
	case *dict:
		return len(v.keys) > 0
	}
	return true
}

// toString is Python's str(): how a value prints.
func toString(v value) string {
	switch v := v.(type) {
	case undefined:
		return ""
	case string:
		return v
	}
	var b strings.Builder
	repr(&b, v, false)
	return b.String()
}

// repr writes Python's repr() of v; with quote false a string is written
// as it is (str()).
func repr(b *strings.Builder, v value, quote bool) {
	switch v := v.(type) {
	case nil:
		b.WriteString("None")
	case undefined:
	case bool:
		if v {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		b.WriteString(formatFloat(v))
	case string:
		if !quote {
			b.WriteString(v)
			return
		}
		q := byte('\'')
		if strings.Contains(v, "'") && !strings.Contains(v, "\"") {
			q = '"'
		}
		b.WriteByte(q)
		for _, r := range v {
			switch {
			case r == '\\':
				b.WriteString(`\\`)
			case r == rune(q):
				b.WriteByte('\\')
				b.WriteByte(q)
			case r == '\n':
				b.WriteString(`\n`)
			case r == '\t':
				b.WriteString(`\t`)
			case r == '\r':
				b.WriteString(`\r`)
			case r < 0x20 || r == 0x7f:
				fmt.Fprintf(b, `\x%02x`, r)
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte(q)
	case []value:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteString(", ")
			}
			repr(b, x, true)
		}
		b.WriteByte(']')
	case *dict:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			repr(b, k, true)
			b.WriteString(": ")
			repr(b, v.m[k], true)
		}
		b.WriteByte('}')
	case *function:
		fmt.Fprintf(b, "<built-in function %s>", v.name)
	case *macroValue:
		fmt.Fprintf(b, "<macro %s>", v.m.name)
	default:
		fmt.Fprintf(b, "%v", v)
	}
}

// formatFloat formats like Python's repr of a float.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// typeName names a value's type in error messages, as Python would.
func typeName(v value) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case undefined:
		return "undefined"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []value:
		return "list"
	case *dict:
		return "dict"
	case *function, *macroValue:
		return "function"
	}
	return fmt.Sprintf("%T", v)
}

// number returns v as a float64 and whether it is a number (bools count,
// as in Python).
func number(v value) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// integer returns v as an int64 when it is an int or a bool.
func integer(v value) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// equal is Python's ==.
func equal(a, b value) bool {
	if x, ok := number(a); ok {
		y, ok := number(b)
		return ok && x == y
	}
	switch a := a.(type) {
	case nil:
		return b == nil
	case undefined:
		_, ok := b.(undefined)
		return ok
	case string:
		s, ok := b.(string)
		return ok && a == s
	case []value:
		l, ok := b.([]value)
		return ok && slices.EqualFunc(a, l, equal)
	case *dict:
		d, ok := b.(*dict)
		if !ok || len(a.keys) != len(d.keys) {
			return false
		}
		for _, k := range a.keys {
			if v, ok := d.m[k]; !ok || !equal(a.m[k], v) {
				return false
			}
		}
		return true
	}
	return a == b
}

// compare orders two numbers or two strings (or lists of them).
func compare(a, b value) (int, error) {
	if x, ok := number(a); ok {
		if y, ok := number(b); ok {
			switch {
			case x < y:
				return -1, nil
			case x > y:
				return 1, nil
			}
			return 0, nil
		}
	}
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	}
	if x, ok := a.([]value); ok {
		if y, ok := b.([]value); ok {
			for i := 0; i < len(x) && i < len(y); i++ {
				if c, err := compare(x[i], y[i]); err != nil || c != 0 {
					return c, err
				}
			}
			return len(x) - len(y), nil
		}
	}
	return 0, fmt.Errorf("%w: cannot compare %s with %s", ErrRender, typeName(a), typeName(b))
}

// iterate returns the items a for loop visits: a list's items, a dict's
// keys, a string's characters; nothing for undefined.
func iterate(v value) ([]value, error) {
	switch v := v.(type) {
	case undefined:
		return nil, nil
	case []value:
		return v, nil
	case *dict:
		out := make([]value, len(v.keys))
		for i, k := range v.keys {
			out[i] = k
		}
		return out, nil
	case string:
		out := make([]value, 0, utf8.RuneCountInString(v))
		for _, r := range v {
			out = append(out, string(r))
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s is not iterable", ErrRender, typeName(v))
}

// length is Python's len().
func length(v value) (int, error) {
	switch v := v.(type) {
	case string:
		return utf8.RuneCountInString(v), nil
	case []value:
		return len(v), nil
	case *dict:
		return len(v.keys), nil
	case undefined:
		return 0, nil
	}
	return 0, fmt.Errorf("%w: %s has no length", ErrRender, typeName(v))
}

// contains is Python's "item in container".
func contains(container, item value) (bool, error) {
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, fmt.Errorf("%w: 'in <string>' requires a string, not %s", ErrRender, typeName(item))
		}
		return strings.Contains(c, s), nil
	case []value:
		return slices.ContainsFunc(c, func(x value) bool { return equal(x, item) }), nil
	case *dict:
		s, ok := item.(string)
		if !ok {
			return false, nil
		}
		_, ok = c.m[s]
		return ok, nil
	case undefined:
		return false, nil
	}
	return false, fmt.Errorf("%w: %s is not a container", ErrRender, typeName(container))
}

// convert turns a Go value (as encoding/json decodes one, or the
// package's own types) into a template value.
func convert(v any) value {
	switch v := v.(type) {
	case nil, bool, int64, float64, string, undefined, *dict, *function:
		return v
	case int:
		return int64(v)
	case int32:
		return int64(v)
	case float32:
		return float64(v)
	case []string:
		out := make([]value, len(v))
		for i, s := range v {
			out[i] = s
		}
		return out
	case []any:
		out := make([]value, len(v))
		for i, x := range v {
			out[i] = convert(x)
		}
		return out
	case map[string]any:
		d := newDict()
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // Go maps have no order; sorted is at least stable
		for _, k := range keys {
			d.set(k, convert(v[k]))
		}
		return d
	case []Message:
		out := make([]value, len(v))
		for i, m := range v {
			out[i] = m.dict()
		}
		return out
	}
	return fmt.Sprint(v)
}
