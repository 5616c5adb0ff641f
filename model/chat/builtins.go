package chat

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// globals are the functions every template can call.
var globals map[string]value

// filters are the "| name" filters.
var filters map[string]func(r *renderer, x value, args []value, kw map[string]value) (value, error)

// tests are the "is name" tests.
var tests map[string]func(x value, args []value) (bool, error)

func init() {
	globals = map[string]value{
		"range":           &function{name: "range", call: fnRange},
		"namespace":       &function{name: "namespace", call: fnNamespace},
		"dict":            &function{name: "dict", call: fnNamespace},
		"raise_exception": &function{name: "raise_exception", call: fnRaise},
		"strftime_now":    &function{name: "strftime_now", call: fnStrftimeNow},
	}
	filters = map[string]func(*renderer, value, []value, map[string]value) (value, error){
		"trim":       strFilter(strings.TrimSpace),
		"lower":      strFilter(strings.ToLower),
		"upper":      strFilter(strings.ToUpper),
		"title":      strFilter(title),
		"capitalize": strFilter(capitalize),
		"string":     func(_ *renderer, x value, _ []value, _ map[string]value) (value, error) { return toString(x), nil },
		"safe":       func(_ *renderer, x value, _ []value, _ map[string]value) (value, error) { return x, nil },
		"escape":     strFilter(html.EscapeString),
		"e":          strFilter(html.EscapeString),
		"length":     filterLength,
		"count":      filterLength,
		"default":    filterDefault,
		"d":          filterDefault,
		"first":      filterFirst,
		"last":       filterLast,
		"join":       filterJoin,
		"list":       filterList,
		"reverse":    filterReverse,
		"tojson":     filterToJSON,
		"int":        filterInt,
		"float":      filterFloat,
		"abs":        filterAbs,
		"round":      filterRound,
		"replace":    filterReplace,
		"items":      filterItems,
		"unique":     filterUnique,
		"sort":       filterSort,
		"selectattr": selectAttr(false),
		"rejectattr": selectAttr(true),
		"map":        filterMap,
		"indent":     filterIndent,
		"wordcount": func(_ *renderer, x value, _ []value, _ map[string]value) (value, error) {
			return int64(len(strings.Fields(toString(x)))), nil
		},
	}
	tests = map[string]func(value, []value) (bool, error){
		"defined":   func(x value, _ []value) (bool, error) { _, u := x.(undefined); return !u, nil },
		"undefined": func(x value, _ []value) (bool, error) { _, u := x.(undefined); return u, nil },
		"none":      func(x value, _ []value) (bool, error) { return x == nil, nil },
		"string":    func(x value, _ []value) (bool, error) { _, ok := x.(string); return ok, nil },
		"mapping":   func(x value, _ []value) (bool, error) { _, ok := x.(*dict); return ok, nil },
		"boolean":   func(x value, _ []value) (bool, error) { _, ok := x.(bool); return ok, nil },
		"true":      func(x value, _ []value) (bool, error) { return x == true, nil },
		"false":     func(x value, _ []value) (bool, error) { return x == false, nil },
		"number":    func(x value, _ []value) (bool, error) { _, ok := number(x); return ok, nil },
		"integer":   func(x value, _ []value) (bool, error) { _, ok := x.(int64); return ok, nil },
		"float":     func(x value, _ []value) (bool, error) { _, ok := x.(float64); return ok, nil },
		"callable": func(x value, _ []value) (bool, error) {
			switch x.(type) {
			case *function, *macroValue:
				return true, nil
			}
			return false, nil
		},
		"iterable": func(x value, _ []value) (bool, error) {
			switch x.(type) {
			case string, []value, *dict:
				return true, nil
			}
			return false, nil
		},
		"sequence": func(x value, _ []value) (bool, error) {
			switch x.(type) {
			case string, []value, *dict:
				return true, nil
			}
			return false, nil
		},
		"even":        intTest(func(n int64) bool { return n%2 == 0 }),
		"odd":         intTest(func(n int64) bool { return n%2 != 0 }),
		"divisibleby": testDivisible,
		"lower":       func(x value, _ []value) (bool, error) { s, ok := x.(string); return ok && s == strings.ToLower(s), nil },
		"upper":       func(x value, _ []value) (bool, error) { s, ok := x.(string); return ok && s == strings.ToUpper(s), nil },
		"in": func(x value, args []value) (bool, error) {
			if len(args) != 1 {
				return false, fmt.Errorf("%w: test in takes one argument", ErrRender)
			}
			return contains(args[0], x)
		},
	}
	for _, c := range []struct{ op, alias1, alias2 string }{{"==", "equalto", "eq"}, {"!=", "ne", ""},
		{"<", "lt", "lessthan"}, {">", "gt", "greaterthan"}, {"<=", "le", ""}, {">=", "ge", ""}} {
		t := compareTest(c.op)
		for _, name := range []string{c.op, c.alias1, c.alias2} {
			if name != "" {
				tests[name] = t
			}
		}
	}
	tests["sameas"] = func(x value, args []value) (bool, error) {
		if len(args) != 1 {
			return false, fmt.Errorf("%w: test sameas takes one argument", ErrRender)
		}
		switch args[0].(type) {
		case nil, bool:
			return x == args[0], nil
		}
		return equal(x, args[0]), nil
	}
}

