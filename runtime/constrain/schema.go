package constrain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// ErrSchema reports a JSON Schema that CompileSchema cannot enforce.
var ErrSchema = errors.New("unsupported JSON schema")

// Schema is a compiled JSON Schema: the subset OpenAI's structured outputs
// use, enforced byte by byte by its State.
//
//   - type: object, array, string, number, integer, boolean, null, or a
//     list of them; no type (or {}) is any JSON value.
//   - object: properties, written in the schema's order, each at most
//     once; required ones always, the others when the model chooses;
//     nothing else (so additionalProperties may be true or false: the
//     instances are valid either way). An object with no properties
//     (and additionalProperties not false) is any JSON object.
//   - array: items (any value when absent), minItems, maxItems.
//   - string: minLength, maxLength (in code points).
//   - enum and const of strings, booleans and null.
//   - anyOf and oneOf whose alternatives begin differently (a string and a
//     number, an object and null), and unions of objects that a property
//     tells apart (required in each, a const or enum in each with no value
//     in two: a discriminated union, written with that property first;
//     pydantic's "discriminator" is accepted and not needed).
//   - $ref to "#" or "#/$defs/NAME" ("#/definitions/NAME"), recursion
//     included.
//
// Annotations (title, description, default, examples, ...) are ignored;
// any other keyword is an error that names it, so no part of a schema goes
// unenforced. The root must be an object or an array.
type Schema struct {
	nodes []snode
	root  uint16
}

type kind uint8

const (
	kPending    kind = iota // a $ref being compiled
	kObject                 // props, in order
	kFreeObject             // any JSON object
	kFree                   // any JSON value
	kArray                  // items, min and max items
	kString                 // min and max length
	kNumber
	kInteger
	kLit // one of the JSON texts lits (enum, const, boolean, null)
	kAny // the alternative that begins with the first byte
)

// snode is one schema.
type snode struct {
	kind     kind
	props    []prop
	items    uint16
	min, max uint32 // kArray items, kString code points; max = unbounded when math.MaxUint32
	lits     []string
	alts     []uint16
	pick     *[256]uint8 // kAny: 1 + the alternative each first byte picks, 0 for none
	tagAlts  []uint16    // a union of objects (kObject): the object each literal of props[0] picks
	path     string      // where it is in the schema, for errors
}

type prop struct {
	key      string // JSON text, quotes included
	node     uint16
	required bool
}

// MaxSchemaSpace is the most whitespace bytes a State accepts in a row
// between tokens: room for ", " or ":\n", not for a model that pads the
// gaps of a long instance (values of any form inside it follow JSON's
// MaxSpace).
const MaxSchemaSpace = 2

// Limits on a schema's size.
const (
	maxSchemaNodes = 4096 // nodes in a compiled schema
	maxProps       = 64   // properties of one object
	maxLits        = 64   // values of one enum
	maxCount       = 1 << 16
	schemaDepth    = 32 // open values in a State
)

var annotationKeys = map[string]bool{"title": true, "description": true, "$schema": true, "$id": true,
	"default": true, "examples": true, "$comment": true, "deprecated": true, "readOnly": true, "writeOnly": true}

// object is a decoded JSON object that keeps its keys' order.
type object struct {
	keys []string
	m    map[string]any
}

// decodeOrdered decodes one JSON value with numbers as json.Number and
// objects as *object.
func decodeOrdered(d *json.Decoder, depth int) (any, error) {
	if depth > 2*MaxDepth {
		return nil, fmt.Errorf("nested deeper than %d", 2*MaxDepth)
	}
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t {
	case json.Delim('{'):
		o := &object{m: map[string]any{}}
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			if _, dup := o.m[k]; dup {
				return nil, fmt.Errorf("key %q appears twice", k)
			}
			v, err := decodeOrdered(d, depth+1)
			if err != nil {
				return nil, err
			}
			o.keys = append(o.keys, k)
			o.m[k] = v
		}
		_, err := d.Token()
		return o, err
	case json.Delim('['):
		list := []any{}
		for d.More() {
			v, err := decodeOrdered(d, depth+1)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := d.Token()
		return list, err
	}
	return t, nil
}

// compiler holds a schema being compiled.
type compiler struct {
	s    *Schema
	root *object
	refs map[string]uint16
}

