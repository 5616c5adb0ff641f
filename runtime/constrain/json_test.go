package constrain

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func feed(s string) (JSON, int) {
	var j JSON
	for i := range len(s) {
		if !j.Feed(s[i]) {
			return j, i
		}
	}
	return j, -1
}

// objectValid is encoding/json's verdict restricted to objects.
func objectValid(s string) bool {
	return json.Valid([]byte(s)) && strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{")
}

func TestJSON(t *testing.T) {
	for _, s := range []string{`{}`, `{ } `, `{"a":1}`, `{"a":-0.5e+10,"b":[1,2,{"c":null}],"d":"x\"\\\u00e9\n"}`,
		`{"k":true,"l":false,"m":[],"n":{}}`, "{\"\xc3\xa9\":0}", `{"a":[[[]]]}`, `{"x":1E5,"y":0,"z":-0}`} {
		j, bad := feed(s)
		require.Equal(t, -1, bad, "%q rejected at %d", s, bad)
		require.True(t, j.Done(), "%q is complete", s)
		require.True(t, objectValid(s), s)
	}
	for _, s := range []string{` {}`, `{` + strings.Repeat(" ", MaxSpace+1) + `}`} { // valid, but not as a reply
		j, bad := feed(s)
		require.False(t, bad == -1 && j.Done(), "%q accepted", s)
	}
	for _, s := range []string{`[]`, `1`, `"a"`, `{"a"}`, `{"a":}`, `{,}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`,
		`{"a":tru}x`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`, `{} {}`, `{"a":[1 2]}`, `{"a":-}`, `{"a":1e}`, `{"a":[}`} {
		j, bad := feed(s)
		require.False(t, bad == -1 && j.Done(), "%q accepted", s)
		require.False(t, objectValid(s), s)
	}
	_, bad := feed(strings.Repeat(`{"a":`, MaxDepth+1))
	require.NotEqual(t, -1, bad, "too deep")
	j, bad := feed(`{"a":12`)
	require.Equal(t, -1, bad)
	require.False(t, j.Done(), "an open object is a prefix, not a text")
}

// FuzzJSON: the automaton agrees with encoding/json: a text it accepts
// whole is valid JSON (an object), and every prefix of a valid object is
// accepted.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5e-3,true,null,{"b":"c\u0041"}]}`, `{}`, `{"x":"y"}`, `{"n":-0.0}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, bad := feed(s)
		if bad == -1 && j.Done() {
			require.True(t, objectValid(s), "%q accepted but not valid", s)
		}
		if objectValid(s) && s[0] == '{' && !deep(s) && !spacey(s) {
			require.Equal(t, -1, bad, "%q valid but rejected at %d", s, bad)
			require.True(t, j.Done(), "%q valid but not done", s)
		}
	})
}

// deep reports nesting beyond MaxDepth; spacey a run of more than MaxSpace
// whitespace bytes outside strings.
func deep(s string) bool {
	return strings.Contains(s, strings.Repeat("[", MaxDepth)) || strings.Contains(s, strings.Repeat("{", MaxDepth)) ||
		strings.Count(s, "[")+strings.Count(s, "{") > MaxDepth
}

func spacey(s string) bool {
	in, esc, run := false, false, 0
	for i := range len(s) {
		c := s[i]
		switch {
		case in && esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in, run = !in, 0
		case !in && space(c):
			if run++; run > MaxSpace {
				return true
			}
		default:
			run = 0
		}
	}
	return false
}

// TestJSONRandom: random valid objects (encoding/json of random values)
// are accepted, byte by byte, and done exactly at their end.
func TestJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var gen func(d int) any
	gen = func(d int) any {
		switch k := r.IntN(7); {
		case k == 0 && d < 6:
			m := map[string]any{}
			for range r.IntN(4) {
				m[string(rune('a'+r.IntN(26)))+"\n\"é"] = gen(d + 1)
			}
			return m
		case k == 1 && d < 6:
			var a []any
			for range r.IntN(4) {
				a = append(a, gen(d+1))
			}
			return a
		case k == 2:
			return r.NormFloat64() * 1e6
		case k == 3:
			return r.IntN(3) == 0
		case k == 4:
			return nil
		default:
			return "s\t" + string(rune(r.IntN(0x800)))
		}
	}
	for range 2000 {
		v := map[string]any{"root": gen(0)}
		b, err := json.MarshalIndent(v, "", " ")
		require.NoError(t, err)
		var j JSON
		for i, c := range b {
			require.True(t, j.Feed(c), "%s: byte %d", b, i)
			require.Equal(t, i == len(b)-1, j.Done(), "%s: byte %d", b, i)
		}
	}
}
