package chat

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestJinja checks the language one feature at a time.
func TestJinja(t *testing.T) {
	cases := []struct{ src, want string }{
		// Whitespace: trim_blocks, lstrip_blocks and the markers.
		{"{% if true %}\nyes\n{% endif %}\n", "yes\n"},
		{"  {% if true %}x{% endif %}", "x"},
		{"a\n    {% if true %}b{% endif %}", "a\nb"},
		{"a  {% if true %}b{% endif %}", "a  b"},
		{"a {{- ' b ' -}} c", "a b c"},
		{"a\n  {%- if true -%}  b  {%- endif %}", "ab"},
		{"  {%+ if true %}x{% endif %}", "  x"},
		{"a {# note #}\nb", "a b"},
		{"a\n  {#- note -#}\n b", "ab"},
		{"{{ 'x' }}\n{{ 'y' }}", "x\ny"},
		{"{% raw %}{{ not parsed }}{% endraw %}", "{{ not parsed }}"},
		// Literals and operators.
		{"{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}", "7 9 3 -4 1 2 1024"},
		{"{{ 7 / 2 }} {{ 4 / 2 }} {{ 1.5 + 1 }} {{ 0.1 }}", "3.5 2.0 2.5 0.1"},
		{"{{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }}", "a1None ababab [1, 2]"},
		{"{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' in 'cat' }} {{ 2 not in [1, 3] }} {{ 'k' in {'k': 1} }}", "True False True True True"},
		{"{{ not 0 and 'x' or 'y' }} {{ 0 or '' or 'z' }} {{ none }} {{ true }}", "x z None True"},
		{"{{ 'yes' if 1 > 2 else 'no' }}{{ 'x' if false }}", "no"},
		{`{{ "a'b" }} {{ 'tab\there' }} {{ "\u00e9" }} {{ 'x' 'y' }}`, "a'b tab\there é xy"},
		{"{{ {'a': [1, 'b'], 'c': none} }} {{ ('x', 2) }}", "{'a': [1, 'b'], 'c': None} ['x', 2]"},
		// Subscripts and slices.
		{"{% set l = [1, 2, 3, 4, 5] %}{{ l[0] }}{{ l[-1] }}{{ l[1:3] }}{{ l[::-1] }}{{ l[::2] }}{{ l[-2:] }}{{ l[:-3] }}", "15[2, 3][5, 4, 3, 2, 1][1, 3, 5][4, 5][1, 2]"},
		{"{{ 'héllo'[1] }}{{ 'héllo'[1:3] }}{{ 'abc'[::-1] }}{{ 'abc'[5:] }}", "éélcba"},
		{"{% set d = {'a': {'b': 'c'}} %}{{ d.a.b }}{{ d['a']['b'] }}{{ d.x.y }}{{ d.get('z', 'def') }}", "ccdef"},
		// Statements.
		{"{% for x in [1, 2, 3] %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}", "11,22,33"},
		{"{% for x in [] %}a{% else %}empty{% endfor %}", "empty"},
		{"{% for x in range(6) if x is odd %}{{ x }}{{ loop.length }}{% endfor %}", "133353"},
		{"{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;"},
		{"{% for x in range(1, 10, 3) %}{{ x }}{% endfor %}{% for x in range(3, 0, -1) %}{{ x }}{% endfor %}", "147321"},
		{"{% for x in [1, 2, 3, 4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", "13"},
		{"{% for x in 'ab' %}{{ loop.revindex0 }}{{ loop.first }}{{ loop.previtem }}{{ loop.cycle('o', 'e') }}{% endfor %}", "1Trueo0Falseae"},
		{"{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", "1"},
		{"{% set ns = namespace(x=1) %}{% for i in [1] %}{% set ns.x = 2 %}{% endfor %}{{ ns.x }}", "2"},
		{"{% if false %}a{% elif 0 %}b{% elif 1 %}c{% else %}d{% endif %}", "c"},
		{"{% set a, b = 1, 2 %}{{ b }}{{ a }}", "21"},
		{"{% set block %}in {{ 'side' }}{% endset %}[{{ block }}]", "[in side]"},
		{"{% macro greet(name, p='!') %}hi {{ name }}{{ p }}{% endmacro %}{{ greet('bob') }} {{ greet('al', p='?') }}", "hi bob! hi al?"},
		{"{% generation %}kept{% endgeneration %}", "kept"},
		// Filters.
		{"{{ '  x  ' | trim }}|{{ 'aBc' | upper }}|{{ 'aBc' | lower }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}", "x|ABC|abc|Hello World|Hello"},
		{"{{ [1, 2] | length }}{{ 'abc' | length }}{{ {'a': 1} | count }}{{ undefined_name | length }}", "2310"},
		{"{{ missing | default('d') }}{{ '' | default('e', true) }}{{ 'v' | default('f') }}", "dev"},
		{"{{ [3, 1, 2] | first }}{{ [3, 1, 2] | last }}{{ [3, 1, 2] | sort | join(',') }}{{ [1, 1, 2] | unique | list }}{{ [1, 2] | reverse | list }}", "321,2,3[1, 2][2, 1]"},
		{"{{ '3' | int + 1 }} {{ '2.5' | float }} {{ 'x' | int }} {{ -3 | abs }} {{ 2.567 | round(2) }} {{ 'aaa' | replace('a', 'b', 2) }}", "4 2.5 0 -3 2.57 bba"},
		{"{{ {'b': 1, 'a': [true, none, 1.5, 'é\"<']} | tojson }}", `{"b": 1, "a": [true, null, 1.5, "é\"<"]}`},
		{"{{ [{'r': 'u', 'c': 1}, {'r': 'a'}, {'r': 'u', 'c': 2}] | selectattr('r', 'equalto', 'u') | map(attribute='c') | list }}", "[1, 2]"},
		{"{{ [{'r': 'u'}, {'r': 'a'}] | rejectattr('r', 'equalto', 'u') | list }}{{ ['a', 'b'] | map('upper') | join }}", "[{'r': 'a'}]AB"},
		{"{{ 'a\nb' | indent(2) }}|{{ 'x y z' | wordcount }}", "a\n  b|3"},
		// Tests.
		{"{{ x is defined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ 1 is not none }}", "FalseTrueTrueTrueTrueTrueTrueTrue"},
		{"{{ 1 is number }}{{ 1.5 is float }}{{ 1 is integer }}{{ 3 is eq 3 }}{{ 3 is gt(2) }}{{ 'a' is in 'abc' }}{{ range is callable }}", "TrueTrueTrueTrueTrueTrueTrue"},
		// Methods.
		{"{{ '  x '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ ' a'.lstrip() }}|{{ 'a '.rstrip() }}|{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}", "x|a|a|a|TrueTrue"},
		{"{{ 'a,b,,c'.split(',') }}{{ ' a  b '.split() }}{{ 'a b c'.split(none, 1) }}{{ 'ab'.upper() }}{{ 'Ab'.lower() }}{{ 'ab cd'.title() }}", "['a', 'b', '', 'c']['a', 'b']['a', 'b c']ABabAb Cd"},
		{"{{ 'abcb'.replace('b', 'x') }}{{ 'abc'.find('c') }}{{ 'abcb'.count('b') }}{{ '-'.join(['a', 'b']) }}{{ {'a': 1}.keys() | list }}{{ {'a': 1}.values() | list }}", "axcx22a-b['a'][1]"},
	}
	for _, c := range cases {
		tmpl, err := Parse(c.src)
		require.NoError(t, err, c.src)
		got, err := tmpl.Render(nil, Options{})
		require.NoError(t, err, c.src)
		require.Equal(t, c.want, got, c.src)
	}
}

