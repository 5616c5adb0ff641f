package gguf

import (
	"bytes"
	"os"
	"testing"

	"github.com/loomllm/loom/internal/testdata"
)

// FuzzParse feeds arbitrary bytes to the parser and the model mapping:
// they must return an error or a consistent File, never panic, hang or
// allocate beyond the input's size. Run it by hand for minutes:
//
//	go test -run '^$' -fuzz FuzzParse ./model/gguf
func FuzzParse(f *testing.F) {
	var buf bytes.Buffer
	if err := WriteModel(&buf, tinyLlama(f, 1)); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	buf.Reset()
	if err := Write(&buf, allValues(), []TensorInfo{{Name: "x", Type: TypeQ8_0, Dims: []uint64{32, 2}}}, [][]byte{make([]byte, 68)}); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	// The header of the real model (the data would only slow the fuzzer).
	if d := testdata.SharedDir(); d != "" {
		if b, err := os.ReadFile(d + "/models/stories260K.gguf"); err == nil {
			if g, err := Parse("seed", b); err == nil {
				f.Add(b[:g.DataOffset+512])
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse("fuzz.gguf", data)
		if err != nil {
			return
		}
		for i := range g.Tensors {
			ti := &g.Tensors[i]
			if int64(len(g.Data(ti))) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, want %d", ti.Name, len(g.Data(ti)), ti.Size)
			}
		}
		m, err := g.Model()
		if err != nil {
			return
		}
		for name, ts := range m.Tensors {
			if rb, err := ts.DType.RowBytes(ts.Cols); err != nil || rb*ts.Rows != len(ts.Data) {
				t.Fatalf("tensor %q: %d×%d %v with %d bytes", name, ts.Rows, ts.Cols, ts.DType, len(ts.Data))
			}
		}
		tok := m.Tokenizer
		for _, id := range []int{tok.BOS, tok.EOS, tok.EOT, tok.PAD, tok.UNK} {
			if id < -1 || id >= len(tok.Tokens) {
				t.Fatalf("special id %d outside a vocabulary of %d", id, len(tok.Tokens))
			}
		}
	})
}