func compareTest(op string) func(value, []value) (bool, error) {
	return func(x value, args []value) (bool, error) {
		if len(args) != 1 {
			return false, fmt.Errorf("%w: test %s takes one argument", ErrRender, op)
		}
		v, err := (&renderer{}).binary(op, x, args[0])
		return truthy(v), err
	}
}

func intTest(f func(int64) bool) func(value, []value) (bool, error) {
	return func(x value, _ []value) (bool, error) {
		n, ok := integer(x)
		return ok && f(n), nil
	}
}

func testDivisible(x value, args []value) (bool, error) {
	n, ok1 := integer(x)
	if len(args) != 1 {
		return false, fmt.Errorf("%w: test divisibleby takes one argument", ErrRender)
	}
	d, ok2 := integer(args[0])
	if !ok1 || !ok2 || d == 0 {
		return false, fmt.Errorf("%w: divisibleby needs non-zero integers", ErrRender)
	}
	return n%d == 0, nil
}

// arg returns positional argument i, or keyword name, or def.
func arg(args []value, kw map[string]value, i int, name string, def value) value {
	if i < len(args) {
		return args[i]
	}
	if v, ok := kw[name]; ok {
		return v
	}
	return def
}

func strFilter(f func(string) string) func(*renderer, value, []value, map[string]value) (value, error) {
	return func(_ *renderer, x value, _ []value, _ map[string]value) (value, error) { return f(toString(x)), nil }
}

// title capitalises the first letter of every word, as Python's str.title.
func title(s string) string {
	var b strings.Builder
	prev := false
	for _, r := range s {
		if unicode.IsLetter(r) {
			if prev {
				r = unicode.ToLower(r)
			} else {
				r = unicode.ToUpper(r)
			}
			prev = true
		} else {
			prev = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// capitalize upper-cases the first character and lower-cases the rest.
func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + strings.ToLower(s[n:])
}

func filterLength(_ *renderer, x value, _ []value, _ map[string]value) (value, error) {
	n, err := length(x)
	return int64(n), err
}

func filterDefault(_ *renderer, x value, args []value, kw map[string]value) (value, error) {
	def := arg(args, kw, 0, "default_value", "")
	boolean := truthy(arg(args, kw, 1, "boolean", false))
	if _, u := x.(undefined); u || (boolean && !truthy(x)) {
		return def, nil
	}
	return x, nil
}

func filterFirst(_ *renderer, x value, _ []value, _ map[string]value) (value, error) {
	items, err := iterate(x)
	if err != nil || len(items) == 0 {
		return undefined{}, err
	}
	return items[0], nil
}

func filterLast(_ *renderer, x value, _ []value, _ map[string]value) (value, error) {
	items, err := iterate(x)
	if err != nil || len(items) == 0 {
		return undefined{}, err
	}
	return items[len(items)-1], nil
}

func filterJoin(r *renderer, x value, args []value, kw map[string]value) (value, error) {
	items, err := r.items(x)
	if err != nil {
		return nil, err
	}
	sep := toString(arg(args, kw, 0, "d", ""))
	attr, _ := arg(args, kw, 1, "attribute", nil).(string)
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteString(sep)
		}
		if attr != "" {
			it = getAttr(it, attr)
		}
		b.WriteString(toString(it))
		if b.Len() > r.maxOutput {
			return nil, fmt.Errorf("%w: string over %d bytes", ErrLimit, r.maxOutput)
		}
	}
	return b.String(), nil
}

func filterList(r *renderer, x value, _ []value, _ map[string]value) (value, error) {
	items, err := r.items(x)
	return slices.Clone(items), err
}

