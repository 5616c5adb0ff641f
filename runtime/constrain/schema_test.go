package constrain

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// person is the shape pydantic gives a model with an optional field, an
// enum, a nested model and a list.
const person = `{
  "$defs": {
    "Color": {"enum": ["red", "green", "blue"], "title": "Color", "type": "string"},
    "Pet": {"properties": {"name": {"type": "string", "maxLength": 8}, "legs": {"type": "integer"}},
            "required": ["name", "legs"], "title": "Pet", "type": "object", "additionalProperties": false}
  },
  "properties": {
    "name": {"title": "Name", "type": "string", "minLength": 1},
    "age": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": null},
    "color": {"$ref": "#/$defs/Color"},
    "pets": {"items": {"$ref": "#/$defs/Pet"}, "type": "array", "maxItems": 3},
    "score": {"type": "number"},
    "ok": {"type": "boolean"},
    "meta": {"type": "object"}
  },
  "required": ["name", "color", "pets"],
  "title": "Person",
  "type": "object"
}`

// tree is recursive: a node and its children.
const tree = `{"type": "object", "properties": {"v": {"type": ["string", "null"]},
  "kids": {"type": "array", "items": {"$ref": "#"}, "minItems": 0}}, "required": ["v", "kids"]}`

// misc covers the remaining forms: any value, const, lists with bounds,
// an empty closed object, a number/integer type list, oneOf.
const misc = `{"type": "object", "additionalProperties": false, "properties": {
  "any": {}, "k": {"const": "fixed"}, "two": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
  "none": {"type": "object", "properties": {}, "additionalProperties": false},
  "n": {"type": ["integer", "number"]}, "o": {"oneOf": [{"type": "array", "items": {"type": "boolean"}}, {"type": "string", "maxLength": 2}]},
  "t": true
}, "required": ["any", "k", "two", "none", "n", "o", "t"]}`

// pets is pydantic's discriminated union (the tag not always first), and
// an array root.
const pets = `{"$defs": {
    "Cat": {"properties": {"pet_type": {"const": "cat", "type": "string"}, "meows": {"type": "integer"}}, "required": ["pet_type", "meows"], "type": "object"},
    "Dog": {"properties": {"barks": {"type": "number"}, "pet_type": {"enum": ["dog", "wolf"], "type": "string"}}, "required": ["barks", "pet_type"], "type": "object"}},
  "type": "array", "maxItems": 4, "items": {"type": "object", "required": ["pet", "n"], "properties": {
    "pet": {"discriminator": {"mapping": {"cat": "#/$defs/Cat", "dog": "#/$defs/Dog"}, "propertyName": "pet_type"},
            "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}, {"type": "null"}]},
    "n": {"type": "integer"}}}}`

func compile(t testing.TB, schema string) *Schema {
	s, err := CompileSchema([]byte(schema))
	require.NoError(t, err, schema)
	return s
}

// feedState feeds text from the start and returns the state and the
// offset of the first byte refused (-1 if none).
func feedState(s *Schema, text string) (State, int) {
	st := s.Start()
	for i := range len(text) {
		if !st.Feed(text[i]) {
			return st, i
		}
	}
	return st, -1
}

