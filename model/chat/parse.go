package chat

import (
	"fmt"
	"strconv"
)

// Statements (nodes) of a parsed template.
type (
	node interface{}

	textNode   struct{ s string }
	outputNode struct{ e expr }
	ifNode     struct {
		conds  []expr
		bodies [][]node
		els    []node
	}
	forNode struct {
		vars      []string
		iter      expr
		cond      expr // optional "if" filter
		body, els []node
	}
	setNode struct {
		names []string // targets; several for tuple unpacking
		attr  string   // set ns.attr = ...: names[0] is the namespace
		value expr     // nil for a block set
		body  []node   // {% set x %}...{% endset %}
	}
	macroNode struct {
		name     string
		params   []string
		defaults []expr // nil where a parameter has no default
		body     []node
	}
	breakNode    struct{}
	continueNode struct{}
)

// Expressions.
type (
	expr interface{}

	literal  struct{ v value }
	nameExpr struct{ name string }
	attrExpr struct {
		x    expr
		name string
	}
	indexExpr struct{ x, i expr }
	sliceExpr struct{ x, lo, hi, step expr }
	listExpr  struct{ items []expr }
	dictExpr  struct{ keys, vals []expr }
	unaryExpr struct {
		op string
		x  expr
	}
	binaryExpr struct {
		op   string
		l, r expr
	}
	condExpr struct{ then, cond, els expr }
	callExpr struct {
		fn     expr
		args   []expr
		kwargs []kwarg
	}
	filterExpr struct {
		x      expr
		name   string
		args   []expr
		kwargs []kwarg
	}
	testExpr struct {
		x    expr
		name string
		args []expr
		neg  bool
	}
	kwarg struct {
		name string
		v    expr
	}
)

// parser builds the statement tree from tokens.
type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

// maxDepth bounds the nesting of statements and expressions.
const maxDepth = 200

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("%w: %s at %s", ErrSyntax, fmt.Sprintf(format, args...), position(p.src, t.pos))
}

func (p *parser) isOp(op string) bool {
	t := p.peek()
	return t.kind == tOp && t.val == op
}

func (p *parser) isName(n string) bool {
	t := p.peek()
	return t.kind == tName && t.val == n
}

func (p *parser) expectOp(op string) error {
	if !p.isOp(op) {
		return p.errorf(p.peek(), "expected %q, found %s", op, describe(p.peek()))
	}
	p.next()
	return nil
}

func (p *parser) expectName() (string, error) {
	t := p.next()
	if t.kind != tName {
		return "", p.errorf(t, "expected a name, found %s", describe(t))
	}
	return t.val, nil
}

func (p *parser) expectKind(k tokKind) error {
	t := p.next()
	if t.kind != k {
		return p.errorf(t, "expected %s, found %s", kindName(k), describe(t))
	}
	return nil
}

func describe(t token) string {
	switch t.kind {
	case tEOF:
		return "the end of the template"
	case tText:
		return "text"
	}
	if t.val != "" {
		return strconv.Quote(t.val)
	}
	return kindName(t.kind)
}

func kindName(k tokKind) string {
	return [...]string{"end", "text", "{{", "}}", "{%", "%}", "name", "string", "integer", "float", "operator"}[k]
}

// parseBody parses statements until a block tag whose keyword is one of
// ends (left unconsumed after its "{%"), or the end of input when ends is
// empty. It returns the keyword found.
func (p *parser) parseBody(ends ...string) ([]node, string, error) {
	if p.depth++; p.depth > maxDepth {
		return nil, "", p.errorf(p.peek(), "blocks nested too deeply")
	}
	defer func() { p.depth-- }()
	var body []node
	for {
		t := p.peek()
		switch t.kind {
		case tEOF:
			if len(ends) > 0 {
				return nil, "", p.errorf(t, "missing {%% %s %%}", ends[0])
			}
			return body, "", nil
		case tText:
			p.next()
			body = append(body, &textNode{t.val})
		case tVarBegin:
			p.next()
			e, err := p.parseExpr()
			if err != nil {
				return nil, "", err
			}
			if err := p.expectKind(tVarEnd); err != nil {
				return nil, "", err
			}
			body = append(body, &outputNode{e})
		case tBlockBegin:
			kw := p.toks[p.i+1]
			for _, e := range ends {
				if kw.kind == tName && kw.val == e {
					p.next() // {%
					p.next() // keyword
					return body, e, nil
				}
			}
			p.next()
			n, err := p.parseStatement()
			if err != nil {
				return nil, "", err
			}
			if n != nil {
				body = append(body, n)
			}
		default:
			return nil, "", p.errorf(t, "unexpected %s", describe(t))
		}
	}
}

