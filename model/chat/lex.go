package chat

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokKind classifies a lexical token.
type tokKind uint8

const (
	tEOF        tokKind = iota
	tText               // literal template text
	tVarBegin           // {{
	tVarEnd             // }}
	tBlockBegin         // {%
	tBlockEnd           // %}
	tName               // identifier or keyword
	tString             // string literal (value unquoted)
	tInt                // integer literal
	tFloat              // float literal
	tOp                 // operator or punctuation
)

// token is one lexical token; pos is its byte offset in the source.
type token struct {
	kind tokKind
	val  string
	pos  int
}

// lexer splits a template into text and tag tokens, applying the
// whitespace rules Hugging Face renders chat templates with: trim_blocks
// (the first newline after a block tag is removed), lstrip_blocks (spaces
// and tabs before a block tag at the start of a line are removed) and the
// explicit "-" markers ({%- ... -%}, {{- ... -}}, {#- ... -#}).
type lexer struct {
	src  string
	pos  int
	toks []token
	// lstripNext: the previous tag ended with "-", so the next text loses
	// its leading whitespace.
	lstripNext bool
	// trimNewline: the previous tag was a block or comment, so one
	// leading newline of the next text is dropped (trim_blocks).
	trimNewline bool
}

// maxTokens bounds the tokens of one template (a template is model data,
// but it should not be able to exhaust memory either).
const maxTokens = 1 << 20

func lex(src string) ([]token, error) {
	l := &lexer{src: src}
	for l.pos < len(src) {
		if len(l.toks) > maxTokens {
			return nil, fmt.Errorf("%w: more than %d tokens", ErrSyntax, maxTokens)
		}
		i := indexTagStart(src[l.pos:])
		if i < 0 {
			l.text(src[l.pos:])
			l.pos = len(src)
			break
		}
		start := l.pos + i
		kind := src[start+1]
		l.text(src[l.pos:start])
		l.pos = start + 2
		if l.pos < len(src) && (src[l.pos] == '-' || src[l.pos] == '+') {
			l.pos++
		}
		var err error
		switch kind {
		case '#':
			err = l.comment(start)
		case '{':
			err = l.tag(tVarBegin, tVarEnd, "}}", start)
		case '%':
			err = l.tag(tBlockBegin, tBlockEnd, "%}", start)
			if err == nil {
				err = l.raw()
			}
		}
		if err != nil {
			return nil, err
		}
	}
	l.toks = append(l.toks, token{kind: tEOF, pos: len(src)})
	return l.toks, nil
}

// indexTagStart returns the index of the first "{{", "{%" or "{#" in s.
func indexTagStart(s string) int {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '{' && (s[i+1] == '{' || s[i+1] == '%' || s[i+1] == '#') {
			return i
		}
	}
	return -1
}

// text emits literal text, after the trims the previous tag asked for.
func (l *lexer) text(s string) {
	pos := l.pos
	if l.trimNewline {
		l.trimNewline = false
		if strings.HasPrefix(s, "\r\n") {
			s, pos = s[2:], pos+2
		} else if strings.HasPrefix(s, "\n") {
			s, pos = s[1:], pos+1
		}
	}
	if l.lstripNext {
		l.lstripNext = false
		t := strings.TrimLeftFunc(s, unicode.IsSpace)
		s, pos = t, pos+len(s)-len(t)
	}
	if s != "" {
		l.toks = append(l.toks, token{kind: tText, val: s, pos: pos})
	}
}

// applyStrip applies the marker of the tag starting at start to the text
// right before it: "-" removes all trailing whitespace; a block or comment
// tag without "+" removes the spaces and tabs between the start of its
// line and the tag (lstrip_blocks).
func (l *lexer) applyStrip(start int) {
	if len(l.toks) == 0 || l.toks[len(l.toks)-1].kind != tText {
		return
	}
	kind, mark := l.src[start+1], byte(0)
	if start+2 < len(l.src) {
		mark = l.src[start+2]
	}
	t := &l.toks[len(l.toks)-1]
	switch {
	case mark == '-':
		t.val = strings.TrimRightFunc(t.val, unicode.IsSpace)
	case mark != '+' && kind != '{':
		trimmed := strings.TrimRight(t.val, " \t")
		if strings.HasSuffix(trimmed, "\n") || trimmed == "" && (t.pos == 0 || l.src[t.pos-1] == '\n') {
			t.val = trimmed
		}
	}
	if t.val == "" {
		l.toks = l.toks[:len(l.toks)-1]
	}
}

// comment skips a {# ... #} comment.
func (l *lexer) comment(start int) error {
	l.applyStrip(start)
	end := strings.Index(l.src[l.pos:], "#}")
	if end < 0 {
		return fmt.Errorf("%w: unclosed comment at %s", ErrSyntax, l.where(start))
	}
	body := l.src[l.pos : l.pos+end]
	l.pos += end + 2
	l.lstripNext = strings.HasSuffix(body, "-")
	l.trimNewline = !l.lstripNext
	return nil
}

// tag lexes the expression tokens of a {{ }} or {% %} tag up to its end.
func (l *lexer) tag(begin, end tokKind, closer string, start int) error {
	l.applyStrip(start)
	l.toks = append(l.toks, token{kind: begin, pos: start})
	for {
		l.skipSpace()
		if l.pos >= len(l.src) {
			return fmt.Errorf("%w: unclosed tag at %s", ErrSyntax, l.where(start))
		}
		s := l.src[l.pos:]
		if strings.HasPrefix(s, "-"+closer) || strings.HasPrefix(s, "+"+closer) {
			l.lstripNext = s[0] == '-'
			l.pos += 3
			break
		}
		if strings.HasPrefix(s, closer) {
			l.pos += 2
			break
		}
		if err := l.exprToken(); err != nil {
			return err
		}
	}
	l.toks = append(l.toks, token{kind: end, pos: l.pos})
	l.trimNewline = end == tBlockEnd && !l.lstripNext
	return nil
}

