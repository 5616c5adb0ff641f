// Package constrain restricts what a generation may produce: byte-level
// automata of the allowed texts (JSON, the instances of a JSON Schema)
// and, over a tokenizer's vocabulary, which tokens keep the text allowed at
// each step, so a sampler can mask the others before it draws (OpenAI's
// response_format json_object and json_schema, and calls forced by
// tool_choice).
package constrain

// MaxDepth is the deepest nesting of objects and arrays JSON accepts.
const MaxDepth = 64

// MaxSpace is the most whitespace bytes JSON accepts in a row between
// tokens: enough for indentation, not for a model that would rather
// emit whitespace than close its object.
const MaxSpace = 20

// JSON accepts exactly the prefixes of JSON texts (RFC 8259) whose value is
// an object that starts the text (no leading whitespace), with at most
// MaxSpace whitespace bytes in a row between tokens; Done reports a
// complete one.
// Strings may hold any byte from 0x20 up (UTF-8 is not checked); numbers,
// escapes and the literals true, false and null follow the grammar. The
// zero value is ready: it expects the object's opening brace. It is a
// small value type: copy it to try bytes without changing the original.
type JSON struct {
	stack [MaxDepth]byte // '{' or '[' for each open container
	depth int
	mode  mode
	key   bool  // the string being read is an object key
	sub   uint8 // position within a number, literal or \u escape
	lit   uint8 // which literal: 0 true, 1 false, 2 null
	space uint8 // whitespace bytes in a row
	began bool  // the top-level object has begun
}

type mode uint8

const (
	mValue        mode = iota // a value (or, at the top, the object)
	mKeyOrClose               // after '{': a key or '}'
	mKey                      // after ',' in an object: a key
	mColon                    // after a key
	mAfter                    // after a value: ',' or the closer (or, at the top, only whitespace)
	mValueOrClose             // after '[': a value or ']'
	mString                   // inside a string
	mEscape                   // after a backslash
	mHex                      // inside \uXXXX (sub: digits seen)
	mNumber                   // inside a number (sub: numState)
	mLiteral                  // inside true/false/null (sub: bytes seen)
)

// Number positions.
const (
	nMinus = iota // after '-'
	nZero         // a leading 0
	nInt          // integer digits
	nDot          // after '.'
	nFrac         // fraction digits
	nE            // after 'e'/'E'
	nESign        // after the exponent's sign
	nExp          // exponent digits
)

var literals = [3]string{"true", "false", "null"}

func space(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
func digit(b byte) bool { return b >= '0' && b <= '9' }
func hexDigit(b byte) bool {
	return digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F')
}

// Done reports whether the bytes fed so far are a whole JSON object
// (trailing whitespace allowed).
func (j *JSON) Done() bool { return j.began && j.depth == 0 && j.mode == mAfter }

// Feed advances by one byte and reports whether the text is still a
// prefix of an allowed one; after false, j is unspecified.
func (j *JSON) Feed(b byte) bool {
	switch j.mode {
	case mString:
		switch {
		case b == '"':
			if j.key {
				j.mode = mColon
			} else {
				j.mode = mAfter
			}
		case b == '\\':
			j.mode = mEscape
		case b < 0x20:
			return false
		}
		return true
	case mEscape:
		switch b {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			j.mode = mString
		case 'u':
			j.mode, j.sub = mHex, 0
		default:
			return false
		}
		return true
	case mHex:
		if !hexDigit(b) {
			return false
		}
		if j.sub++; j.sub == 4 {
			j.mode = mString
		}
		return true
	case mLiteral:
		l := literals[j.lit]
		if b != l[j.sub] {
			return false
		}
		if j.sub++; int(j.sub) == len(l) {
			j.mode = mAfter
		}
		return true
	case mNumber:
		if j.number(b) {
			return true
		}
		// The number ends here if it is complete; b is then read after it.
		switch j.sub {
		case nZero, nInt, nFrac, nExp:
			j.mode = mAfter
			return j.Feed(b)
		}
		return false
	}
	if space(b) {
		j.space++
		return j.began && j.space <= MaxSpace // between tokens, and after the object
	}
	j.space = 0
	switch j.mode {
	case mValue, mValueOrClose:
		if !j.began {
			if b != '{' {
				return false // the top-level value is an object
			}
			j.began = true
			return j.open(b)
		}
		if j.mode == mValueOrClose && b == ']' {
			return j.close()
		}
		return j.value(b)
	case mKeyOrClose, mKey:
		switch {
		case b == '"':
			j.mode, j.key = mString, true
			return true
		case b == '}' && j.mode == mKeyOrClose:
			return j.close()
		}
		return false
	case mColon:
		if b != ':' {
			return false
		}
		j.mode = mValue
		return true
	case mAfter:
		if j.depth == 0 {
			return false // only whitespace after the object
		}
		top := j.stack[j.depth-1]
		switch {
		case b == ',' && top == '{':
			j.mode = mKey
		case b == ',' && top == '[':
			j.mode = mValue
		case b == '}' && top == '{', b == ']' && top == '[':
			return j.close()
		default:
			return false
		}
		return true
	}
	return false
}

// value starts a value with b.
func (j *JSON) value(b byte) bool {
	switch {
	case b == '{' || b == '[':
		return j.open(b)
	case b == '"':
		j.mode, j.key = mString, false
	case b == '-':
		j.mode, j.sub = mNumber, nMinus
	case b == '0':
		j.mode, j.sub = mNumber, nZero
	case digit(b):
		j.mode, j.sub = mNumber, nInt
	case b == 't':
		j.mode, j.sub, j.lit = mLiteral, 1, 0
	case b == 'f':
		j.mode, j.sub, j.lit = mLiteral, 1, 1
	case b == 'n':
		j.mode, j.sub, j.lit = mLiteral, 1, 2
	default:
		return false
	}
	return true
}

// number continues a number with b, reporting false if b cannot.
func (j *JSON) number(b byte) bool {
	switch j.sub {
	case nMinus:
		switch {
		case b == '0':
			j.sub = nZero
		case digit(b):
			j.sub = nInt
		default:
			return false
		}
	case nZero, nInt:
		switch {
		case digit(b) && j.sub == nInt:
		case b == '.':
			j.sub = nDot
		case b == 'e' || b == 'E':
			j.sub = nE
		default:
			return false
		}
	case nDot:
		if !digit(b) {
			return false
		}
		j.sub = nFrac
	case nFrac:
		switch {
		case digit(b):
		case b == 'e' || b == 'E':
			j.sub = nE
		default:
			return false
		}
	case nE:
		switch {
		case b == '+' || b == '-':
			j.sub = nESign
		case digit(b):
			j.sub = nExp
		default:
			return false
		}
	case nESign, nExp:
		if !digit(b) {
			return false
		}
		j.sub = nExp
	}
	return true
}

func (j *JSON) open(b byte) bool {
	if j.depth == MaxDepth {
		return false
	}
	j.stack[j.depth] = b
	j.depth++
	if b == '{' {
		j.mode = mKeyOrClose
	} else {
		j.mode = mValueOrClose
	}
	return true
}

func (j *JSON) close() bool {
	j.depth--
	j.mode = mAfter
	return true
}