// CompileSchema compiles a JSON Schema (the subset Schema describes). The
// error wraps ErrSchema and names the place in the schema and the keyword
// it cannot enforce.
func CompileSchema(raw []byte) (*Schema, error) {
	root, err := parseSchema(raw)
	if err != nil {
		return nil, err
	}
	c := &compiler{s: &Schema{}}
	top, err := c.compileRoot(root)
	if err != nil {
		return nil, err
	}
	return c.finish(top)
}

// Function is a function a generation may call, for CompileCalls.
type Function struct {
	Name       string
	Parameters []byte // a JSON Schema of the arguments (an object); none: no arguments
}

// CompileCalls compiles the schema of a call to one of fns: an object
// {"name": NAME, argsKey: ARGUMENTS} whose arguments are an instance of
// that function's Parameters (a union told apart by the name); with
// maxList above 0, a list of 1 to maxList such calls. An error names the
// function.
func CompileCalls(fns []Function, argsKey string, maxList int) (*Schema, error) {
	c := &compiler{s: &Schema{}}
	var alts []uint16
	for _, f := range fns {
		wrap := func(err error) error { return fmt.Errorf("function %q's parameters: %w", f.Name, err) }
		var args uint16
		var err error
		if len(f.Parameters) == 0 {
			args, err = c.add(snode{kind: kObject, path: "#"}) // {}
		} else {
			var root *object
			if root, err = parseSchema(f.Parameters); err == nil {
				args, err = c.compileRoot(root)
			}
		}
		if err != nil {
			return nil, wrap(err)
		}
		if k := c.s.nodes[args].kind; k != kObject && k != kFreeObject {
			return nil, wrap(fmt.Errorf("%w: #: the arguments must be an object", ErrSchema))
		}
		name, err := c.add(snode{kind: kLit, lits: []string{jsonString(f.Name)}, path: "name"})
		if err != nil {
			return nil, err
		}
		call, err := c.add(snode{kind: kObject, path: "call", props: []prop{
			{key: `"name"`, node: name, required: true}, {key: jsonString(argsKey), node: args, required: true}}})
		if err != nil {
			return nil, err
		}
		alts = append(alts, call)
	}
	if len(alts) == 0 {
		return nil, fmt.Errorf("%w: no functions", ErrSchema)
	}
	top, err := alts[0], error(nil)
	if len(alts) > 1 {
		if top, err = c.add(snode{kind: kAny, alts: alts, path: "calls"}); err != nil {
			return nil, err
		}
	}
	if maxList > 0 {
		if top, err = c.add(snode{kind: kArray, items: top, min: 1, max: uint32(min(maxList, math.MaxUint32)), path: "calls"}); err != nil {
			return nil, err
		}
	}
	return c.finish(top)
}

// parseSchema decodes a schema's text, keeping its keys' order.
func parseSchema(raw []byte) (*object, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	v, err := decodeOrdered(d, 0)
	if err == nil && d.More() {
		err = errors.New("text after the schema")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrSchema, err)
	}
	root, ok := v.(*object)
	if !ok {
		return nil, fmt.Errorf("%w: not a JSON object", ErrSchema)
	}
	return root, nil
}

// compileRoot compiles a whole schema document into c's nodes; its $refs
// resolve within it.
func (c *compiler) compileRoot(root *object) (uint16, error) {
	c.root, c.refs = root, map[string]uint16{}
	return c.ref("#", "#")
}

// finish resolves the alternatives of every anyOf and checks the root.
func (c *compiler) finish(top uint16) (*Schema, error) {
	c.s.root = top
	for i := range c.s.nodes {
		if c.s.nodes[i].kind == kAny {
			if err := c.union(uint16(i)); err != nil {
				return nil, err
			}
			if err := c.checkAlts(uint16(i)); err != nil {
				return nil, err
			}
		}
	}
	firsts := c.s.firsts(top, map[uint16]bool{})
	for b, ok := range firsts {
		if ok && b != '{' && b != '[' || !firsts['{'] && !firsts['['] { // a container, whose end is its last byte
			return nil, fmt.Errorf("%w: #: the root must be an object or an array", ErrSchema)
		}
	}
	return c.s, nil
}

func (c *compiler) add(n snode) (uint16, error) {
	if len(c.s.nodes) >= maxSchemaNodes {
		return 0, fmt.Errorf("%w: %s: more than %d schemas", ErrSchema, n.path, maxSchemaNodes)
	}
	c.s.nodes = append(c.s.nodes, n)
	return uint16(len(c.s.nodes) - 1), nil
}