func TestSchemaInstances(t *testing.T) {
	cases := []struct {
		schema string
		good   []string
		bad    []string
	}{
		{person,
			[]string{
				`{"name":"Al","color":"red","pets":[]}`,
				`{"name": "Bo", "age": 31, "color": "blue", "pets": [{"name": "Rex", "legs": 4}], "score": -1.5e3, "ok": true, "meta": {"x": [1, {"y": null}]}}`,
				`{"name":"é","age":null,"color":"green","pets":[{"name":"12345678","legs":0},{"name":"a","legs":-2}],"meta":{}}`,
				"{\n \"name\": \"x\",\n \"color\":\t\"red\",\r\n\"pets\": [ ]\n}",
			},
			[]string{
				`{"name":"","color":"red","pets":[]}`,                                // minLength 1
				`{"color":"red","name":"Al","pets":[]}`,                              // order
				`{"name":"Al","pets":[]}`,                                            // color required
				`{"name":"Al","color":"pink","pets":[]}`,                             // enum
				`{"name":"Al","age":1.5,"color":"red","pets":[]}`,                    // integer
				`{"name":"Al","color":"red","pets":[{"name":"123456789","legs":1}]}`, // maxLength 8
				`{"name":"Al","color":"red","pets":[],"extra":1}`,                    // unknown property
				`{"name":"Al","color":"red","pets":[{"name":"a","legs":1},{"name":"a","legs":1},{"name":"a","legs":1},{"name":"a","legs":1}]}`,
				`{"name":"Al","color":"red","pets":[],"meta":[]}`, // meta is an object
				`{"name":"Al","color":"red","pets":[]}}`,
				` {"name":"Al","color":"red","pets":[]}`,
				"{\n   \"name\":\"Al\",\"color\":\"red\",\"pets\":[]}", // MaxSchemaSpace
				`{"name":"Al","name":"Al","color":"red","pets":[]}`,
			}},
		{tree,
			[]string{`{"v":null,"kids":[]}`, `{"v":"a","kids":[{"v":"b","kids":[{"v":null,"kids":[]}]},{"v":"c","kids":[]}]}`},
			[]string{`{"v":1,"kids":[]}`, `{"v":"a","kids":[{}]}`, `{"v":"a"}`}},
		{pets,
			[]string{`[]`, `[{"pet":{"pet_type":"cat","meows":3},"n":1}, {"pet":{"pet_type":"wolf","barks":1.5},"n":2},{"pet":null,"n":0}]`},
			[]string{`[{"pet":{"pet_type":"cat","barks":1},"n":1}]`, `[{"pet":{"meows":3,"pet_type":"cat"},"n":1}]`, `[{"pet":{"pet_type":"dog","barks":1,"meows":2},"n":1}]`,
				`[{"pet":{"pet_type":"cow","moos":1},"n":1}]`, `[{"pet":{},"n":1}]`, `{}`}},
		{misc,
			[]string{
				`{"any":12,"k":"fixed","two":[1,2],"none":{},"n":1.5,"o":[true],"t":"x"}`,
				`{"any":"s","k":"fixed","two":[-0,10],"none":{},"n":-3,"o":"ab","t":[{}]}`,
				`{"any":[1,"2",{"3":null}] ,"k":"fixed","two":[1 , 2],"none":{ },"n":0,"o":[],"t":false}`,
				`{"any":1e5,"k":"fixed","two":[1,2],"none":{},"n":2E-2,"o":"","t":null}`,
			},
			[]string{
				`{"any":,"k":"fixed"}`, `{"any":1,"k":"fix"}`, `{"any":1,"k":"fixed","two":[1]}`, `{"any":1,"k":"fixed","two":[1,2,3]}`,
				`{"any":1,"k":"fixed","two":[1,2],"none":{"a":1}}`, `{"any":1,"k":"fixed","two":[1,2],"none":{},"n":1,"o":"abc"}`,
				`{"any":1,"k":"fixed","two":[1.0,2]}`,
			}},
	}
	for _, c := range cases {
		s := compile(t, c.schema)
		for _, text := range c.good {
			st, bad := feedState(s, text)
			require.Equal(t, -1, bad, "%s refused at %d", text, bad)
			require.True(t, st.Done(), "%s is complete", text)
			require.True(t, json.Valid([]byte(text)), text)
		}
		for _, text := range c.bad {
			st, bad := feedState(s, text)
			require.False(t, bad == -1 && st.Done(), "%s accepted", text)
		}
	}
}

