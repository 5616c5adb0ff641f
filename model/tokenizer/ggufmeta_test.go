package tokenizer

// TEMPORARY: a minimal GGUF metadata reader for the tests until package
// model/gguf lands. Delete once gguf.Load exists.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model"
)

type ggufReader struct {
	r   *bufio.Reader
	err error
}

func (g *ggufReader) u32() uint32 {
	var b [4]byte
	if _, err := io.ReadFull(g.r, b[:]); err != nil && g.err == nil {
		g.err = err
	}
	return binary.LittleEndian.Uint32(b[:])
}

func (g *ggufReader) u64() uint64 {
	var b [8]byte
	if _, err := io.ReadFull(g.r, b[:]); err != nil && g.err == nil {
		g.err = err
	}
	return binary.LittleEndian.Uint64(b[:])
}

func (g *ggufReader) str() string {
	n := g.u64()
	if n > 1<<20 {
		g.err = fmt.Errorf("string of %d bytes", n)
		return ""
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(g.r, b); err != nil && g.err == nil {
		g.err = err
	}
	return string(b)
}

func (g *ggufReader) value(typ uint32) any {
	switch typ {
	case 0, 1, 7:
		b, _ := g.r.ReadByte()
		return int64(b)
	case 2, 3:
		var b [2]byte
		io.ReadFull(g.r, b[:])
		return int64(binary.LittleEndian.Uint16(b[:]))
	case 4:
		return int64(g.u32())
	case 5:
		return int64(int32(g.u32()))
	case 6:
		return math.Float32frombits(g.u32())
	case 8:
		return g.str()
	case 9:
		et := g.u32()
		n := g.u64()
		if n > 1<<24 {
			g.err = fmt.Errorf("array of %d", n)
			return nil
		}
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(et)
		}
		return out
	case 10, 11:
		return int64(g.u64())
	case 12:
		return math.Float64frombits(g.u64())
	}
	g.err = fmt.Errorf("type %d", typ)
	return nil
}

func loadSpec(t testing.TB, path string) *model.TokenizerSpec {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	g := &ggufReader{r: bufio.NewReader(f)}
	require.Equal(t, uint32(0x46554747), g.u32())
	g.u32()
	g.u64()
	n := g.u64()
	kv := map[string]any{}
	for i := uint64(0); i < n && g.err == nil; i++ {
		k := g.str()
		kv[k] = g.value(g.u32())
	}
	require.NoError(t, g.err)
	s := &model.TokenizerSpec{BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1, AddSpacePrefix: true}
	s.Model, _ = kv["tokenizer.ggml.model"].(string)
	s.Pre, _ = kv["tokenizer.ggml.pre"].(string)
	for _, v := range kv["tokenizer.ggml.tokens"].([]any) {
		s.Tokens = append(s.Tokens, v.(string))
	}
	if a, ok := kv["tokenizer.ggml.scores"].([]any); ok {
		for _, v := range a {
			s.Scores = append(s.Scores, v.(float32))
		}
	}
	if a, ok := kv["tokenizer.ggml.token_type"].([]any); ok {
		for _, v := range a {
			s.Types = append(s.Types, int32(v.(int64)))
		}
	}
	if a, ok := kv["tokenizer.ggml.merges"].([]any); ok {
		for _, v := range a {
			s.Merges = append(s.Merges, v.(string))
		}
	}
	id := func(k string, p *int) {
		if v, ok := kv[k].(int64); ok {
			*p = int(v)
		}
	}
	id("tokenizer.ggml.bos_token_id", &s.BOS)
	id("tokenizer.ggml.eos_token_id", &s.EOS)
	id("tokenizer.ggml.eot_token_id", &s.EOT)
	id("tokenizer.ggml.padding_token_id", &s.PAD)
	id("tokenizer.ggml.unknown_token_id", &s.UNK)
	s.AddBOS = s.Model == "llama"
	if v, ok := kv["tokenizer.ggml.add_bos_token"].(int64); ok {
		s.AddBOS = v != 0
	}
	if v, ok := kv["tokenizer.ggml.add_eos_token"].(int64); ok {
		s.AddEOS = v != 0
	}
	if v, ok := kv["tokenizer.ggml.add_space_prefix"].(int64); ok {
		s.AddSpacePrefix = v != 0
	}
	if s.Model != "llama" {
		s.AddSpacePrefix = false
	}
	return s
}