func errAt(path, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrSchema, path, fmt.Sprintf(format, a...))
}

// ref compiles the schema a $ref names, once: a reference to it while it
// compiles (recursion) gets its node, filled in when done.
func (c *compiler) ref(ref, path string) (uint16, error) {
	if n, ok := c.refs[ref]; ok {
		return n, nil
	}
	var target any
	switch {
	case ref == "#":
		target = c.root
	case strings.HasPrefix(ref, "#/$defs/"), strings.HasPrefix(ref, "#/definitions/"):
		section, name, _ := strings.Cut(ref[2:], "/")
		if defs, ok := c.root.m[section].(*object); ok {
			target = defs.m[name]
		}
		if target == nil {
			return 0, errAt(path, "$ref %q names no schema", ref)
		}
	default:
		return 0, errAt(path, "$ref %q: only #, #/$defs/NAME and #/definitions/NAME are supported", ref)
	}
	n, err := c.add(snode{kind: kPending, path: ref})
	if err != nil {
		return 0, err
	}
	c.refs[ref] = n
	body, err := c.compile(target, ref, 0)
	if err != nil {
		return 0, err
	}
	if c.s.nodes[body].kind == kPending {
		return 0, errAt(path, "$ref %q refers only to itself", ref)
	}
	c.s.nodes[n] = c.s.nodes[body]
	return n, nil
}

// uintKey returns m[key] as a count, or def when absent.
func uintKey(m *object, key, path string, def uint32) (uint32, error) {
	v, ok := m.m[key]
	if !ok {
		return def, nil
	}
	n, isNum := v.(json.Number)
	i, err := n.Int64()
	if !isNum || err != nil || i < 0 || i >= maxCount {
		return 0, errAt(path, "%s must be an integer from 0 to %d", key, maxCount-1)
	}
	return uint32(i), nil
}

// keyTypes names the type each type-specific keyword applies to.
var keyTypes = map[string]string{
	"properties": "object", "required": "object", "additionalProperties": "object",
	"items": "array", "minItems": "array", "maxItems": "array",
	"minLength": "string", "maxLength": "string",
}

var typeNames = []string{"object", "array", "string", "number", "integer", "boolean", "null"}

func (c *compiler) compile(v any, path string, depth int) (uint16, error) {
	if depth > MaxDepth {
		return 0, errAt(path, "nested deeper than %d", MaxDepth)
	}
	if b, ok := v.(bool); ok && b {
		return c.add(snode{kind: kFree, path: path})
	}
	m, ok := v.(*object)
	if !ok {
		return 0, errAt(path, "a schema must be an object")
	}
	var structural []string
	for _, k := range m.keys {
		switch {
		case annotationKeys[k]:
		case k == "$defs" || k == "definitions":
			if _, ok := m.m[k].(*object); !ok {
				return 0, errAt(path, "%s must be an object", k)
			}
		case k == "discriminator": // pydantic's; the union finds the property itself
			if _, ok := m.m["anyOf"]; !ok {
				if _, ok := m.m["oneOf"]; !ok {
					return 0, errAt(path, "discriminator needs anyOf or oneOf")
				}
			}
		case k == "type", k == "enum", k == "const", k == "anyOf", k == "oneOf", k == "$ref", keyTypes[k] != "":
			structural = append(structural, k)
		default:
			return 0, errAt(path, "keyword %q is not supported", k)
		}
	}
	// Keywords that stand alone (annotations and $defs aside).
	for _, k := range []string{"$ref", "anyOf", "oneOf", "const", "enum"} {
		if _, ok := m.m[k]; !ok {
			continue
		}
		for _, other := range structural {
			if other != k && !(other == "type" && (k == "enum" || k == "const")) {
				return 0, errAt(path, "%s together with %s is not supported", k, other)
			}
		}
		switch k {
		case "$ref":
			r, ok := m.m[k].(string)
			if !ok {
				return 0, errAt(path, "$ref must be a string")
			}
			return c.ref(r, path+".$ref")
		case "anyOf", "oneOf":
			list, ok := m.m[k].([]any)
			if !ok || len(list) == 0 {
				return 0, errAt(path, "%s must be a non-empty list", k)
			}
			n := snode{kind: kAny, path: path + "." + k}
			for i, alt := range list {
				a, err := c.compile(alt, fmt.Sprintf("%s.%s[%d]", path, k, i), depth+1)
				if err != nil {
					return 0, err
				}
				n.alts = append(n.alts, a)
			}
			return c.add(n)
		case "const":
			return c.literals([]any{m.m[k]}, m, path+".const")
		case "enum":
			list, ok := m.m[k].([]any)
			if !ok || len(list) == 0 || len(list) > maxLits {
				return 0, errAt(path, "enum must be a list of 1 to %d values", maxLits)
			}
			return c.literals(list, m, path+".enum")
		}
	}
	types, err := typeList(m, path)
	if err != nil {
		return 0, err
	}
	for _, k := range structural {
		if t := keyTypes[k]; t != "" && types != nil && !slices.Contains(types, t) {
			return 0, errAt(path, "%s applies to type %s, which the schema's type does not allow", k, t)
		}
	}
	if types == nil {
		if len(structural) > 0 {
			return 0, errAt(path, "%s needs a type", structural[0])
		}
		return c.add(snode{kind: kFree, path: path})
	}
	if slices.Contains(types, "number") { // integers are numbers
		types = slices.DeleteFunc(types, func(t string) bool { return t == "integer" })
	}
	if len(types) == 1 {
		return c.typed(m, types[0], path, depth)
	}
	n := snode{kind: kAny, path: path + ".type"}
	for _, t := range types {
		a, err := c.typed(m, t, path, depth)
		if err != nil {
			return 0, err
		}
		n.alts = append(n.alts, a)
	}
	return c.add(n)
}