func filterReverse(r *renderer, x value, _ []value, _ map[string]value) (value, error) {
	if s, ok := x.(string); ok {
		rs := []rune(s)
		slices.Reverse(rs)
		return string(rs), nil
	}
	items, err := r.items(x)
	items = slices.Clone(items)
	slices.Reverse(items)
	return items, err
}

func filterInt(_ *renderer, x value, args []value, kw map[string]value) (value, error) {
	switch v := x.(type) {
	case int64:
		return v, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return arg(args, kw, 0, "default", int64(0)), nil
		}
		return int64(v), nil
	case bool:
		n, _ := integer(v)
		return n, nil
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			return n, nil
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return int64(f), nil
		}
	}
	return arg(args, kw, 0, "default", int64(0)), nil
}

func filterFloat(_ *renderer, x value, args []value, kw map[string]value) (value, error) {
	if f, ok := number(x); ok {
		return f, nil
	}
	if s, ok := x.(string); ok {
		if f, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			return f, nil
		}
	}
	return arg(args, kw, 0, "default", 0.0), nil
}

func filterAbs(_ *renderer, x value, _ []value, _ map[string]value) (value, error) {
	switch v := x.(type) {
	case int64:
		if v < 0 {
			return -v, nil
		}
		return v, nil
	case float64:
		return math.Abs(v), nil
	}
	return nil, fmt.Errorf("%w: abs of %s", ErrRender, typeName(x))
}

func filterRound(_ *renderer, x value, args []value, kw map[string]value) (value, error) {
	f, ok := number(x)
	if !ok {
		return nil, fmt.Errorf("%w: round of %s", ErrRender, typeName(x))
	}
	prec, _ := integer(arg(args, kw, 0, "precision", int64(0)))
	prec = max(min(prec, 15), -15)
	p := math.Pow(10, float64(prec))
	switch toString(arg(args, kw, 1, "method", "common")) {
	case "floor":
		return math.Floor(f*p) / p, nil
	case "ceil":
		return math.Ceil(f*p) / p, nil
	}
	return math.Round(f*p) / p, nil
}

func filterReplace(r *renderer, x value, args []value, kw map[string]value) (value, error) {
	s := toString(x)
	old, repl := toString(arg(args, kw, 0, "old", "")), toString(arg(args, kw, 1, "new", ""))
	n := -1
	if c, ok := integer(arg(args, kw, 2, "count", nil)); ok {
		n = int(c)
	}
	if old == "" && len(repl)*(runes(s)+1) > r.maxOutput || old != "" && len(repl) > len(old) &&
		int64(strings.Count(s, old))*int64(len(repl)-len(old)) > int64(r.maxOutput) {
		return nil, fmt.Errorf("%w: string over %d bytes", ErrLimit, r.maxOutput)
	}
	return strings.Replace(s, old, repl, n), nil
}

func filterItems(_ *renderer, x value, _ []value, _ map[string]value) (value, error) {
	switch d := x.(type) {
	case *dict:
		return dictItems(d), nil
	case undefined:
		return []value{}, nil
	}
	return nil, fmt.Errorf("%w: items of %s", ErrRender, typeName(x))
}

func dictItems(d *dict) []value {
	out := make([]value, len(d.keys))
	for i, k := range d.keys {
		out[i] = []value{k, d.m[k]}
	}
	return out
}

func filterUnique(r *renderer, x value, _ []value, _ map[string]value) (value, error) {
	items, err := r.items(x)
	var out []value
	seen := map[string]bool{}
	for _, it := range items {
		var b strings.Builder
		repr(&b, it, true)
		if k := typeName(it) + b.String(); !seen[k] {
			seen[k] = true
			out = append(out, it)
		}
	}
	return out, err
}

func filterSort(r *renderer, x value, args []value, kw map[string]value) (value, error) {
	items, err := r.items(x)
	if err != nil {
		return nil, err
	}
	items = slices.Clone(items)
	reverse := truthy(arg(args, kw, 0, "reverse", false))
	attr, _ := arg(args, kw, 2, "attribute", nil).(string)
	var cmpErr error
	slices.SortStableFunc(items, func(a, b value) int {
		if attr != "" {
			a, b = getAttr(a, attr), getAttr(b, attr)
		}
		c, err := compare(a, b)
		if err != nil && cmpErr == nil {
			cmpErr = err
		}
		if reverse {
			return -c
		}
		return c
	})
	return items, cmpErr
}

