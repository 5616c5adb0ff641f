package chat

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// scope is one level of variables: the template's top level, one loop
// iteration, or one macro call. Assignments go to the innermost scope, so
// a variable set inside a loop is gone after it (Jinja's rule, which is
// why templates use namespace()).
type scope struct {
	vars   map[string]value
	parent *scope
}

func (s *scope) lookup(name string) (value, bool) {
	for ; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

// renderer is the state of one Render call.
type renderer struct {
	out       *strings.Builder
	maxOutput int
	steps     int
	calls     int
	now       func() time.Time
}

// Limits of one rendering, so a hostile or broken template cannot run
// forever or exhaust memory.
const (
	maxSteps     = 1 << 18 // loop iterations, calls and list items made
	maxCallDepth = 64      // nested macro calls
)

// Control flow of loops, passed up as errors.
var (
	errBreak    = errors.New("break outside a loop")
	errContinue = errors.New("continue outside a loop")
)

func (r *renderer) step(n int) error {
	if r.steps += n; r.steps > maxSteps {
		return fmt.Errorf("%w: more than %d steps", ErrLimit, maxSteps)
	}
	return nil
}

// items iterates x for a filter, charging a step per item.
func (r *renderer) items(x value) ([]value, error) {
	items, err := iterate(x)
	if err != nil {
		return nil, err
	}
	return items, r.step(len(items))
}

func (r *renderer) write(s string) error {
	if r.out.Len()+len(s) > r.maxOutput {
		return fmt.Errorf("%w: output over %d bytes", ErrLimit, r.maxOutput)
	}
	r.out.WriteString(s)
	return nil
}

// exec runs statements, writing their output.
func (r *renderer) exec(body []node, sc *scope) error {
	for _, n := range body {
		if err := r.execOne(n, sc); err != nil {
			return err
		}
	}
	return nil
}

func (r *renderer) execOne(n node, sc *scope) error {
	switch n := n.(type) {
	case *textNode:
		return r.write(n.s)
	case *outputNode:
		v, err := r.eval(n.e, sc)
		if err != nil {
			return err
		}
		return r.write(toString(v))
	case *ifNode:
		for i, c := range n.conds {
			v, err := r.eval(c, sc)
			if err != nil {
				return err
			}
			if truthy(v) {
				return r.exec(n.bodies[i], sc)
			}
		}
		return r.exec(n.els, sc)
	case *forNode:
		return r.execFor(n, sc)
	case *setNode:
		return r.execSet(n, sc)
	case *macroNode:
		sc.vars[n.name] = &macroValue{m: n, scope: sc}
		return nil
	case *breakNode:
		return errBreak
	case *continueNode:
		return errContinue
	}
	return fmt.Errorf("%w: unknown statement %T", ErrRender, n)
}

func (r *renderer) execFor(n *forNode, sc *scope) error {
	it, err := r.eval(n.iter, sc)
	if err != nil {
		return err
	}
	all, err := iterate(it)
	if err != nil {
		return err
	}
	items := all
	if n.cond != nil { // the filter runs before the loop, so loop.length counts kept items
		items = nil
		for _, x := range all {
			inner := &scope{vars: map[string]value{}, parent: sc}
			if err := bind(inner, n.vars, x); err != nil {
				return err
			}
			v, err := r.eval(n.cond, inner)
			if err != nil {
				return err
			}
			if truthy(v) {
				items = append(items, x)
			}
		}
	}
	if len(items) == 0 {
		return r.exec(n.els, sc)
	}
	// One loop object, updated in place for each iteration.
	loop := newDict()
	cur := 0
	cycle := &function{name: "cycle", call: func(_ *renderer, args []value, _ map[string]value) (value, error) {
		if len(args) == 0 {
			return nil, fmt.Errorf("%w: loop.cycle needs arguments", ErrRender)
		}
		return args[cur%len(args)], nil
	}}
	for i, x := range items {
		if err := r.step(1); err != nil {
			return err
		}
		cur = i
		var prev, next value = undefined{}, undefined{}
		if i > 0 {
			prev = items[i-1]
		}
		if i+1 < len(items) {
			next = items[i+1]
		}
		loop.set("index", int64(i+1))
		loop.set("index0", int64(i))
		loop.set("revindex", int64(len(items)-i))
		loop.set("revindex0", int64(len(items)-i-1))
		loop.set("first", i == 0)
		loop.set("last", i == len(items)-1)
		loop.set("length", int64(len(items)))
		loop.set("depth", int64(1))
		loop.set("depth0", int64(0))
		loop.set("previtem", prev)
		loop.set("nextitem", next)
		loop.set("cycle", cycle)
		inner := &scope{vars: map[string]value{"loop": loop}, parent: sc}
		if err := bind(inner, n.vars, x); err != nil {
			return err
		}
		err := r.exec(n.body, inner)
		if errors.Is(err, errBreak) {
			break
		}
		if err != nil && !errors.Is(err, errContinue) {
			return err
		}
	}
	return nil
}

// bind assigns a loop item to the loop's variables, unpacking it when
// there are several.
func bind(sc *scope, names []string, x value) error {
	if len(names) == 1 {
		sc.vars[names[0]] = x
		return nil
	}
	parts, err := iterate(x)
	if err != nil {
		return err
	}
	if len(parts) != len(names) {
		return fmt.Errorf("%w: cannot unpack %d values into %d names", ErrRender, len(parts), len(names))
	}
	for i, name := range names {
		sc.vars[name] = parts[i]
	}
	return nil
}

func (r *renderer) execSet(n *setNode, sc *scope) error {
	var v value
	if n.value == nil {
		saved := r.out
		r.out = &strings.Builder{}
		err := r.exec(n.body, sc)
		v = r.out.String()
		r.out = saved
		if err != nil {
			return err
		}
	} else {
		var err error
		if v, err = r.eval(n.value, sc); err != nil {
			return err
		}
	}
	if n.attr != "" {
		target, _ := sc.lookup(n.names[0])
		d, ok := target.(*dict)
		if !ok || !d.ns {
			return fmt.Errorf("%w: cannot set attribute %q of %s (only of a namespace)", ErrRender, n.attr, typeName(target))
		}
		d.set(n.attr, v)
		return nil
	}
	if len(n.names) == 1 {
		sc.vars[n.names[0]] = v
		return nil
	}
	return bind(sc, n.names, v)
}

// eval computes an expression.
func (r *renderer) eval(e expr, sc *scope) (value, error) {
	switch e := e.(type) {
	case *literal:
		return e.v, nil
	case *nameExpr:
		if v, ok := sc.lookup(e.name); ok {
			return v, nil
		}
		if f, ok := globals[e.name]; ok {
			return f, nil
		}
		return undefined{}, nil
	case *attrExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		return getAttr(x, e.name), nil
	case *indexExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		i, err := r.eval(e.i, sc)
		if err != nil {
			return nil, err
		}
		return getItem(x, i), nil
	case *sliceExpr:
		return r.evalSlice(e, sc)
	case *listExpr:
		out := make([]value, len(e.items))
		for i, x := range e.items {
			v, err := r.eval(x, sc)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case *dictExpr:
		d := newDict()
		for i := range e.keys {
			k, err := r.eval(e.keys[i], sc)
			if err != nil {
				return nil, err
			}
			v, err := r.eval(e.vals[i], sc)
			if err != nil {
				return nil, err
			}
			d.set(toString(k), v)
		}
		return d, nil
	case *unaryExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		switch e.op {
		case "not":
			return !truthy(x), nil
		case "-":
			switch x := x.(type) {
			case int64:
				return -x, nil
			case float64:
				return -x, nil
			}
		case "+":
			if _, ok := number(x); ok {
				return x, nil
			}
		}
		return nil, fmt.Errorf("%w: bad operand %s for unary %s", ErrRender, typeName(x), e.op)
	case *binaryExpr:
		return r.evalBinary(e, sc)
	case *condExpr:
		c, err := r.eval(e.cond, sc)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return r.eval(e.then, sc)
		}
		if e.els == nil {
			return undefined{}, nil
		}
		return r.eval(e.els, sc)
	case *callExpr:
		fn, err := r.eval(e.fn, sc)
		if err != nil {
			return nil, err
		}
		args, kw, err := r.evalArgs(e.args, e.kwargs, sc)
		if err != nil {
			return nil, err
		}
		return r.call(fn, args, kw)
	case *filterExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		f, ok := filters[e.name]
		if !ok {
			return nil, fmt.Errorf("%w: unknown filter %q", ErrRender, e.name)
		}
		args, kw, err := r.evalArgs(e.args, e.kwargs, sc)
		if err != nil {
			return nil, err
		}
		return f(r, x, args, kw)
	case *testExpr:
		x, err := r.eval(e.x, sc)
		if err != nil {
			return nil, err
		}
		t, ok := tests[e.name]
		if !ok {
			return nil, fmt.Errorf("%w: unknown test %q", ErrRender, e.name)
		}
		args, _, err := r.evalArgs(e.args, nil, sc)
		if err != nil {
			return nil, err
		}
		ok, err = t(x, args)
		if err != nil {
			return nil, err
		}
		return ok != e.neg, nil
	}
	return nil, fmt.Errorf("%w: unknown expression %T", ErrRender, e)
}

func (r *renderer) evalArgs(args []expr, kwargs []kwarg, sc *scope) ([]value, map[string]value, error) {
	var out []value
	for _, a := range args {
		v, err := r.eval(a, sc)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, v)
	}
	var kw map[string]value
	for _, k := range kwargs {
		v, err := r.eval(k.v, sc)
		if err != nil {
			return nil, nil, err
		}
		if kw == nil {
			kw = map[string]value{}
		}
		kw[k.name] = v
	}
	return out, kw, nil
}

