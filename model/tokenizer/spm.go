package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/loomllm/loom/model"
)

// newSPM builds a SentencePiece-style tokenizer from GGUF data: merges
// follow the score of the token a pair forms.
func newSPM(spec *model.TokenizerSpec) (*Tokenizer, error) {
	t, err := base(spec)
	if err != nil {
		return nil, err
	}
	if len(spec.Scores) == 0 {
		return nil, fmt.Errorf("tokenizer: SentencePiece vocabulary without scores: %w", model.ErrFormat)
	}
	t.fallback = true
	for id, p := range t.pieces {
		if b, ok := parseByteToken(p); ok && (len(spec.Types) == 0 || t.types[id] == typeByte) {
			t.types[id] = typeByte
			t.byteID[b] = int32(id)
		}
	}
	t.setCharVocab()
	t.spmMerges(scoreRanks(spec.Scores))
	t.decoded = make([]string, len(t.pieces))
	for id, p := range t.pieces {
		t.decoded[id] = spmDecode(p, t.types[id])
	}
	if spec.AddSpacePrefix {
		t.stripSpace = true
		t.normalize = func(text string, _ bool) string { return spaceMark + strings.ReplaceAll(text, " ", spaceMark) }
	} else {
		t.normalize = func(text string, _ bool) string { return strings.ReplaceAll(text, " ", spaceMark) }
	}
	if t.canSplitAtSpaces() {
		t.split = splitBeforeSpaceMark
	}
	t.finish()
	return t, nil
}

// mergeable reports whether a token may be the result or part of a merge:
// normal and user-defined tokens, not control, byte, unknown or unused ones.
func (t *Tokenizer) mergeable(id int) bool {
	typ := t.types[id]
	return typ == typeNormal || typ == typeUserDefined
}

// setCharVocab fills the character lookup tables from the single-character
// tokens.
func (t *Tokenizer) setCharVocab() {
	t.runeID = map[rune]int32{}
	for id, p := range t.pieces {
		if !t.mergeable(id) {
			continue
		}
		r, size := utf8.DecodeRuneInString(p)
		if size != len(p) || r == utf8.RuneError {
			continue
		}
		if r < utf8.RuneSelf {
			if t.asciiID[r] < 0 {
				t.asciiID[r] = int32(id)
			}
		} else if _, dup := t.runeID[r]; !dup {
			t.runeID[r] = int32(id)
		}
	}
}

// maxMergeBytes bounds the tokens spmMerges cuts up: the work is quadratic
// in a token's length, and real SentencePiece tokens are far shorter.
const maxMergeBytes = 256

// spmMerges derives merge rules from the vocabulary: every way of cutting a
// token into two symbols is a rule forming that token, ranked by its score.
// A character that is not itself a token but occurs in one gets a pseudo id
// beyond the vocabulary, so the merges SentencePiece would find through it
// still happen; left alone it falls back to byte tokens.
func (t *Tokenizer) spmMerges(ranks []int32) {
	text := make(map[string]int32, len(t.pieces))
	for id, p := range t.pieces {
		if t.mergeable(id) {
			if _, dup := text[p]; !dup {
				text[p] = int32(id)
			}
		}
	}
	next := int32(len(t.pieces))
	symbolID := func(s string) int32 {
		if id, ok := text[s]; ok {
			return id
		}
		r, size := utf8.DecodeRuneInString(s)
		if size != len(s) || r == utf8.RuneError {
			return -1
		}
		if r < utf8.RuneSelf {
			if t.asciiID[r] < 0 {
				t.asciiID[r] = next
				next++
			}
			return t.asciiID[r]
		}
		id, ok := t.runeID[r]
		if !ok {
			id = next
			t.runeID[r] = id
			next++
		}
		return id
	}
	t.merges = make(map[uint64]merge, len(t.pieces)*4)
	for id, p := range t.pieces {
		if !t.mergeable(id) || ranks[id] == noRule || len(p) > maxMergeBytes {
			continue
		}
		for k := 0; k < len(p); {
			_, size := utf8.DecodeRuneInString(p[k:])
			k += size
			if k >= len(p) {
				break
			}
			l, r := symbolID(p[:k]), symbolID(p[k:])
			if l >= 0 && r >= 0 {
				t.merges[pairKey(l, r)] = merge{rank: ranks[id], id: int32(id)}
			}
		}
	}
}

// canSplitAtSpaces reports whether no merge can join a character other than
// "▁" with a following "▁". Then text may be cut before every such "▁"
// without changing the result, and SentencePiece runs word by word.
func (t *Tokenizer) canSplitAtSpaces() bool {
	for _, m := range t.merges {
		p := t.pieces[m.id]
		for i := strings.Index(p, spaceMark); i >= 0; {
			if i > 0 && !strings.HasSuffix(p[:i], spaceMark) {
				return false
			}
			j := strings.Index(p[i+len(spaceMark):], spaceMark)
			if j < 0 {
				break
			}
			i += len(spaceMark) + j
		}
	}
	return true
}

// splitBeforeSpaceMark cuts text before every "▁" that follows another
// character.
func splitBeforeSpaceMark(dst []span, text string) []span {
	start := 0
	for i := 0; i < len(text); {
		j := strings.Index(text[i:], spaceMark)
		if j < 0 {
			break
		}
		i += j
		if i > start && !strings.HasSuffix(text[start:i], spaceMark) {
			dst = append(dst, span{start, i})
			start = i
		}
		i += len(spaceMark)
	}
	return append(dst, span{start, len(text)})
}

// spmDecode returns the text a SentencePiece token stands for.
func spmDecode(p string, typ int32) string {
	switch typ {
	case typeControl, typeUnused:
		return ""
	case typeUnknown:
		return unknownText
	case typeByte:
		if b, ok := parseByteToken(p); ok {
			return string([]byte{b})
		}
		return ""
	case typeUserDefined:
		return p
	}
	return strings.ReplaceAll(p, spaceMark, " ")
}