// typeList returns the schema's type names (nil when it has none).
func typeList(m *object, path string) ([]string, error) {
	var types []string
	switch t := m.m["type"].(type) {
	case nil:
		if _, ok := m.m["type"]; ok {
			return nil, errAt(path, "type must be a name or a list of names")
		}
		return nil, nil
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			s, ok := x.(string)
			if !ok || slices.Contains(types, s) {
				return nil, errAt(path, "type must list distinct names")
			}
			types = append(types, s)
		}
	default:
		return nil, errAt(path, "type must be a name or a list of names")
	}
	if len(types) == 0 {
		return nil, errAt(path, "type must not be empty")
	}
	for _, t := range types {
		if !slices.Contains(typeNames, t) {
			return nil, errAt(path, "type %q is not a JSON Schema type", t)
		}
	}
	return types, nil
}

// typed compiles the schema m as one type t.
func (c *compiler) typed(m *object, t, path string, depth int) (uint16, error) {
	switch t {
	case "object":
		return c.object(m, path, depth)
	case "array":
		n := snode{kind: kArray, path: path}
		var err error
		if n.min, err = uintKey(m, "minItems", path, 0); err != nil {
			return 0, err
		}
		if n.max, err = uintKey(m, "maxItems", path, math.MaxUint32); err != nil {
			return 0, err
		}
		if n.min > n.max {
			return 0, errAt(path, "minItems %d is more than maxItems %d", n.min, n.max)
		}
		items, ok := m.m["items"]
		if !ok {
			items = true
		}
		if n.items, err = c.compile(items, path+".items", depth+1); err != nil {
			return 0, err
		}
		return c.add(n)
	case "string":
		n := snode{kind: kString, path: path}
		var err error
		if n.min, err = uintKey(m, "minLength", path, 0); err != nil {
			return 0, err
		}
		if n.max, err = uintKey(m, "maxLength", path, math.MaxUint32); err != nil {
			return 0, err
		}
		if n.min > n.max {
			return 0, errAt(path, "minLength %d is more than maxLength %d", n.min, n.max)
		}
		return c.add(n)
	case "number":
		return c.add(snode{kind: kNumber, path: path})
	case "integer":
		return c.add(snode{kind: kInteger, path: path})
	case "boolean":
		return c.add(snode{kind: kLit, lits: []string{"true", "false"}, path: path})
	}
	return c.add(snode{kind: kLit, lits: []string{"null"}, path: path})
}

