package constrain

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzSchema: any bytes as a schema compile or fail with ErrSchema,
// never panic; a compiled schema reads any text without panicking, and a
// text it reads to the end as complete is valid JSON.
func FuzzSchema(f *testing.F) {
	for _, s := range []string{person, tree, misc, `{}`, `{"type":"object"}`, `{"$ref":"#"}`,
		`{"type":"object","properties":{"a":{"anyOf":[{"$ref":"#"},{"type":"null"}]}}}`} {
		f.Add([]byte(s), []byte(`{"name":"x","color":"red","pets":[]}`))
		f.Add([]byte(s), []byte(`{"v":null,"kids":[{"v":"a","kids":[]}]}`))
	}
	f.Fuzz(func(t *testing.T, schema, text []byte) {
		s, err := CompileSchema(schema)
		if err != nil {
			return
		}
		st := s.Start()
		for i, b := range text {
			if !st.Feed(b) {
				return
			}
			if st.Done() && i == len(text)-1 {
				var v any
				d := json.NewDecoder(bytes.NewReader(text))
				d.UseNumber()
				if err := d.Decode(&v); err != nil {
					t.Fatalf("schema %q accepted %q, which is not JSON: %v", schema, text, err)
				}
			}
		}
	})
}