// raw handles {% raw %} ... {% endraw %}: the text between is literal.
func (l *lexer) raw() error {
	n := len(l.toks)
	if n < 3 || l.toks[n-2].kind != tName || l.toks[n-2].val != "raw" || l.toks[n-3].kind != tBlockBegin {
		return nil
	}
	start := l.toks[n-3].pos
	l.toks = l.toks[:n-3]
	rest := l.src[l.pos:]
	for off := 0; ; {
		i := strings.Index(rest[off:], "{%")
		if i < 0 {
			return fmt.Errorf("%w: raw block at %s has no endraw", ErrSyntax, l.where(start))
		}
		j := off + i + 2
		if j < len(rest) && (rest[j] == '-' || rest[j] == '+') {
			j++
		}
		k := j
		for k < len(rest) && (rest[k] == ' ' || rest[k] == '\t' || rest[k] == '\n') {
			k++
		}
		if !strings.HasPrefix(rest[k:], "endraw") {
			off = off + i + 2
			continue
		}
		e := strings.Index(rest[k:], "%}")
		if e < 0 {
			return fmt.Errorf("%w: unclosed endraw at %s", ErrSyntax, l.where(start))
		}
		body := rest[:off+i]
		if l.lstripNext {
			body = strings.TrimLeftFunc(body, unicode.IsSpace)
			l.lstripNext = false
		}
		if rest[off+i+2] == '-' {
			body = strings.TrimRightFunc(body, unicode.IsSpace)
		}
		if body != "" {
			l.toks = append(l.toks, token{kind: tText, val: body, pos: l.pos})
		}
		l.lstripNext = k+e > 0 && rest[k+e-1] == '-'
		l.trimNewline = !l.lstripNext
		l.pos += k + e + 2
		return nil
	}
}

func (l *lexer) skipSpace() {
	for l.pos < len(l.src) && strings.IndexByte(" \t\r\n", l.src[l.pos]) >= 0 {
		l.pos++
	}
}

// operators, longest first.
var operators = []string{"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=",
	"(", ")", "[", "]", "{", "}", ",", ".", ":", "|"}

// exprToken lexes one token inside a tag.
func (l *lexer) exprToken() error {
	s, start := l.src[l.pos:], l.pos
	c := s[0]
	switch {
	case c == '\'' || c == '"':
		v, n, err := unquote(s)
		if err != nil {
			return fmt.Errorf("%w at %s", err, l.where(start))
		}
		l.toks = append(l.toks, token{kind: tString, val: v, pos: start})
		l.pos += n
		return nil
	case c >= '0' && c <= '9':
		n, float := 0, false
		for n < len(s) && (s[n] >= '0' && s[n] <= '9' || s[n] == '_') {
			n++
		}
		if n+1 < len(s) && s[n] == '.' && s[n+1] >= '0' && s[n+1] <= '9' {
			float = true
			n++
			for n < len(s) && s[n] >= '0' && s[n] <= '9' {
				n++
			}
		}
		if n < len(s) && (s[n] == 'e' || s[n] == 'E') {
			m := n + 1
			if m < len(s) && (s[m] == '+' || s[m] == '-') {
				m++
			}
			if m < len(s) && s[m] >= '0' && s[m] <= '9' {
				float = true
				for n = m; n < len(s) && s[n] >= '0' && s[n] <= '9'; n++ {
				}
			}
		}
		kind := tInt
		if float {
			kind = tFloat
		}
		l.toks = append(l.toks, token{kind: kind, val: strings.ReplaceAll(s[:n], "_", ""), pos: start})
		l.pos += n
		return nil
	case c == '_' || c < utf8.RuneSelf && unicode.IsLetter(rune(c)):
		n := 0
		for n < len(s) && (s[n] == '_' || s[n] < utf8.RuneSelf && (unicode.IsLetter(rune(s[n])) || unicode.IsDigit(rune(s[n])))) {
			n++
		}
		l.toks = append(l.toks, token{kind: tName, val: s[:n], pos: start})
		l.pos += n
		return nil
	}
	for _, op := range operators {
		if strings.HasPrefix(s, op) {
			l.toks = append(l.toks, token{kind: tOp, val: op, pos: start})
			l.pos += len(op)
			return nil
		}
	}
	r, _ := utf8.DecodeRuneInString(s)
	return fmt.Errorf("%w: unexpected character %q at %s", ErrSyntax, r, l.where(start))
}

// unquote reads a Python string literal at the start of s and returns its
// value and length.
func unquote(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case '\\', '\'', '"':
				b.WriteByte(e)
			case '\n':
				// line continuation
			case 'u', 'x':
				n := 4
				if e == 'x' {
					n = 2
				}
				var r rune
				if i+n >= len(s) {
					return "", 0, fmt.Errorf("%w: bad \\%c escape", ErrSyntax, e)
				}
				for _, h := range s[i+1 : i+1+n] {
					d, ok := hexDigit(byte(h))
					if !ok {
						return "", 0, fmt.Errorf("%w: bad \\%c escape", ErrSyntax, e)
					}
					r = r*16 + rune(d)
				}
				b.WriteRune(r)
				i += n
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("%w: unterminated string", ErrSyntax)
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// where describes a byte offset as line:column.
func (l *lexer) where(pos int) string { return position(l.src, pos) }

func position(src string, pos int) string {
	pos = min(pos, len(src))
	line := 1 + strings.Count(src[:pos], "\n")
	col := pos - strings.LastIndexByte(src[:pos], '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}