// object compiles an object schema.
func (c *compiler) object(m *object, path string, depth int) (uint16, error) {
	props, _ := m.m["properties"].(*object)
	if _, ok := m.m["properties"]; ok && props == nil {
		return 0, errAt(path, "properties must be an object")
	}
	closed := false
	if ap, ok := m.m["additionalProperties"]; ok {
		b, isBool := ap.(bool)
		if !isBool {
			return 0, errAt(path, "additionalProperties must be true or false (a schema is not supported)")
		}
		closed = !b
	}
	var required []string
	if r, ok := m.m["required"]; ok {
		list, ok := r.([]any)
		if !ok {
			return 0, errAt(path, "required must be a list of property names")
		}
		for _, x := range list {
			s, ok := x.(string)
			if !ok || props == nil || props.m[s] == nil || slices.Contains(required, s) {
				return 0, errAt(path, "required: %v is not one of the properties", x)
			}
			required = append(required, s)
		}
	}
	if props == nil || len(props.keys) == 0 {
		if closed {
			return c.add(snode{kind: kObject, path: path}) // {}
		}
		return c.add(snode{kind: kFreeObject, path: path})
	}
	if len(props.keys) > maxProps {
		return 0, errAt(path, "more than %d properties", maxProps)
	}
	n := snode{kind: kObject, path: path}
	for _, k := range props.keys {
		child, err := c.compile(props.m[k], path+".properties."+k, depth+1)
		if err != nil {
			return 0, err
		}
		n.props = append(n.props, prop{key: jsonString(k), node: child, required: slices.Contains(required, k)})
	}
	return c.add(n)
}

// jsonString is s as a JSON string in the one spelling the automaton
// accepts for keys and literals (no HTML escaping).
func jsonString(s string) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// literals compiles enum/const values (strings, booleans and null), each
// of the schema's type when it has one.
func (c *compiler) literals(list []any, m *object, path string) (uint16, error) {
	types, err := typeList(m, path)
	if err != nil {
		return 0, err
	}
	n := snode{kind: kLit, path: path}
	for _, v := range list {
		var text, t string
		switch v := v.(type) {
		case string:
			text, t = jsonString(v), "string"
		case bool:
			text, t = fmt.Sprint(v), "boolean"
		case nil:
			text, t = "null", "null"
		default:
			return 0, errAt(path, "only strings, booleans and null are supported, not %v", v)
		}
		if types != nil && !slices.Contains(types, t) {
			return 0, errAt(path, "%s is not of the schema's type", text)
		}
		if !slices.Contains(n.lits, text) {
			n.lits = append(n.lits, text)
		}
	}
	return c.add(n)
}

// firsts returns the bytes node n's texts can begin with, as a set.
func (s *Schema) firsts(n uint16, seen map[uint16]bool) (set [256]bool) {
	if seen[n] {
		return set
	}
	seen[n] = true
	nd := &s.nodes[n]
	switch nd.kind {
	case kObject, kFreeObject:
		set['{'] = true
	case kArray:
		set['['] = true
	case kString:
		set['"'] = true
	case kNumber, kInteger:
		set['-'] = true
		for b := '0'; b <= '9'; b++ {
			set[b] = true
		}
	case kLit:
		for _, l := range nd.lits {
			set[l[0]] = true
		}
	case kFree:
		for _, b := range `{["-0123456789tfn` {
			set[b] = true
		}
	case kAny:
		for _, a := range nd.alts {
			sub := s.firsts(a, seen)
			for b, ok := range sub {
				set[b] = set[b] || ok
			}
		}
	}
	return set
}