// valid reports whether a decoded instance (numbers as json.Number) is
// valid against the schema as the test reads it: an independent reading of
// the same JSON Schema rules.
func valid(root map[string]any, sch any, v any) bool {
	schema, ok := sch.(map[string]any)
	if !ok || len(schema) == 0 {
		return true // true, {}: any value
	}
	if ref, ok := schema["$ref"].(string); ok {
		if ref == "#" {
			return valid(root, root, v)
		}
		return valid(root, root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")], v)
	}
	if c, ok := schema["const"]; ok {
		return c == v
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if alts, ok := schema[k].([]any); ok {
			n := 0
			for _, a := range alts {
				if valid(root, a, v) {
					n++
				}
			}
			return n == 1 || k == "anyOf" && n > 1
		}
	}
	if e, ok := schema["enum"].([]any); ok {
		return slices.Contains(e, v)
	}
	if !typeOK(schema, v) {
		return false
	}
	count := func(key string) (int, bool) {
		f, ok := schema[key].(float64)
		return int(f), ok
	}
	switch v := v.(type) {
	case map[string]any:
		props, _ := schema["properties"].(map[string]any)
		required, _ := schema["required"].([]any)
		for _, r := range required {
			if _, ok := v[r.(string)]; !ok {
				return false
			}
		}
		if props == nil {
			return true // any object
		}
		for k, x := range v {
			if p, ok := props[k]; !ok || !valid(root, p, x) {
				return false
			}
		}
	case []any:
		if m, ok := count("maxItems"); ok && len(v) > m {
			return false
		}
		if m, ok := count("minItems"); ok && len(v) < m {
			return false
		}
		for _, x := range v {
			if !valid(root, schema["items"], x) {
				return false
			}
		}
	case string:
		n := utf8.RuneCountInString(v)
		if m, ok := count("maxLength"); ok && n > m {
			return false
		}
		if m, ok := count("minLength"); ok && n < m {
			return false
		}
	}
	return true
}

func typeOK(schema map[string]any, v any) bool {
	var types []string
	switch t := schema["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			types = append(types, x.(string))
		}
	case nil:
		return true
	}
	for _, ty := range types {
		switch v := v.(type) {
		case map[string]any:
			if ty == "object" {
				return true
			}
		case []any:
			if ty == "array" {
				return true
			}
		case string:
			if ty == "string" {
				return true
			}
		case json.Number:
			if ty == "number" || ty == "integer" && !strings.ContainsAny(string(v), ".eE") {
				return true
			}
		case bool:
			if ty == "boolean" {
				return true
			}
		case nil:
			if ty == "null" {
				return true
			}
		}
	}
	return false
}

// TestSchemaRandomWalk: from every state a random byte-by-byte walk
// reaches, some byte continues the text or the text is complete (no dead
// ends), and every text it completes is valid JSON and an instance of the
// schema, by an independent check.
func TestSchemaRandomWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	structural := []byte(`{}[]":,0123456789-.eEtrufalsn `)
	for _, schema := range []string{person, tree, misc, pets} {
		s := compile(t, schema)
		var root map[string]any
		require.NoError(t, json.Unmarshal([]byte(schema), &root))
		complete := 0
		for walk := range 300 {
			st := s.Start()
			var text []byte
			for len(text) < 4000 {
				var next []byte
				for b := range 256 {
					c := st
					if c.Feed(byte(b)) {
						next = append(next, byte(b))
					}
				}
				if st.Done() && (len(next) == 0 || rng.IntN(4) == 0) {
					break
				}
				require.NotEmpty(t, next, "walk %d: dead end after %q", walk, text)
				// Prefer bytes that make progress, so walks end.
				var b byte
				if pref := slices.DeleteFunc(slices.Clone(next), func(b byte) bool { return !slices.Contains(structural, b) }); len(pref) > 0 && rng.IntN(5) > 0 {
					b = pref[rng.IntN(len(pref))]
				} else {
					b = next[rng.IntN(len(next))]
				}
				require.True(t, st.Feed(b))
				text = append(text, b)
			}
			if !st.Done() {
				continue
			}
			complete++
			var v any
			d := json.NewDecoder(bytes.NewReader(text))
			d.UseNumber()
			require.NoError(t, d.Decode(&v), "%q", text)
			require.True(t, valid(root, root, v), "%s", text)
		}
		require.Greater(t, complete, 100, "most walks complete")
	}
}

