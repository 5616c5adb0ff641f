package synth

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/runtime/backend"
)

// Llama2CHeaderSize is the size of llama2.c's legacy (version 0)
// checkpoint header: seven int32 values.
const Llama2CHeaderSize = 7 * 4

// Llama2CLayout describes m in llama2.c's legacy checkpoint format, the
// one run.c reads: the header (dim, hidden_dim, n_layers, n_heads,
// n_kv_heads, vocab_size, seq_len as int32; vocab_size negative when the
// classifier is not shared with the embedding), then float32 weights in
// run.c's order, each kind stacked over the layers: token embedding,
// attention norms, wq, wk, wv, wo, FFN norms, w1 (gate), w2 (down), w3
// (up), final norm, two unused RoPE tables (seq_len·head_size/2 floats
// each), and the classifier when not shared. It returns the header, each
// tensor's byte offset in the file, and the file size.
//
// run.c rotates interleaved pairs with head_size = dim/n_heads, so m must
// be a llama model with F32 weights, RopeNeoX false, RopeDims = HeadDim =
// Dim/Heads and no biases. run.c also fixes RoPE's base at 10000 and the
// norm epsilon at 1e-5 (other values change its outputs, not its speed).
func Llama2CLayout(m *model.Model) (header []byte, offsets map[string]int64, size int64, err error) {
	c := &m.Config
	switch {
	case c.Arch != model.ArchLlama:
		err = fmt.Errorf("llama2.c checkpoints hold llama models, not %s", c.Arch)
	case c.RopeNeoX:
		err = fmt.Errorf("llama2.c rotates interleaved pairs; permute the Q/K rows of a NeoX-layout model first")
	case c.Heads <= 0 || c.HeadDim*c.Heads != c.Dim || c.RopeDims != c.HeadDim:
		err = fmt.Errorf("llama2.c needs head size = dim/heads = rotary dims (have %d, %d/%d, %d)", c.HeadDim, c.Dim, c.Heads, c.RopeDims)
	case c.Dim > math.MaxInt32 || c.Hidden > math.MaxInt32 || c.VocabSize > math.MaxInt32 || c.Context > math.MaxInt32:
		err = fmt.Errorf("llama2.c's header holds int32 sizes")
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%s: %w: %w", m.Path, model.ErrUnsupported, err)
	}
	for name, t := range m.Tensors {
		if t.DType != backend.F32 {
			return nil, nil, 0, fmt.Errorf("%s: tensor %q is %v; llama2.c checkpoints are float32: %w", m.Path, name, t.DType, model.ErrUnsupported)
		}
		if strings.HasSuffix(name, ".bias") {
			return nil, nil, 0, fmt.Errorf("%s: tensor %q: llama2.c has no biases: %w", m.Path, name, model.ErrUnsupported)
		}
	}
	vocab := int32(c.VocabSize)
	if !c.TiedEmbeddings {
		vocab = -vocab
	}
	for _, v := range []int32{int32(c.Dim), int32(c.Hidden), int32(c.Layers), int32(c.Heads), int32(c.KVHeads), vocab, int32(c.Context)} {
		header = binary.LittleEndian.AppendUint32(header, uint32(v))
	}
	offsets = map[string]int64{}
	off := int64(Llama2CHeaderSize)
	place := func(name string) error {
		t, ok := m.Tensors[name]
		if !ok {
			return fmt.Errorf("%s: tensor %q: %w", m.Path, name, model.ErrMissing)
		}
		offsets[name] = off
		off += int64(t.Rows) * int64(t.Cols) * 4
		return nil
	}
	order := []string{"token_embd.weight"}
	for _, kind := range []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_down", "ffn_up"} {
		for l := 0; l < c.Layers; l++ {
			order = append(order, fmt.Sprintf("blk.%d.%s.weight", l, kind))
		}
	}
	order = append(order, "output_norm.weight")
	for _, name := range order {
		if err := place(name); err != nil {
			return nil, nil, 0, err
		}
	}
	off += 2 * int64(c.Context) * int64(c.HeadDim/2) * 4 // freq_cis_real, freq_cis_imag: unused by run.c
	if !c.TiedEmbeddings {
		if err := place("output.weight"); err != nil {
			return nil, nil, 0, err
		}
	}
	return header, offsets, off, nil
}