// union merges the alternatives of kAny node n that are objects with
// properties into one discriminated union, when a property tells them
// apart: required in each, a literal (const or enum) in each, with no
// value in two of them. The union reads that property first (each
// alternative's copy has it first; instances are valid in any order), and
// its value picks the object the rest follows.
func (c *compiler) union(n uint16) error {
	var objs []int // indices in alts
	for i, a := range c.s.nodes[n].alts {
		if c.s.nodes[a].kind == kObject && len(c.s.nodes[a].props) > 0 {
			objs = append(objs, i)
		}
	}
	if len(objs) < 2 {
		return nil
	}
	alt := func(i int) *snode { return &c.s.nodes[c.s.nodes[n].alts[objs[i]]] }
	tagOf := func(o *snode, key string) int { // the index of the property key, if it can tell o apart
		for j, p := range o.props {
			if p.key == key && p.required && c.s.nodes[p.node].kind == kLit {
				return j
			}
		}
		return -1
	}
	for _, cand := range alt(0).props {
		var lits []string
		var tags []int
		ok := true
		for i := range objs {
			j := tagOf(alt(i), cand.key)
			if j < 0 {
				ok = false
				break
			}
			for _, l := range c.s.nodes[alt(i).props[j].node].lits {
				if slices.Contains(lits, l) {
					ok = false
				}
				lits = append(lits, l)
			}
			tags = append(tags, j)
		}
		if !ok || len(lits) > maxLits {
			continue
		}
		lit, err := c.add(snode{kind: kLit, lits: lits, path: c.s.nodes[n].path})
		if err != nil {
			return err
		}
		u := snode{kind: kObject, props: []prop{{key: cand.key, node: lit, required: true}}, path: c.s.nodes[n].path}
		for i := range objs {
			o := *alt(i)
			j := tags[i]
			o.props = append([]prop{o.props[j]}, slices.Delete(slices.Clone(o.props), j, j+1)...)
			reordered, err := c.add(o)
			if err != nil {
				return err
			}
			for range c.s.nodes[o.props[0].node].lits {
				u.tagAlts = append(u.tagAlts, reordered)
			}
		}
		un, err := c.add(u)
		if err != nil {
			return err
		}
		nd := &c.s.nodes[n]
		keep := []uint16{}
		for i, a := range nd.alts {
			switch {
			case i == objs[0]:
				keep = append(keep, un)
			case !slices.Contains(objs, i):
				keep = append(keep, a)
			}
		}
		nd.alts = keep
		return nil
	}
	return errAt(c.s.nodes[n].path, "%d alternatives are objects, and no property tells them apart (required in each, a const or enum in each, no value in two)", len(objs))
}

// checkAlts rejects alternatives that can begin with the same byte: the
// automaton picks an alternative by its first byte.
func (c *compiler) checkAlts(n uint16) error {
	pick := new([256]uint8)
	for i, a := range c.s.nodes[n].alts {
		set := c.s.firsts(a, map[uint16]bool{n: true})
		for b, ok := range set {
			if ok && pick[b] != 0 {
				return errAt(c.s.nodes[n].path, "alternative %d can begin with %q like an earlier one; alternatives must begin differently (object, array, string, number, true/false, null)", i, string(rune(b)))
			}
			if ok {
				pick[b] = uint8(i + 1)
			}
		}
	}
	c.s.nodes[n].pick = pick
	return nil
}

// State reads a text against a Schema: it accepts exactly the prefixes of
// the schema's instances (in the form Schema describes, strings in valid
// UTF-8, with at most
// MaxSchemaSpace whitespace bytes in a row between tokens and none before the
// root). It is a comparable value: copy it to try bytes without changing
// the original.
type State struct {
	s     *Schema
	stack [schemaDepth]frame
	depth uint8
	mode  mode   // mValue between tokens; or the scalar being read: mString, mEscape, mHex, mNumber, mLiteral
	sub   uint8  // number position, \u digits seen, or literal/key bytes matched
	cand  uint64 // literals (or keys) still possible
	chars uint32 // code points of the string being read, when its length is limited
	space uint8
	done  bool // the root is complete
	inAny bool // free is reading a value of any form (or any object)
	free  JSON
}

// frame is an open value: one expected (pValue), or an object or array.
type frame struct {
	node  uint16
	phase uint8
	idx   uint16 // object: the first property that may still come; array: items so far
}

// Frame phases.
const (
	pValue    = iota // a value of the node is expected
	pObjOpen         // after '{': a key, or '}'
	pObjNext         // after ',': a key
	pKey             // reading a key (cand: the properties it may be)
	pColon           // after a key
	pObjAfter        // after a property's value: ',' or '}'
	pArrOpen         // after '[': a value, or ']'
	pArrAfter        // after an item: ',' or ']'
)

// Start returns the state at the start of a text.
func (s *Schema) Start() State {
	st := State{s: s, depth: 1}
	st.stack[0] = frame{node: s.root}
	return st
}

// Done reports whether the text so far is a whole instance.
func (a *State) Done() bool { return a.done }