func TestSchemaErrors(t *testing.T) {
	for schema, want := range map[string]string{
		`[]`:                  "not a JSON object",
		`{"type":"object"} x`: "not a JSON object",
		`{"type":"string"}`:   "the root must be an object",
		`{"type":"object","properties":{"a":{"type":"string","pattern":"x"}}}`:                         `#.properties.a: keyword "pattern" is not supported`,
		`{"type":"object","properties":{"a":{"type":"number","minimum":0}}}`:                           `keyword "minimum"`,
		`{"type":"object","properties":{"a":{"$ref":"#/$defs/B"}}}`:                                    `$ref "#/$defs/B" names no schema`,
		`{"type":"object","properties":{"a":{"$ref":"http://x"}}}`:                                     `only #, #/$defs/NAME`,
		`{"type":"object","properties":{"a":{"anyOf":[{"type":"string"},{"enum":["x"]}]}}}`:            `alternative 1 can begin with "\""`,
		`{"type":"object","properties":{"a":{"anyOf":[{"type":"integer"},{"type":"number"}]}}}`:        `alternative 1 can begin with "-"`,
		`{"type":"object","properties":{"a":{"type":"string","minLength":3,"maxLength":2}}}`:           "minLength 3 is more than maxLength 2",
		`{"type":"object","properties":{"a":{"type":"array","minItems":-1}}}`:                          "minItems must be an integer",
		`{"type":"object","properties":{"a":{"enum":[1,2]}}}`:                                          "only strings, booleans and null",
		`{"type":"object","properties":{"a":{"type":"string","enum":[true]}}}`:                         "true is not of the schema's type",
		`{"type":"object","properties":{"a":{"type":"strin"}}}`:                                        `type "strin" is not a JSON Schema type`,
		`{"type":"object","properties":{"a":{"type":"string","items":{}}}}`:                            "items applies to type array",
		`{"type":"object","required":["b"],"properties":{"a":{}}}`:                                     "required: b is not one of the properties",
		`{"type":"object","additionalProperties":{"type":"string"}}`:                                   "additionalProperties must be true or false",
		`{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"$ref":"#/$defs/A"}}}`: "refers only to itself",
		`{"type":"object","properties":{"a":{"allOf":[]}}}`:                                            `keyword "allOf"`,
		`{"type":"object","properties":{"a":{"type":"string","anyOf":[]}}}`:                            "anyOf together with type",
		`{"type":"object","properties":{"a":{"minItems":1}}}`:                                          "minItems needs a type",
		`{"type":"object","properties":{"a":{"type":"object","properties":{"a":1}}}}`:                  "#.properties.a.properties.a: a schema must be an object",
	} {
		_, err := CompileSchema([]byte(schema))
		require.ErrorIs(t, err, ErrSchema, schema)
		require.ErrorContains(t, err, want, schema)
	}
	deep := strings.Repeat(`{"type":"array","items":`, 100) + `{}` + strings.Repeat(`}`, 100)
	_, err := CompileSchema([]byte(`{"type":"object","properties":{"a":` + deep + `}}`))
	require.ErrorIs(t, err, ErrSchema)
}

// TestAllowSchema: the trie walk allows exactly the tokens a
// token-by-token check allows.
func TestAllowSchema(t *testing.T) {
	texts := gpt2Texts(t)
	v := NewVocab(texts)
	allow := make([]bool, len(texts))
	s := compile(t, person)
	for _, prefix := range []string{"", "{", `{"`, `{"name": "Al`, `{"name":"Al",`, `{"name":"Al", "color": "`, `{"name":"A","color":"red","pets":[`,
		`{"name":"A","color":"red","pets":[{"name":"1234567`, `{"name":"A","color":"red","pets":[],"meta":{"x":`} {
		st, bad := feedState(s, prefix)
		require.Equal(t, -1, bad, prefix)
		n := v.AllowSchema(st, allow)
		count := 0
		for id, text := range texts {
			c := st
			ok := text != ""
			for i := 0; ok && i < len(text); i++ {
				ok = c.Feed(text[i])
			}
			require.Equal(t, ok, allow[id], "prefix %q, token %d %q", prefix, id, text)
			if ok {
				count++
			}
		}
		require.Equal(t, count, n, "prefix %q", prefix)
		require.Positive(t, n, "prefix %q", prefix)
	}
}