// WriteLlama2C writes m as a llama2.c checkpoint (see Llama2CLayout).
func WriteLlama2C(w io.Writer, m *model.Model) error {
	header, offsets, size, err := Llama2CLayout(m)
	if err != nil {
		return err
	}
	type part struct {
		off  int64
		data []byte
	}
	parts := make([]part, 0, len(offsets))
	for name, off := range offsets {
		parts = append(parts, part{off, m.Tensors[name].Data})
	}
	for i := 1; i < len(parts); i++ { // insertion sort by offset
		for j := i; j > 0 && parts[j].off < parts[j-1].off; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.Write(header)
	pos := int64(len(header))
	zeros := make([]byte, 1<<16)
	pad := func(to int64) {
		for pos < to {
			n := min(int64(len(zeros)), to-pos)
			bw.Write(zeros[:n])
			pos += n
		}
	}
	for _, p := range parts {
		pad(p.off)
		bw.Write(p.data)
		pos += int64(len(p.data))
	}
	pad(size)
	return bw.Flush()
}

// WriteLlama2CTokenizer writes llama2.c's tokenizer.bin for a vocabulary
// of exactly vocab tokens: the longest token's length (int32), then per
// token its score (float32), length (int32) and bytes. Pieces are
// transformed as llama2.c's exporter does ('▁' becomes a space, BOS and EOS
// become "\n<s>\n" and "\n</s>\n"). Without tokens, tok is replaced by a
// byte-level vocabulary in SentencePiece's layout (<unk>, <s>, </s>, the
// 256 byte tokens <0x00>..<0xFF>, then "tokN" fillers), which run.c can
// encode and decode.
func WriteLlama2CTokenizer(w io.Writer, tok *model.TokenizerSpec, vocab int) error {
	pieces, scores := tok.Tokens, tok.Scores
	bos, eos := tok.BOS, tok.EOS
	if len(pieces) == 0 {
		if vocab < 3+256 {
			return fmt.Errorf("a byte-level vocabulary needs at least 259 tokens, have %d: %w", vocab, model.ErrUnsupported)
		}
		pieces = []string{"<unk>", "<s>", "</s>"}
		for b := 0; b < 256; b++ {
			pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
		}
		for i := len(pieces); i < vocab; i++ {
			pieces = append(pieces, fmt.Sprintf("tok%d", i))
		}
		scores, bos, eos = nil, 1, 2
	}
	if len(pieces) != vocab {
		return fmt.Errorf("tokenizer has %d tokens, the model %d: %w", len(pieces), vocab, model.ErrFormat)
	}
	out := make([]string, len(pieces))
	longest := 0
	for i, p := range pieces {
		switch i {
		case bos:
			p = "\n<s>\n"
		case eos:
			p = "\n</s>\n"
		}
		out[i] = strings.ReplaceAll(p, "▁", " ")
		longest = max(longest, len(out[i]))
	}
	bw := bufio.NewWriter(w)
	le := binary.LittleEndian
	var b [4]byte
	le.PutUint32(b[:], uint32(longest))
	bw.Write(b[:])
	for i, p := range out {
		var s float32
		if i < len(scores) {
			s = scores[i]
		} else if len(scores) == 0 {
			s = -float32(i) // prefer earlier (shorter) pieces when merging
		}
		le.PutUint32(b[:], math.Float32bits(s))
		bw.Write(b[:])
		le.PutUint32(b[:], uint32(len(p)))
		bw.Write(b[:])
		bw.WriteString(p)
	}
	return bw.Flush()
}