// Feed advances by one byte and reports whether the text is still a
// prefix of an instance; after false, a is unspecified.
func (a *State) Feed(b byte) bool {
	if a.s == nil {
		return false
	}
	if a.inAny {
		return a.feedFree(b)
	}
	switch a.mode {
	case mString:
		return a.stringByte(b)
	case mEscape:
		switch b {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			a.mode = mString
		case 'u':
			a.mode, a.sub = mHex, 0
		default:
			return false
		}
		return true
	case mHex:
		if !hexDigit(b) {
			return false
		}
		if a.sub++; a.sub == 4 {
			a.mode, a.sub = mString, 0
		}
		return true
	case mLiteral:
		f := &a.stack[a.depth-1]
		if f.phase == pKey {
			return a.keyByte(f, b)
		}
		return a.literalByte(f, b)
	case mNumber:
		if a.number(b) {
			return true
		}
		if !numberEnds(a.sub) {
			return false
		}
		a.pop() // b follows the number
		return a.Feed(b)
	}
	if space(b) {
		a.space++
		started := a.depth > 1 || a.done || a.stack[0].phase != pValue
		return started && a.space <= MaxSchemaSpace
	}
	a.space = 0
	if a.depth == 0 {
		return false // only whitespace after the root
	}
	f := &a.stack[a.depth-1]
	n := &a.s.nodes[f.node]
	switch f.phase {
	case pValue:
		return a.value(f, b)
	case pObjOpen, pObjNext:
		if b == '}' && f.phase == pObjOpen && n.canClose(0) {
			a.pop()
			return true
		}
		if b != '"' || int(f.idx) >= len(n.props) {
			return false
		}
		f.phase, a.mode, a.sub, a.cand = pKey, mLiteral, 1, n.keyCands(f.idx)
		return true
	case pColon:
		if b != ':' {
			return false
		}
		f.phase = pObjAfter // where the value returns
		return a.push(n.props[f.idx-1].node)
	case pObjAfter:
		switch {
		case b == ',' && int(f.idx) < len(n.props):
			f.phase = pObjNext
			return true
		case b == '}' && n.canClose(f.idx):
			a.pop()
			return true
		}
		return false
	case pArrOpen:
		if b == ']' && n.min == 0 {
			a.pop()
			return true
		}
		if n.max == 0 {
			return false
		}
		f.phase, f.idx = pArrAfter, 1
		return a.push(n.items) && a.Feed(b)
	case pArrAfter:
		switch {
		case b == ',' && uint32(f.idx) < n.max:
			f.idx++
			return a.push(n.items)
		case b == ']' && uint32(f.idx) >= n.min:
			a.pop()
			return true
		}
	}
	return false
}

// canClose reports whether an object may end with properties from i on
// left out: none of them is required.
func (n *snode) canClose(i uint16) bool {
	for _, p := range n.props[i:] {
		if p.required {
			return false
		}
	}
	return true
}

// keyCands is the set of properties the key after property i-1 may name:
// those up to and including the next required one.
func (n *snode) keyCands(i uint16) uint64 {
	var set uint64
	for j := int(i); j < len(n.props); j++ {
		set |= 1 << j
		if n.props[j].required {
			break
		}
	}
	return set
}

// keyByte reads a byte of a key.
func (a *State) keyByte(f *frame, b byte) bool {
	props := a.s.nodes[f.node].props
	var keep uint64
	whole := -1
	for i, p := range props {
		if a.cand&(1<<i) != 0 && p.key[a.sub] == b {
			keep |= 1 << i
			if int(a.sub)+1 == len(p.key) {
				whole = i // keys are prefix-free: it is this one
			}
		}
	}
	if keep == 0 {
		return false
	}
	a.cand, a.sub = keep, a.sub+1
	if whole >= 0 {
		f.phase, f.idx = pColon, uint16(whole+1)
		a.mode, a.sub, a.cand = mValue, 0, 0
	}
	return true
}

// literalByte reads a byte of an enum, const, boolean or null.
func (a *State) literalByte(f *frame, b byte) bool {
	lits := a.s.nodes[f.node].lits
	var keep uint64
	whole := false
	for i, l := range lits {
		if a.cand&(1<<i) != 0 && l[a.sub] == b {
			keep |= 1 << i
			whole = whole || int(a.sub)+1 == len(l)
		}
	}
	if keep == 0 {
		return false
	}
	a.cand, a.sub = keep, a.sub+1
	if whole { // literals are prefix-free: keep holds the one read
		a.pop()
		if a.depth > 0 {
			p := &a.stack[a.depth-1]
			if tags := a.s.nodes[p.node].tagAlts; tags != nil { // a union's first property: its value picks the object
				p.node = tags[bits.TrailingZeros64(keep)]
			}
		}
	}
	return true
}