// parseStatement parses a block tag after its "{%".
func (p *parser) parseStatement() (node, error) {
	kw := p.next()
	if kw.kind != tName {
		return nil, p.errorf(kw, "expected a statement, found %s", describe(kw))
	}
	switch kw.val {
	case "if":
		return p.parseIf()
	case "for":
		return p.parseFor()
	case "set":
		return p.parseSet()
	case "macro":
		return p.parseMacro()
	case "break", "continue":
		if err := p.expectKind(tBlockEnd); err != nil {
			return nil, err
		}
		if kw.val == "break" {
			return &breakNode{}, nil
		}
		return &continueNode{}, nil
	case "generation":
		// Hugging Face's marker for assistant-token masks: no output of its own.
		if err := p.expectKind(tBlockEnd); err != nil {
			return nil, err
		}
		body, _, err := p.parseBody("endgeneration")
		if err != nil {
			return nil, err
		}
		if err := p.expectKind(tBlockEnd); err != nil {
			return nil, err
		}
		return &ifNode{conds: []expr{&literal{true}}, bodies: [][]node{body}}, nil
	}
	return nil, p.errorf(kw, "unknown statement %q", kw.val)
}

func (p *parser) parseIf() (node, error) {
	n := &ifNode{}
	for {
		cond, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		if err := p.expectKind(tBlockEnd); err != nil {
			return nil, err
		}
		body, end, err := p.parseBody("elif", "else", "endif")
		if err != nil {
			return nil, err
		}
		n.conds, n.bodies = append(n.conds, cond), append(n.bodies, body)
		switch end {
		case "elif":
			continue
		case "else":
			if err := p.expectKind(tBlockEnd); err != nil {
				return nil, err
			}
			if n.els, _, err = p.parseBody("endif"); err != nil {
				return nil, err
			}
		}
		return n, p.expectKind(tBlockEnd)
	}
}

