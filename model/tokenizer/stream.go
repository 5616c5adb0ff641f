package tokenizer

// Stream decodes tokens one at a time, as a generation loop produces them,
// and returns only complete UTF-8 characters: the bytes of a character split
// across byte tokens are held until the last one arrives. At the start and
// after every special token it drops the leading space of the next text
// token when the vocabulary adds one while encoding (add_space_prefix),
// which is what llama2.c prints after BOS.
//
// Bytes that can never complete a character (invalid UTF-8) are passed
// through as they are. A Stream is not safe for concurrent use.
type Stream struct {
	t       *Tokenizer
	pending []byte
	atStart bool
}

// NewStream returns a detokenizer positioned at the start of a text. To
// continue after a prompt, feed it the prompt's tokens and discard what
// Next returns.
func (t *Tokenizer) NewStream() *Stream { return &Stream{t: t, atStart: true} }

// Next adds token id and returns the text that is now complete.
func (s *Stream) Next(id int32) string {
	s.pending = s.appendNext(s.pending, id)
	k := len(s.pending) - incompleteTail(s.pending)
	if k == 0 {
		return ""
	}
	out := string(s.pending[:k])
	s.pending = append(s.pending[:0], s.pending[k:]...)
	return out
}

// Flush returns the bytes held back (an incomplete UTF-8 sequence at the
// end of the tokens) and empties the stream.
func (s *Stream) Flush() string {
	out := string(s.pending)
	s.pending = s.pending[:0]
	return out
}

// appendNext appends the bytes of token id to b, applying the leading-space
// rule.
func (s *Stream) appendNext(b []byte, id int32) []byte {
	t := s.t
	if id < 0 || int(id) >= len(t.pieces) {
		return b
	}
	switch t.types[id] {
	case typeControl, typeUserDefined:
		s.atStart = true
		return append(b, t.decoded[id]...)
	}
	text := t.decoded[id]
	if s.atStart && t.stripSpace && t.types[id] != typeByte && len(text) > 0 && text[0] == ' ' {
		text = text[1:]
	}
	s.atStart = false
	return append(b, text...)
}