// stringByte reads a byte inside a string: valid UTF-8 (sub counts the
// continuation bytes still due, cand holds the lead byte), code points
// counted while the schema's limits need it (so states inside unlimited
// strings stay equal and share the vocabulary's cached masks).
func (a *State) stringByte(b byte) bool {
	if a.sub > 0 {
		lo, hi := byte(0x80), byte(0xBF)
		if a.cand != 0 { // the byte after the lead: no overlong forms, surrogates or code points past U+10FFFF
			switch a.cand {
			case 0xE0:
				lo = 0xA0
			case 0xED:
				hi = 0x9F
			case 0xF0:
				lo = 0x90
			case 0xF4:
				hi = 0x8F
			}
			a.cand = 0
		}
		if b < lo || b > hi {
			return false
		}
		a.sub--
		return true
	}
	n := &a.s.nodes[a.stack[a.depth-1].node]
	switch {
	case b == '"':
		if a.chars < n.min {
			return false
		}
		a.chars = 0
		a.pop()
		return true
	case b < 0x20, b >= 0x80 && b < 0xC2, b > 0xF4:
		return false
	case b >= 0xC2:
		a.sub, a.cand = 1, uint64(b)
		if b >= 0xE0 {
			a.sub++
		}
		if b >= 0xF0 {
			a.sub++
		}
	}
	switch {
	case n.max != math.MaxUint32:
		if a.chars == n.max {
			return false
		}
		a.chars++
	case a.chars < n.min: // past the minimum the count no longer matters
		a.chars++
	}
	if b == '\\' {
		a.mode = mEscape
	}
	return true
}

// value starts the value of the frame on top (phase pValue) with b.
func (a *State) value(f *frame, b byte) bool {
	n := &a.s.nodes[f.node]
	switch n.kind {
	case kObject:
		if b != '{' {
			return false
		}
		f.phase, f.idx = pObjOpen, 0
	case kArray:
		if b != '[' {
			return false
		}
		f.phase, f.idx = pArrOpen, 0
	case kString:
		if b != '"' {
			return false
		}
		a.mode = mString
	case kNumber, kInteger:
		switch {
		case b == '-':
			a.mode, a.sub = mNumber, nMinus
		case b == '0':
			a.mode, a.sub = mNumber, nZero
		case digit(b):
			a.mode, a.sub = mNumber, nInt
		default:
			return false
		}
	case kLit:
		a.mode, a.sub, a.cand = mLiteral, 0, 1<<len(n.lits)-1
		return a.literalByte(f, b)
	case kFree, kFreeObject:
		a.inAny, a.free = true, JSON{began: n.kind == kFree}
		return a.feedFree(b)
	case kAny:
		i := n.pick[b]
		if i == 0 {
			return false
		}
		f.node = n.alts[i-1]
		return a.value(f, b)
	}
	return true
}

// feedFree reads a byte of a value of any form (or any object) with the
// JSON automaton; when the value is complete and b cannot continue it, b
// belongs to what follows.
func (a *State) feedFree(b byte) bool {
	j := a.free
	if j.Feed(b) {
		a.free = j
		if j.depth == 0 && j.mode == mAfter { // the value is complete
			a.inAny, a.free = false, JSON{}
			a.pop()
		}
		return true
	}
	if a.free.depth != 0 || a.free.mode != mNumber || !numberEnds(a.free.sub) {
		return false // a number is the one value that ends on the byte after it
	}
	a.inAny, a.free = false, JSON{}
	a.pop()
	return a.Feed(b)
}

// numberEnds reports whether a number may end at position sub.
func numberEnds(sub uint8) bool { return sub == nZero || sub == nInt || sub == nFrac || sub == nExp }

// number continues a number with b (no fraction or exponent for an
// integer), reporting false if b cannot.
func (a *State) number(b byte) bool {
	j := JSON{sub: a.sub}
	if !j.number(b) {
		return false
	}
	if (j.sub == nDot || j.sub == nE) && a.s.nodes[a.stack[a.depth-1].node].kind == kInteger {
		return false
	}
	a.sub = j.sub
	return true
}

// push opens a value of node n.
func (a *State) push(n uint16) bool {
	if int(a.depth) == schemaDepth {
		return false
	}
	a.stack[a.depth] = frame{node: n}
	a.depth++
	return true
}

// pop ends the value on top: its container (or, for the root, the text)
// goes on after it.
func (a *State) pop() {
	a.depth--
	a.mode, a.sub, a.cand = mValue, 0, 0
	if a.depth == 0 {
		a.done = true
	}
}