func (p *parser) parseFor() (node, error) {
	n := &forNode{}
	for {
		name, err := p.expectName()
		if err != nil {
			return nil, err
		}
		n.vars = append(n.vars, name)
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	if !p.isName("in") {
		return nil, p.errorf(p.peek(), "expected \"in\", found %s", describe(p.peek()))
	}
	p.next()
	var err error
	// The iterable may not be a bare conditional expression: "if" starts the loop filter.
	if n.iter, err = p.parseOr(); err != nil {
		return nil, err
	}
	if p.isName("if") {
		p.next()
		if n.cond, err = p.parseOr(); err != nil {
			return nil, err
		}
	}
	if p.isName("recursive") {
		return nil, p.errorf(p.peek(), "recursive loops are not supported")
	}
	if err := p.expectKind(tBlockEnd); err != nil {
		return nil, err
	}
	body, end, err := p.parseBody("else", "endfor")
	if err != nil {
		return nil, err
	}
	n.body = body
	if end == "else" {
		if err := p.expectKind(tBlockEnd); err != nil {
			return nil, err
		}
		if n.els, _, err = p.parseBody("endfor"); err != nil {
			return nil, err
		}
	}
	return n, p.expectKind(tBlockEnd)
}

func (p *parser) parseSet() (node, error) {
	n := &setNode{}
	name, err := p.expectName()
	if err != nil {
		return nil, err
	}
	n.names = []string{name}
	if p.isOp(".") {
		p.next()
		if n.attr, err = p.expectName(); err != nil {
			return nil, err
		}
	} else {
		for p.isOp(",") {
			p.next()
			if name, err = p.expectName(); err != nil {
				return nil, err
			}
			n.names = append(n.names, name)
		}
	}
	if p.peek().kind == tBlockEnd && n.attr == "" && len(n.names) == 1 {
		p.next()
		if n.body, _, err = p.parseBody("endset"); err != nil {
			return nil, err
		}
		return n, p.expectKind(tBlockEnd)
	}
	if err := p.expectOp("="); err != nil {
		return nil, err
	}
	if n.value, err = p.parseTuple(); err != nil {
		return nil, err
	}
	return n, p.expectKind(tBlockEnd)
}

func (p *parser) parseMacro() (node, error) {
	n := &macroNode{}
	var err error
	if n.name, err = p.expectName(); err != nil {
		return nil, err
	}
	if err := p.expectOp("("); err != nil {
		return nil, err
	}
	for !p.isOp(")") {
		name, err := p.expectName()
		if err != nil {
			return nil, err
		}
		var def expr
		if p.isOp("=") {
			p.next()
			if def, err = p.parseExpr(); err != nil {
				return nil, err
			}
		}
		n.params, n.defaults = append(n.params, name), append(n.defaults, def)
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	if err := p.expectKind(tBlockEnd); err != nil {
		return nil, err
	}
	if n.body, _, err = p.parseBody("endmacro"); err != nil {
		return nil, err
	}
	return n, p.expectKind(tBlockEnd)
}

// parseTuple parses an expression, or a tuple of them written without
// brackets (the value of a set with several targets).
func (p *parser) parseTuple() (expr, error) {
	e, err := p.parseExpr()
	if err != nil || !p.isOp(",") {
		return e, err
	}
	items := []expr{e}
	for p.isOp(",") {
		p.next()
		if e, err = p.parseExpr(); err != nil {
			return nil, err
		}
		items = append(items, e)
	}
	return &listExpr{items}, nil
}

// parseExpr parses a full expression: a conditional expression
// "a if cond else b" over the operator grammar.
func (p *parser) parseExpr() (expr, error) {
	if p.depth++; p.depth > maxDepth {
		return nil, p.errorf(p.peek(), "expression nested too deeply")
	}
	defer func() { p.depth-- }()
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	for p.isName("if") {
		p.next()
		cond, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		var els expr
		if p.isName("else") {
			p.next()
			if els, err = p.parseExpr(); err != nil {
				return nil, err
			}
		}
		e = &condExpr{then: e, cond: cond, els: els}
	}
	return e, nil
}

func (p *parser) parseOr() (expr, error) {
	return p.parseLeft(p.parseAnd, "or")
}

func (p *parser) parseAnd() (expr, error) {
	return p.parseLeft(p.parseNot, "and")
}

// parseLeft parses a left-associative chain of a keyword operator.
func (p *parser) parseLeft(operand func() (expr, error), op string) (expr, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for p.isName(op) {
		p.next()
		r, err := operand()
		if err != nil {
			return nil, err
		}
		l = &binaryExpr{op: op, l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseNot() (expr, error) {
	if p.isName("not") {
		p.next()
		if p.depth++; p.depth > maxDepth {
			return nil, p.errorf(p.peek(), "expression nested too deeply")
		}
		defer func() { p.depth-- }()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{op: "not", x: x}, nil
	}
	return p.parseCompare()
}

// parseCompare parses comparisons; a chain a < b < c means a < b and b < c.
func (p *parser) parseCompare() (expr, error) {
	l, err := p.parseMath1()
	if err != nil {
		return nil, err
	}
	var out expr
	for {
		op := ""
		t := p.peek()
		switch {
		case t.kind == tOp && (t.val == "==" || t.val == "!=" || t.val == "<" || t.val == ">" || t.val == "<=" || t.val == ">="):
			op = t.val
			p.next()
		case p.isName("in"):
			op = "in"
			p.next()
		case p.isName("not") && p.toks[p.i+1].kind == tName && p.toks[p.i+1].val == "in":
			op = "not in"
			p.next()
			p.next()
		}
		if op == "" {
			break
		}
		r, err := p.parseMath1()
		if err != nil {
			return nil, err
		}
		c := &binaryExpr{op: op, l: l, r: r}
		if out == nil {
			out = c
		} else {
			out = &binaryExpr{op: "and", l: out, r: c}
		}
		l = r
	}
	if out == nil {
		return l, nil
	}
	return out, nil
}

// parseMath1 parses + and -; then ~ (concatenation), * / // %, and **,
// in Jinja's order of precedence.
func (p *parser) parseMath1() (expr, error) {
	return p.parseBinary(p.parseConcat, "+", "-")
}

func (p *parser) parseConcat() (expr, error) {
	return p.parseBinary(p.parseMath2, "~")
}

func (p *parser) parseMath2() (expr, error) {
	return p.parseBinary(p.parsePow, "*", "/", "//", "%")
}

func (p *parser) parsePow() (expr, error) {
	return p.parseBinary(p.parseUnary, "**")
}

func (p *parser) parseBinary(operand func() (expr, error), ops ...string) (expr, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		found := false
		for _, op := range ops {
			if t.kind == tOp && t.val == op {
				found = true
			}
		}
		if !found {
			return l, nil
		}
		p.next()
		r, err := operand()
		if err != nil {
			return nil, err
		}
		l = &binaryExpr{op: t.val, l: l, r: r}
	}
}

func (p *parser) parseUnary() (expr, error) {
	if p.isOp("-") || p.isOp("+") {
		op := p.next().val
		if p.depth++; p.depth > maxDepth {
			return nil, p.errorf(p.peek(), "expression nested too deeply")
		}
		defer func() { p.depth-- }()
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{op: op, x: x}, nil
	}
	x, err := p.parsePrimary()
	if err != nil {
		return nil, err
	}
	if x, err = p.parsePostfix(x); err != nil {
		return nil, err
	}
	return p.parseFilters(x)
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.next()
	switch t.kind {
	case tString:
		s := t.val
		for p.peek().kind == tString { // adjacent literals concatenate
			s += p.next().val
		}
		return &literal{s}, nil
	case tInt:
		v, err := strconv.ParseInt(t.val, 10, 64)
		if err != nil {
			return nil, p.errorf(t, "integer %s out of range", t.val)
		}
		return &literal{v}, nil
	case tFloat:
		v, err := strconv.ParseFloat(t.val, 64)
		if err != nil {
			return nil, p.errorf(t, "bad number %s", t.val)
		}
		return &literal{v}, nil
	case tName:
		switch t.val {
		case "true", "True":
			return &literal{true}, nil
		case "false", "False":
			return &literal{false}, nil
		case "none", "None":
			return &literal{nil}, nil
		}
		return &nameExpr{t.val}, nil
	case tOp:
		switch t.val {
		case "(":
			if p.isOp(")") { // empty tuple
				p.next()
				return &listExpr{}, nil
			}
			e, err := p.parseExpr()
			if err != nil {
				return nil, err
			}
			if p.isOp(",") { // a tuple: treated as a list
				items := []expr{e}
				for p.isOp(",") {
					p.next()
					if p.isOp(")") {
						break
					}
					if e, err = p.parseExpr(); err != nil {
						return nil, err
					}
					items = append(items, e)
				}
				e = &listExpr{items}
			}
			return e, p.expectOp(")")
		case "[":
			l := &listExpr{}
			for !p.isOp("]") {
				e, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				l.items = append(l.items, e)
				if !p.isOp(",") {
					break
				}
				p.next()
			}
			return l, p.expectOp("]")
		case "{":
			d := &dictExpr{}
			for !p.isOp("}") {
				k, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				if err := p.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				d.keys, d.vals = append(d.keys, k), append(d.vals, v)
				if !p.isOp(",") {
					break
				}
				p.next()
			}
			return d, p.expectOp("}")
		}
	}
	return nil, p.errorf(t, "unexpected %s", describe(t))
}

// parsePostfix parses attribute access, subscripts, slices and calls.
func (p *parser) parsePostfix(x expr) (expr, error) {
	for {
		switch {
		case p.isOp("."):
			p.next()
			t := p.next()
			switch t.kind {
			case tName:
				x = &attrExpr{x: x, name: t.val}
			case tInt:
				n, _ := strconv.ParseInt(t.val, 10, 64)
				x = &indexExpr{x: x, i: &literal{n}}
			default:
				return nil, p.errorf(t, "expected an attribute name, found %s", describe(t))
			}
		case p.isOp("["):
			p.next()
			var parts [3]expr
			colons := 0
			for {
				if !p.isOp(":") && !p.isOp("]") {
					e, err := p.parseExpr()
					if err != nil {
						return nil, err
					}
					parts[colons] = e
				}
				if p.isOp(":") && colons < 2 {
					p.next()
					colons++
					continue
				}
				break
			}
			if err := p.expectOp("]"); err != nil {
				return nil, err
			}
			if colons == 0 {
				if parts[0] == nil {
					return nil, p.errorf(p.peek(), "empty subscript")
				}
				x = &indexExpr{x: x, i: parts[0]}
			} else {
				x = &sliceExpr{x: x, lo: parts[0], hi: parts[1], step: parts[2]}
			}
		case p.isOp("("):
			p.next()
			args, kwargs, err := p.parseArgs()
			if err != nil {
				return nil, err
			}
			x = &callExpr{fn: x, args: args, kwargs: kwargs}
		default:
			return x, nil
		}
	}
}

// parseArgs parses call arguments after "(" up to and including ")".
func (p *parser) parseArgs() ([]expr, []kwarg, error) {
	var args []expr
	var kwargs []kwarg
	for !p.isOp(")") {
		if p.peek().kind == tName && p.toks[p.i+1].kind == tOp && p.toks[p.i+1].val == "=" {
			name := p.next().val
			p.next()
			v, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{name, v})
		} else {
			if len(kwargs) > 0 {
				return nil, nil, p.errorf(p.peek(), "positional argument after keyword argument")
			}
			v, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			args = append(args, v)
		}
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	return args, kwargs, p.expectOp(")")
}

// parseFilters parses "| filter(args)" and "is [not] test(args)" suffixes.
func (p *parser) parseFilters(x expr) (expr, error) {
	for {
		switch {
		case p.isOp("|"):
			p.next()
			name, err := p.expectName()
			if err != nil {
				return nil, err
			}
			f := &filterExpr{x: x, name: name}
			if p.isOp("(") {
				p.next()
				if f.args, f.kwargs, err = p.parseArgs(); err != nil {
					return nil, err
				}
			}
			x = f
		case p.isName("is"):
			p.next()
			t := &testExpr{x: x}
			if p.isName("not") {
				p.next()
				t.neg = true
			}
			tok := p.next()
			switch {
			case tok.kind == tName:
				t.name = tok.val
			case tok.kind == tOp && (tok.val == "==" || tok.val == "!=" || tok.val == "<" || tok.val == ">" || tok.val == "<=" || tok.val == ">="):
				t.name = tok.val
			default:
				return nil, p.errorf(tok, "expected a test name, found %s", describe(tok))
			}
			if t.name == "none" || t.name == "None" {
				t.name = "none"
			}
			if p.isOp("(") {
				p.next()
				args, _, err := p.parseArgs()
				if err != nil {
					return nil, err
				}
				t.args = args
			} else if k := p.peek().kind; k == tString || k == tInt || k == tFloat || (k == tName && !isKeyword(p.peek().val)) {
				// A test with one argument may omit the brackets: "x is divisibleby 3".
				arg, err := p.parsePrimary()
				if err != nil {
					return nil, err
				}
				t.args = []expr{arg}
			}
			x = t
		default:
			return x, nil
		}
	}
}

func isKeyword(s string) bool {
	switch s {
	case "and", "or", "not", "in", "is", "if", "else", "for", "recursive":
		return true
	}
	return false
}