func TestJinjaErrors(t *testing.T) {
	syntax := []string{
		"{% if x %}", "{% for %}", "{{ 1 + }}", "{{ x", "{# never closed", "{% endif %}", "{{ 'abc }}",
		"{% unknown %}", "{{ f(a=1, 2) }}", "{{ x[] }}", "{% set %}", "{{ 1 $ 2 }}", "{% raw %}abc",
	}
	for _, src := range syntax {
		_, err := Parse(src)
		require.ErrorIs(t, err, ErrSyntax, src)
	}
	_, err := Parse("line one\n{{ ) }}")
	require.ErrorContains(t, err, "line 2, column 4")

	render := []struct {
		src  string
		want error
	}{
		{"{{ x | nosuchfilter }}", ErrRender},
		{"{{ x is nosuchtest }}", ErrRender},
		{"{{ 1 + 'a' }}", ErrRender},
		{"{{ 1 / 0 }}", ErrRender},
		{"{{ 1 < 'a' }}", ErrRender},
		{"{% for x in 3 %}{% endfor %}", ErrRender},
		{"{% set x = 1 %}{% set x.y = 2 %}", ErrRender},
		{"{{ nosuchfunc() }}", ErrRender},
		{"{% break %}", ErrRender},
		{"{{ raise_exception('nope') }}", ErrException},
		{"{{ range(100000000) }}", ErrLimit},
		{"{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}", ErrLimit},
		{"{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", ErrLimit},
		{"{% set s = 'x' * 1000 %}{% for i in range(100000) %}{{ s }}{% endfor %}", ErrLimit},
		{"{{ 'x' * 100000000 }}", ErrLimit},
	}
	for _, c := range render {
		tmpl, err := Parse(c.src)
		require.NoError(t, err, c.src)
		_, err = tmpl.Render(nil, Options{MaxOutput: 1 << 20})
		require.ErrorIs(t, err, c.want, c.src)
	}
}

func TestConcurrentRender(t *testing.T) {
	tmpl := load(t, "llama3.2.jinja")
	done := make(chan string, 8)
	for range 8 {
		go func() {
			out, err := tmpl.Render(withSystem, Options{Now: july26})
			if err != nil {
				out = err.Error()
			}
			done <- out
		}()
	}
	first := <-done
	for range 7 {
		require.Equal(t, first, <-done)
	}
}

// FuzzRender: no template or message makes Parse or Render panic.
func FuzzRender(f *testing.F) {
	for _, name := range []string{"llama2.jinja", "llama3.2.jinja", "qwen2.5.jinja", "qwen3.jinja", "mistral-nemo.jinja"} {
		src, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(f, err)
		f.Add(string(src), "Hello")
	}
	f.Add("{% for x in messages %}{{ x.content[::-1] | tojson }}{% endfor %}", "{{ '")
	f.Add("{{ messages[0].content.split('a', 2) }}{% set n = namespace(a=[]) %}", "a b a")
	f.Fuzz(func(t *testing.T, src, content string) {
		tmpl, err := Parse(src)
		if err != nil {
			return
		}
		_, _ = tmpl.Render([]Message{{Role: "user", Content: content}, {Role: "assistant", Content: content}},
			Options{BOS: "<s>", MaxOutput: 1 << 16})
	})
}