// TestSchemaTokens: a constraint follows tokens to a complete instance
// and dies on a token that leaves the schema.
func TestSchemaTokens(t *testing.T) {
	texts := []string{"", `{"`, `name`, `":"`, `Al`, `","`, `color`, `red`, `pets`, `":[`, `]}`, `x`}
	v := NewVocab(texts)
	s := compile(t, person)
	c := NewSchemaTokens(v, s)
	allow := make([]bool, len(texts))
	for _, id := range []int32{1, 2, 3, 4, 5, 6, 3, 7, 5, 8, 9, 10} {
		require.Positive(t, c.Allow(allow), "before %q", texts[id])
		require.True(t, allow[id], "%q allowed", texts[id])
		require.False(t, c.Done())
		c.Accept(id)
	}
	require.True(t, c.Done())
	c = NewSchemaTokens(v, s)
	c.Accept(11)
	require.Zero(t, c.Allow(allow))
	require.False(t, c.Done())
	c = NewSchemaTokens(v, s)
	c.Accept(99)
	require.Zero(t, c.Allow(allow))
}

// BenchmarkWalk: one uncached mask over GPT-2's vocabulary, JSON and a
// schema state, inside a string (nearly every token) and between tokens.
func BenchmarkWalk(b *testing.B) {
	texts := gpt2Texts(b)
	v := NewVocab(texts)
	allow := make([]bool, len(texts))
	s := compile(b, person)
	for _, prefix := range []string{`{"name": "some text`, `{"name":"A","color":"red","pets":[], `} {
		j, _ := feed(prefix)
		st, _ := feedState(s, prefix)
		b.Run("json/"+prefix, func(b *testing.B) {
			for b.Loop() {
				v.walkJSON(0, j, allow)
			}
		})
		b.Run("schema/"+prefix, func(b *testing.B) {
			for b.Loop() {
				v.walkState(0, st, allow)
			}
		})
	}
}

// TestCompileCalls: a call to one of several functions, each with its
// own parameters ($defs resolved within them), as one object or a list.
func TestCompileCalls(t *testing.T) {
	fns := []Function{
		{Name: "get_weather", Parameters: []byte(`{"type": "object", "properties": {"city": {"type": "string"}, "unit": {"$ref": "#/$defs/Unit"}},
			"required": ["city"], "$defs": {"Unit": {"enum": ["c", "f"]}}}`)},
		{Name: "now"},
		{Name: "add", Parameters: []byte(`{"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}`)},
	}
	one, err := CompileCalls(fns, "arguments", 0)
	require.NoError(t, err)
	list, err := CompileCalls(fns, "parameters", math.MaxInt)
	require.NoError(t, err)
	single, err := CompileCalls(fns, "parameters", 1)
	require.NoError(t, err)
	for _, c := range []struct {
		s    *Schema
		text string
		ok   bool
	}{
		{one, `{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}`, true},
		{one, `{"name":"now","arguments":{}}`, true},
		{one, `{"name":"add","arguments":{"a":1,"b":2.5}}`, true},
		{one, `{"name":"add","arguments":{"a":1}}`, false},
		{one, `{"name":"now","arguments":{"x":1}}`, false},
		{one, `{"name":"get_weather","arguments":{"a":1,"b":2}}`, false},
		{one, `{"name":"sub","arguments":{}}`, false},
		{one, `{"arguments":{},"name":"now"}`, false},
		{list, `[{"name":"now","parameters":{}}, {"name":"add","parameters":{"a":1,"b":2}}]`, true},
		{list, `[]`, false},
		{list, `{"name":"now","parameters":{}}`, false},
		{single, `[{"name":"now","parameters":{}}]`, true},
		{single, `[{"name":"now","parameters":{}}, {"name":"now","parameters":{}}]`, false},
	} {
		st, bad := feedState(c.s, c.text)
		require.Equal(t, c.ok, bad == -1 && st.Done(), "%s", c.text)
	}
	_, err = CompileCalls([]Function{{Name: "f", Parameters: []byte(`{"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}`)}}, "arguments", 0)
	require.ErrorIs(t, err, ErrSchema)
	require.ErrorContains(t, err, `function "f"'s parameters: unsupported JSON schema: #.properties.d: keyword "format"`)
	_, err = CompileCalls([]Function{{Name: "f", Parameters: []byte(`{"type": "array", "items": {}}`)}}, "arguments", 0)
	require.ErrorContains(t, err, "the arguments must be an object")
	_, err = CompileCalls([]Function{{Name: "f"}, {Name: "f"}}, "arguments", 0)
	require.ErrorContains(t, err, "no property tells them apart")
}