// call calls a function or macro.
func (r *renderer) call(fn value, args []value, kw map[string]value) (value, error) {
	if err := r.step(1); err != nil {
		return nil, err
	}
	switch f := fn.(type) {
	case *function:
		return f.call(r, args, kw)
	case *macroValue:
		if r.calls >= maxCallDepth {
			return nil, fmt.Errorf("%w: macro calls nested deeper than %d", ErrLimit, maxCallDepth)
		}
		m := f.m
		if len(args) > len(m.params) {
			return nil, fmt.Errorf("%w: macro %s takes %d arguments, got %d", ErrRender, m.name, len(m.params), len(args))
		}
		inner := &scope{vars: map[string]value{}, parent: f.scope}
		for i, p := range m.params {
			switch v, ok := kw[p]; {
			case i < len(args):
				inner.vars[p] = args[i]
			case ok:
				inner.vars[p] = v
			case m.defaults[i] != nil:
				d, err := r.eval(m.defaults[i], f.scope)
				if err != nil {
					return nil, err
				}
				inner.vars[p] = d
			default:
				inner.vars[p] = undefined{}
			}
		}
		saved := r.out
		r.out = &strings.Builder{}
		r.calls++
		err := r.exec(m.body, inner)
		r.calls--
		out := r.out.String()
		r.out = saved
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s is not callable", ErrRender, typeName(fn))
}

func (r *renderer) evalBinary(e *binaryExpr, sc *scope) (value, error) {
	l, err := r.eval(e.l, sc)
	if err != nil {
		return nil, err
	}
	switch e.op { // short-circuit operators return an operand, as in Python
	case "and":
		if !truthy(l) {
			return l, nil
		}
		return r.eval(e.r, sc)
	case "or":
		if truthy(l) {
			return l, nil
		}
		return r.eval(e.r, sc)
	}
	rv, err := r.eval(e.r, sc)
	if err != nil {
		return nil, err
	}
	return r.binary(e.op, l, rv)
}

// binary applies an operator with Python's rules.
func (r *renderer) binary(op string, l, rv value) (value, error) {
	switch op {
	case "==":
		return equal(l, rv), nil
	case "!=":
		return !equal(l, rv), nil
	case "<", ">", "<=", ">=":
		c, err := compare(l, rv)
		if err != nil {
			return nil, err
		}
		return map[string]bool{"<": c < 0, ">": c > 0, "<=": c <= 0, ">=": c >= 0}[op], nil
	case "in", "not in":
		if l, ok := rv.([]value); ok {
			if err := r.step(len(l)); err != nil {
				return nil, err
			}
		}
		ok, err := contains(rv, l)
		return ok == (op == "in"), err
	case "~":
		return r.concat(toString(l), toString(rv))
	case "+":
		switch a := l.(type) {
		case string:
			if b, ok := rv.(string); ok {
				return r.concat(a, b)
			}
		case []value:
			if b, ok := rv.([]value); ok {
				if err := r.step(len(a) + len(b)); err != nil {
					return nil, err
				}
				return append(append([]value{}, a...), b...), nil
			}
		}
	case "*":
		if s, ok := l.(string); ok {
			if n, ok := integer(rv); ok {
				if n <= 0 {
					return "", nil
				}
				if n > int64(r.maxOutput/max(len(s), 1)) {
					return nil, fmt.Errorf("%w: string over %d bytes", ErrLimit, r.maxOutput)
				}
				return strings.Repeat(s, int(n)), nil
			}
		}
	}
	return arith(op, l, rv)
}

// concat joins two strings, charging a step per KiB.
func (r *renderer) concat(a, b string) (value, error) {
	if len(a)+len(b) > r.maxOutput {
		return nil, fmt.Errorf("%w: string over %d bytes", ErrLimit, r.maxOutput)
	}
	if err := r.step((len(a) + len(b)) >> 10); err != nil {
		return nil, err
	}
	return a + b, nil
}

// arith applies an arithmetic operator to two numbers.
func arith(op string, l, rv value) (value, error) {
	bad := fmt.Errorf("%w: unsupported operand types for %s: %s and %s", ErrRender, op, typeName(l), typeName(rv))
	x, ok1 := number(l)
	y, ok2 := number(rv)
	if !ok1 || !ok2 {
		return nil, bad
	}
	a, aInt := integer(l)
	b, bInt := integer(rv)
	ints := aInt && bInt
	switch op {
	case "+":
		if ints {
			return a + b, nil
		}
		return x + y, nil
	case "-":
		if ints {
			return a - b, nil
		}
		return x - y, nil
	case "*":
		if ints {
			return a * b, nil
		}
		return x * y, nil
	case "/":
		if y == 0 {
			return nil, fmt.Errorf("%w: division by zero", ErrRender)
		}
		return x / y, nil
	case "//", "%":
		if y == 0 {
			return nil, fmt.Errorf("%w: division by zero", ErrRender)
		}
		if ints {
			q, m := a/b, a%b
			if m != 0 && (m < 0) != (b < 0) { // Python floors
				q--
				m += b
			}
			if op == "//" {
				return q, nil
			}
			return m, nil
		}
		q := math.Floor(x / y)
		if op == "//" {
			return q, nil
		}
		return x - q*y, nil
	case "**":
		if ints && b >= 0 {
			p := math.Pow(float64(a), float64(b))
			if math.Abs(p) < 1<<62 {
				return int64(p), nil
			}
		}
		return math.Pow(x, y), nil
	}
	return nil, bad
}

// getAttr is "x.name": a method of a string, list or dict, else the
// dict's item.
func getAttr(x value, name string) value {
	if m := method(x, name); m != nil {
		return m
	}
	if d, ok := x.(*dict); ok {
		if v, ok := d.get(name); ok {
			return v
		}
	}
	return undefined{}
}

// getItem is "x[i]": a dict's item, or a list's or string's element
// (negative indices count from the end). Missing items are undefined.
func getItem(x, i value) value {
	switch x := x.(type) {
	case *dict:
		k, ok := i.(string)
		if !ok {
			k = toString(i)
		}
		if v, ok := x.get(k); ok {
			return v
		}
		if m := method(x, k); m != nil {
			return m
		}
	case []value:
		if n, ok := integer(i); ok {
			if n < 0 {
				n += int64(len(x))
			}
			if n >= 0 && n < int64(len(x)) {
				return x[n]
			}
		}
	case string:
		if n, ok := integer(i); ok {
			rs := []rune(x)
			if n < 0 {
				n += int64(len(rs))
			}
			if n >= 0 && n < int64(len(rs)) {
				return string(rs[n])
			}
		}
	}
	return undefined{}
}

func (r *renderer) evalSlice(e *sliceExpr, sc *scope) (value, error) {
	x, err := r.eval(e.x, sc)
	if err != nil {
		return nil, err
	}
	var bounds [3]value
	for k, b := range []expr{e.lo, e.hi, e.step} {
		if b == nil {
			continue
		}
		if bounds[k], err = r.eval(b, sc); err != nil {
			return nil, err
		}
	}
	var items []value
	str := false
	switch x := x.(type) {
	case []value:
		items = x
	case string:
		str = true
		items, _ = iterate(x)
	case undefined:
		return undefined{}, nil
	default:
		return nil, fmt.Errorf("%w: %s cannot be sliced", ErrRender, typeName(x))
	}
	idx, err := sliceIndices(len(items), bounds)
	if err != nil {
		return nil, err
	}
	out := make([]value, 0, len(idx))
	for _, i := range idx {
		out = append(out, items[i])
	}
	if str {
		var b strings.Builder
		for _, s := range out {
			b.WriteString(s.(string))
		}
		return b.String(), nil
	}
	return out, nil
}

// sliceIndices returns the indices Python's seq[lo:hi:step] selects.
func sliceIndices(n int, b [3]value) ([]int, error) {
	get := func(v value) (int, bool, error) {
		switch v.(type) {
		case nil, undefined:
			return 0, false, nil
		}
		i, ok := integer(v)
		if !ok {
			return 0, false, fmt.Errorf("%w: slice indices must be integers, not %s", ErrRender, typeName(v))
		}
		return int(max(min(i, int64(n)+1), -int64(n)-1)), true, nil
	}
	step, given, err := get(b[2])
	if err != nil {
		return nil, err
	}
	if !given {
		step = 1
	}
	if step == 0 {
		return nil, fmt.Errorf("%w: slice step cannot be zero", ErrRender)
	}
	// Python's PySlice_AdjustIndices.
	adjust := func(i int) int {
		if i < 0 {
			i += n
			if i < 0 {
				i = -1
				if step > 0 {
					i = 0
				}
			}
		} else if i >= n {
			i = n
			if step < 0 {
				i = n - 1
			}
		}
		return i
	}
	lo, hi := 0, n
	if step < 0 {
		lo, hi = n-1, -1
	}
	if v, ok, err := get(b[0]); err != nil {
		return nil, err
	} else if ok {
		lo = adjust(v)
	}
	if v, ok, err := get(b[1]); err != nil {
		return nil, err
	} else if ok {
		hi = adjust(v)
	}
	var out []int
	for i := lo; (step > 0 && i < hi) || (step < 0 && i > hi); i += step {
		out = append(out, i)
	}
	return out, nil
}