// selectAttr is selectattr (keep items whose attribute passes a test, or
// is true) and, with reject, rejectattr.
func selectAttr(reject bool) func(*renderer, value, []value, map[string]value) (value, error) {
	return func(r *renderer, x value, args []value, _ map[string]value) (value, error) {
		items, err := r.items(x)
		if err != nil {
			return nil, err
		}
		if len(args) == 0 {
			return nil, fmt.Errorf("%w: selectattr needs an attribute name", ErrRender)
		}
		attr := toString(args[0])
		test := func(v value, _ []value) (bool, error) { return truthy(v), nil }
		if len(args) > 1 {
			t, ok := tests[toString(args[1])]
			if !ok {
				return nil, fmt.Errorf("%w: unknown test %q", ErrRender, toString(args[1]))
			}
			test = t
		}
		var out []value
		for _, it := range items {
			ok, err := test(getAttr(it, attr), args[min(2, len(args)):])
			if err != nil {
				return nil, err
			}
			if ok != reject {
				out = append(out, it)
			}
		}
		return out, nil
	}
}

// filterMap is map(attribute="name") or map("filter", args...).
func filterMap(r *renderer, x value, args []value, kw map[string]value) (value, error) {
	items, err := r.items(x)
	if err != nil {
		return nil, err
	}
	out := make([]value, 0, len(items))
	if a, ok := kw["attribute"]; ok {
		def, hasDef := kw["default"]
		for _, it := range items {
			v := getAttr(it, toString(a))
			if _, u := v.(undefined); u && hasDef {
				v = def
			}
			out = append(out, v)
		}
		return out, nil
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: map needs a filter name or attribute=", ErrRender)
	}
	f, ok := filters[toString(args[0])]
	if !ok {
		return nil, fmt.Errorf("%w: unknown filter %q", ErrRender, toString(args[0]))
	}
	for _, it := range items {
		v, err := f(r, it, args[1:], nil)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func filterIndent(r *renderer, x value, args []value, kw map[string]value) (value, error) {
	s := toString(x)
	w := arg(args, kw, 0, "width", int64(4))
	pad, ok := w.(string)
	if !ok {
		n, _ := integer(w)
		pad = strings.Repeat(" ", int(max(min(n, 256), 0)))
	}
	first := truthy(arg(args, kw, 1, "first", false))
	blank := truthy(arg(args, kw, 2, "blank", false))
	lines := strings.Split(s, "\n")
	if len(pad)*len(lines)+len(s) > r.maxOutput {
		return nil, fmt.Errorf("%w: string over %d bytes", ErrLimit, r.maxOutput)
	}
	for i, l := range lines {
		if (i > 0 || first) && (blank || strings.TrimSpace(l) != "") {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n"), nil
}

// filterToJSON serialises like Hugging Face's tojson: json.dumps with
// ensure_ascii=False, keys in insertion order, and Python's separators
// (", " and ": "; "," before a newline with indent).
func filterToJSON(r *renderer, x value, args []value, kw map[string]value) (value, error) {
	indent := ""
	if n, ok := integer(arg(args, kw, 0, "indent", nil)); ok && n > 0 {
		indent = strings.Repeat(" ", int(min(n, 64)))
	}
	var b strings.Builder
	if err := writeJSON(&b, x, indent, "", r.maxOutput, 0); err != nil {
		return nil, err
	}
	return b.String(), nil
}

func writeJSON(b *strings.Builder, v value, indent, prefix string, limit, depth int) error {
	if b.Len() > limit {
		return fmt.Errorf("%w: JSON over %d bytes", ErrLimit, limit)
	}
	if depth > maxDepth {
		return fmt.Errorf("%w: JSON nested deeper than %d", ErrLimit, maxDepth)
	}
	sep, open := ", ", ""
	if indent != "" {
		sep, open = ",", "\n"+prefix+indent
	}
	switch v := v.(type) {
	case nil, undefined:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case int64:
		b.WriteString(strconv.FormatInt(v, 10))
	case float64:
		switch {
		case math.IsNaN(v):
			b.WriteString("NaN")
		case math.IsInf(v, 1):
			b.WriteString("Infinity")
		case math.IsInf(v, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(formatFloat(v))
		}
	case string:
		enc, _ := json.Marshal(v)
		// encoding/json escapes <, > and & for HTML; Python does not.
		s := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&", `\u2028`, "\u2028", `\u2029`, "\u2029").Replace(string(enc))
		b.WriteString(s)
	case []value:
		if len(v) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(open)
			if err := writeJSON(b, x, indent, prefix+indent, limit, depth+1); err != nil {
				return err
			}
		}
		if indent != "" {
			b.WriteString("\n" + prefix)
		}
		b.WriteByte(']')
	case *dict:
		if len(v.keys) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteString(sep)
			}
			b.WriteString(open)
			if err := writeJSON(b, k, "", "", limit, depth+1); err != nil {
				return err
			}
			b.WriteString(": ")
			if err := writeJSON(b, v.m[k], indent, prefix+indent, limit, depth+1); err != nil {
				return err
			}
		}
		if indent != "" {
			b.WriteString("\n" + prefix)
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("%w: %s is not JSON serializable", ErrRender, typeName(v))
	}
	return nil
}

func fnRange(r *renderer, args []value, _ map[string]value) (value, error) {
	var n [3]int64
	n[2] = 1
	for i, a := range args {
		v, ok := integer(a)
		if !ok || i > 2 {
			return nil, fmt.Errorf("%w: range takes up to three integers", ErrRender)
		}
		n[i] = v
	}
	start, stop, step := int64(0), n[0], n[2]
	switch len(args) {
	case 0:
		return nil, fmt.Errorf("%w: range needs an argument", ErrRender)
	case 2, 3:
		start, stop = n[0], n[1]
	}
	if step == 0 {
		return nil, fmt.Errorf("%w: range step cannot be zero", ErrRender)
	}
	// The span as an unsigned difference cannot overflow.
	var span, by uint64
	if step > 0 && stop > start {
		span, by = uint64(stop)-uint64(start), uint64(step)
	} else if step < 0 && start > stop {
		span, by = uint64(start)-uint64(stop), -uint64(step)
	}
	var count uint64
	if by > 0 {
		count = span/by + min(span%by, 1)
	}
	if count > maxSteps {
		return nil, fmt.Errorf("%w: range of %d items", ErrLimit, count)
	}
	if err := r.step(int(count)); err != nil {
		return nil, err
	}
	out := make([]value, count)
	for i := range out {
		out[i] = start + int64(i)*step
	}
	return out, nil
}

func fnNamespace(_ *renderer, args []value, kw map[string]value) (value, error) {
	d := newDict()
	d.ns = true
	for _, a := range args {
		if src, ok := a.(*dict); ok {
			for _, k := range src.keys {
				d.set(k, src.m[k])
			}
		}
	}
	keys := make([]string, 0, len(kw))
	for k := range kw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		d.set(k, kw[k])
	}
	return d, nil
}

func fnRaise(_ *renderer, args []value, _ map[string]value) (value, error) {
	msg := "raise_exception called"
	if len(args) > 0 {
		msg = toString(args[0])
	}
	return nil, &Exception{Message: msg}
}

func fnStrftimeNow(r *renderer, args []value, _ map[string]value) (value, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%w: strftime_now takes a format", ErrRender)
	}
	return strftime(r.now(), toString(args[0])), nil
}

// strftime formats t with the common directives of Python's strftime.
func strftime(t time.Time, f string) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'b':
			b.WriteString(t.Month().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'I':
			fmt.Fprintf(&b, "%02d", (t.Hour()+11)%12+1)
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'p':
			b.WriteString(map[bool]string{true: "PM", false: "AM"}[t.Hour() >= 12])
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case '-': // %-d: no padding (glibc)
			if i+1 < len(f) {
				i++
				switch f[i] {
				case 'd':
					fmt.Fprintf(&b, "%d", t.Day())
				case 'm':
					fmt.Fprintf(&b, "%d", int(t.Month()))
				default:
					b.WriteString("%-" + string(f[i]))
				}
			}
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// runes is the number of characters of s (Python's str indices count them).
func runes(s string) int { return utf8.RuneCountInString(s) }

// method returns the bound method name of x, or nil.
func method(x value, name string) value {
	bind := func(f func(args []value, kw map[string]value) (value, error)) value {
		return &function{name: name, call: func(_ *renderer, args []value, kw map[string]value) (value, error) { return f(args, kw) }}
	}
	switch x := x.(type) {
	case string:
		return stringMethod(x, name, bind)
	case *dict:
		switch name {
		case "items":
			return bind(func([]value, map[string]value) (value, error) { return dictItems(x), nil })
		case "keys":
			return bind(func([]value, map[string]value) (value, error) { return iterate(x) })
		case "values":
			return bind(func([]value, map[string]value) (value, error) {
				out := make([]value, len(x.keys))
				for i, k := range x.keys {
					out[i] = x.m[k]
				}
				return out, nil
			})
		case "get":
			return bind(func(args []value, kw map[string]value) (value, error) {
				if len(args) == 0 {
					return nil, fmt.Errorf("%w: get needs a key", ErrRender)
				}
				if v, ok := x.get(toString(args[0])); ok {
					return v, nil
				}
				return arg(args, kw, 1, "default", nil), nil
			})
		}
	}
	return nil
}

func stringMethod(s, name string, bind func(func([]value, map[string]value) (value, error)) value) value {
	strip := func(f func(string, string) string, g func(string) string) value {
		return bind(func(args []value, _ map[string]value) (value, error) {
			if len(args) > 0 && args[0] != nil {
				return f(s, toString(args[0])), nil
			}
			return g(s), nil
		})
	}
	affix := func(f func(string, string) bool) value {
		return bind(func(args []value, _ map[string]value) (value, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("%w: %s needs an argument", ErrRender, name)
			}
			if l, ok := args[0].([]value); ok { // a tuple of candidates
				for _, c := range l {
					if f(s, toString(c)) {
						return true, nil
					}
				}
				return false, nil
			}
			return f(s, toString(args[0])), nil
		})
	}
	plain := func(f func(string) string) value {
		return bind(func([]value, map[string]value) (value, error) { return f(s), nil })
	}
	switch name {
	case "strip":
		return strip(strings.Trim, strings.TrimSpace)
	case "lstrip":
		return strip(strings.TrimLeft, func(s string) string { return strings.TrimLeftFunc(s, unicode.IsSpace) })
	case "rstrip":
		return strip(strings.TrimRight, func(s string) string { return strings.TrimRightFunc(s, unicode.IsSpace) })
	case "startswith":
		return affix(strings.HasPrefix)
	case "endswith":
		return affix(strings.HasSuffix)
	case "upper":
		return plain(strings.ToUpper)
	case "lower":
		return plain(strings.ToLower)
	case "title":
		return plain(title)
	case "capitalize":
		return plain(capitalize)
	case "split":
		return bind(func(args []value, kw map[string]value) (value, error) {
			n := -1
			if m, ok := integer(arg(args, kw, 1, "maxsplit", nil)); ok && m >= 0 {
				n = int(m) + 1
			}
			var parts []string
			switch sep := arg(args, kw, 0, "sep", nil); sep.(type) {
			case nil, undefined:
				parts = strings.Fields(s)
				if n > 0 && len(parts) > n { // Python keeps the rest unsplit
					rest := strings.TrimLeftFunc(s, unicode.IsSpace)
					for range n - 1 {
						rest = strings.TrimLeftFunc(rest[strings.IndexFunc(rest, unicode.IsSpace):], unicode.IsSpace)
					}
					parts = append(parts[:n-1], rest)
				}
			default:
				if toString(sep) == "" {
					return nil, fmt.Errorf("%w: empty separator", ErrRender)
				}
				parts = strings.SplitN(s, toString(sep), n)
			}
			return convert(parts), nil
		})
	case "replace":
		return bind(func(args []value, _ map[string]value) (value, error) {
			if len(args) < 2 {
				return nil, fmt.Errorf("%w: replace needs two arguments", ErrRender)
			}
			return filterReplace(&renderer{maxOutput: defaultMaxOutput}, s, args, nil)
		})
	case "find":
		return bind(func(args []value, _ map[string]value) (value, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("%w: find needs an argument", ErrRender)
			}
			i := strings.Index(s, toString(args[0]))
			if i < 0 {
				return int64(-1), nil
			}
			return int64(runes(s[:i])), nil
		})
	case "count":
		return bind(func(args []value, _ map[string]value) (value, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("%w: count needs an argument", ErrRender)
			}
			sub := toString(args[0])
			if sub == "" {
				return int64(runes(s) + 1), nil
			}
			return int64(strings.Count(s, sub)), nil
		})
	case "join":
		return bind(func(args []value, _ map[string]value) (value, error) {
			if len(args) == 0 {
				return nil, fmt.Errorf("%w: join needs an argument", ErrRender)
			}
			return filterJoin(&renderer{maxOutput: defaultMaxOutput}, args[0], []value{s}, nil)
		})
	case "splitlines":
		return bind(func([]value, map[string]value) (value, error) {
			lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
			if lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			return convert(lines), nil
		})
	}
	return nil
}
