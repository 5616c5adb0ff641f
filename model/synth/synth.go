// Package synth makes synthetic models: the shapes of real models (named
// presets, or any hyperparameters) filled with seeded random weights, for
// benchmarks and for checking loom against other implementations without
// downloading weights.
//
// New builds a model in memory, all tensors in one buffer filled in
// parallel (an 8B model takes seconds, not a 16 GB file); Describe and
// Fill let a caller place the tensors elsewhere, such as a memory-mapped
// output file. The weights depend only on the seed and the tensor's name
// and shape, never on the number of threads.
//
// Weight scales are chosen so greedy decoding follows the context instead
// of settling on one token (measured with a reference forward pass, see
// TestGreedyNotDegenerate). Weights are uniform; matrices have standard
// deviation 1/sqrt(cols) (fan-in), so each layer's output has about unit
// scale, except:
//
//   - the query projection is 8× larger, so attention is sharp rather than
//     an average that drifts slowly from position to position;
//   - the token embedding is 3× larger when untied, so the current token
//     steers the residual stream, but 0.5× when tied, where a large
//     embedding makes each token its own best successor;
//   - the final norm's weights are ±3 (±6 when tied) ± 0.1 with random
//     signs, so logits have a standard deviation near 3, and with tied
//     embeddings the output no longer favours the input token.
//
// Other norm weights are 1 ± 0.1, biases ± 0.02; vectors are always F32,
// as in GGUF files. F16 and BF16 weights are the F32 weights rounded, so
// one seed gives the same model in each float type; Q8_0 weights are drawn
// directly as quants (uniform in [-127, 127]) with a per-block scale, Q4_K
// and Q5_K weights as quants uniform in 0..15 or 0..31 with one scale and
// min (matrices whose
// rows are not whole 256-element blocks are Q8_0 instead, or F32 when not
// whole 32-element ones either). Q/K rows are in
// GGUF's interleaved RoPE layout (RopeNeoX false), except in the Qwen3
// and Phi-3 presets, which use NeoX RoPE as those files do (Phi-3's with
// its Q/K/V and gate/up tensors fused).
package synth

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

// llama returns a llama-architecture config.
func llama(v, d, f, l, h, kv, ctx int, eps float32, theta float64, tied bool) model.Config {
	return model.Config{Arch: model.ArchLlama, VocabSize: v, Dim: d, Hidden: f, Layers: l, Heads: h, KVHeads: kv,
		HeadDim: d / h, Context: ctx, NormEps: eps, RopeTheta: theta, RopeDims: d / h, TiedEmbeddings: tied}
}

// qwen3 returns a Qwen3 config: head size given (not dim/heads), a
// per-head Q/K norm, NeoX RoPE with theta 1e6, epsilon 1e-6.
func qwen3(v, d, f, l, h, kv, hd, ctx int, tied bool) model.Config {
	return model.Config{Arch: model.ArchLlama, VocabSize: v, Dim: d, Hidden: f, Layers: l, Heads: h, KVHeads: kv,
		HeadDim: hd, Context: ctx, NormEps: 1e-6, RopeTheta: 1e6, RopeDims: hd, TiedEmbeddings: tied, RopeNeoX: true, QKNorm: true}
}

// phi3 returns a Phi-3 config: Q/K/V and gate/up fused, NeoX RoPE,
// a sliding window.
func phi3(v, d, f, l, h, ctx, window int) model.Config {
	c := llama(v, d, f, l, h, h, ctx, 1e-5, 10000, false)
	c.RopeNeoX, c.FusedWeights, c.SlidingWindow = true, true, window
	return c
}

// presets are the shapes of well-known models (their published configs).
var presets = map[string]model.Config{
	"llama3-8b":      llama(128256, 4096, 14336, 32, 32, 8, 8192, 1e-5, 500000, false),
	"llama2-7b":      llama(32000, 4096, 11008, 32, 32, 32, 4096, 1e-5, 10000, false),
	"tinyllama-1.1b": llama(32000, 2048, 5632, 22, 32, 4, 2048, 1e-5, 10000, false),
	"qwen2-0.5b":     llama(151936, 896, 4864, 24, 14, 2, 32768, 1e-6, 1000000, true),
	"stories15m":     llama(32000, 288, 768, 6, 6, 6, 256, 1e-5, 10000, true),
	"stories110m":    llama(32000, 768, 2048, 12, 12, 12, 1024, 1e-5, 10000, true),
	"tiny":           llama(512, 64, 192, 2, 4, 2, 128, 1e-5, 10000, false),
	"qwen3-0.6b":     qwen3(151936, 1024, 3072, 28, 16, 8, 128, 40960, true),
	"qwen3-8b":       qwen3(151936, 4096, 12288, 36, 32, 8, 128, 40960, false),
	"tiny-qwen3":     qwen3(512, 64, 128, 2, 4, 2, 32, 128, true),
	"phi3-mini":      phi3(32064, 3072, 8192, 32, 32, 4096, 2047),
	"tiny-phi3":      phi3(512, 64, 128, 2, 4, 128, 96),
	"gpt2-124m": {Arch: model.ArchGPT2, VocabSize: 50257, Dim: 768, Hidden: 3072, Layers: 12, Heads: 12,
		KVHeads: 12, HeadDim: 64, Context: 1024, NormEps: 1e-5, TiedEmbeddings: true},
	"tiny-gpt2": {Arch: model.ArchGPT2, VocabSize: 512, Dim: 64, Hidden: 256, Layers: 2, Heads: 4,
		KVHeads: 4, HeadDim: 16, Context: 128, NormEps: 1e-5, TiedEmbeddings: true},
}

// Presets lists the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns the hyperparameters of a named preset (see Presets). The
// Qwen2 preset has Qwen2's shape but no Q/K/V biases.
func Preset(name string) (model.Config, error) {
	c, ok := presets[name]
	if !ok {
		return c, fmt.Errorf("preset %q (have %s): %w", name, strings.Join(Presets(), ", "), model.ErrUnsupported)
	}
	c.Name = name
	return c, nil
}

// DTypes are the weight types synth can generate.
var DTypes = []backend.DType{backend.F32, backend.F16, backend.BF16, backend.Q8_0, backend.Q4_K, backend.Q5_K}

// Describe returns the description of a synthetic model: every tensor its
// architecture needs, matrices of type dt (K-quants where rows allow, see the
// package documentation) and vectors F32, with nil Data,
// and the tokenizer tok (which may be the zero TokenizerSpec). When tok has
// tokens, the vocabulary size is taken from it.
func Describe(cfg model.Config, dt backend.DType, tok model.TokenizerSpec) (*model.Model, error) {
	if !supported(dt) {
		return nil, fmt.Errorf("synth: weight type %v: %w", dt, model.ErrUnsupported)
	}
	if tok.Model == "" {
		tok = model.TokenizerSpec{BOS: -1, EOS: -1, EOT: -1, PAD: -1, UNK: -1}
	}
	if len(tok.Tokens) > 0 {
		cfg.VocabSize = len(tok.Tokens)
	}
	specs, err := gguf.Tensors(&cfg)
	if err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	m := &model.Model{Config: cfg, Tensors: map[string]*model.Tensor{}, Tokenizer: tok, Meta: map[string]any{},
		Path: "synth:" + cfg.Name}
	for _, s := range specs {
		if s.Optional {
			continue
		}
		t := &model.Tensor{Name: s.Name, DType: dt, Rows: s.Rows, Cols: s.Cols}
		if s.Rows == 1 {
			t.DType = backend.F32
		}
		if _, err := t.DType.RowBytes(t.Cols); err != nil && dt.BlockElems() == 256 {
			// Rows that are not whole 256-element blocks: Q8_0 where they
			// are whole 32-element ones, as llama.cpp's quantizer falls
			// back to a type the row fits.
			t.DType = backend.Q8_0
			if t.Cols%backend.Q8_0.BlockElems() != 0 {
				t.DType = backend.F32
			}
		}
		if _, err := t.DType.RowBytes(t.Cols); err != nil {
			return nil, fmt.Errorf("synth: tensor %q (%d×%d): %w", s.Name, s.Rows, s.Cols, err)
		}
		m.Tensors[s.Name] = t
	}
	return m, nil
}

func supported(dt backend.DType) bool {
	for _, d := range DTypes {
		if d == dt {
			return true
		}
	}
	return false
}

// Bytes is the size of t's data.
func Bytes(t *model.Tensor) int {
	rb, _ := t.DType.RowBytes(t.Cols)
	return rb * t.Rows
}

// align is the alignment of each tensor within New's buffer.
const align = 64

// New returns a synthetic model with all weights in one buffer, filled
// from seed in parallel.
func New(cfg model.Config, dt backend.DType, tok model.TokenizerSpec, seed uint64) (*model.Model, error) {
	m, err := Describe(cfg, dt, tok)
	if err != nil {
		return nil, err
	}
	names := Names(m)
	total := 0
	for _, n := range names {
		total += (Bytes(m.Tensors[n]) + align - 1) / align * align
	}
	buf := make([]byte, total)
	off := 0
	for _, n := range names {
		t := m.Tensors[n]
		t.Data = buf[off : off+Bytes(t) : off+Bytes(t)]
		off += (Bytes(t) + align - 1) / align * align
	}
	if err := Fill(m, seed); err != nil {
		return nil, err
	}
	return m, nil
}

// Names lists m's tensors in file order (as gguf writes them).
func Names(m *model.Model) []string {
	specs, _ := gguf.Tensors(&m.Config)
	var names []string
	for _, s := range specs {
		if _, ok := m.Tensors[s.Name]; ok {
			names = append(names, s.Name)
		}
	}
	return names
}

// chunkElems is the number of elements one task generates; chunks are
// whole rows, seeded by (seed, tensor, chunk), so the result does not
// depend on scheduling.
const chunkElems = 1 << 20

// segment is a range of rows drawn from one distribution: uniform in
// [center-half, center+half).
type segment struct {
	r0, r1       int
	half, center float32
	signs        bool // negate a random half of the values
}

// segments returns the distributions of a tensor's rows (see the package
// documentation for the choice of scales).
func segments(c *model.Config, name string, t *model.Tensor) []segment {
	fanIn := float32(math.Sqrt(3 / float64(t.Cols))) // standard deviation 1/sqrt(cols)
	all := func(half, center float32) []segment { return []segment{{0, t.Rows, half, center, false}} }
	switch {
	case name == "output_norm.weight":
		s := all(0.1, 3)
		if c.TiedEmbeddings {
			s = all(0.1, 6)
		}
		s[0].signs = true
		return s
	case strings.HasSuffix(name, "norm.weight"):
		return all(0.1, 1)
	case strings.HasSuffix(name, ".bias"):
		return all(0.02, 0)
	case name == "token_embd.weight":
		if c.TiedEmbeddings {
			return all(0.5*fanIn, 0)
		}
		return all(3*fanIn, 0)
	case strings.HasSuffix(name, ".attn_q.weight"):
		return all(8*fanIn, 0)
	case strings.HasSuffix(name, ".attn_qkv.weight") && t.Rows == 3*c.Dim:
		return []segment{{0, c.Dim, 8 * fanIn, 0, false}, {c.Dim, t.Rows, fanIn, 0, false}}
	}
	return all(fanIn, 0)
}

// Fill writes seeded random weights into every tensor's Data, which must
// have the tensor's size, using all CPUs.
func Fill(m *model.Model, seed uint64) error {
	type task struct {
		t      *model.Tensor
		r0, r1 int
		seed   uint64
		scale  float32
		center float32
		signs  bool
	}
	var tasks []task
	for _, name := range Names(m) {
		t := m.Tensors[name]
		if len(t.Data) != Bytes(t) {
			return fmt.Errorf("synth: tensor %q has %d bytes, want %d", name, len(t.Data), Bytes(t))
		}
		rows := max(1, chunkElems/t.Cols)
		ts := mix(seed ^ hashString(name))
		i := uint64(0)
		for _, s := range segments(&m.Config, name, t) {
			for r := s.r0; r < s.r1; r += rows {
				tasks = append(tasks, task{t, r, min(r+rows, s.r1), mix(ts + i), s.half, s.center, s.signs})
				i++
			}
		}
	}
	var wg sync.WaitGroup
	next := make(chan task)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				rb, _ := k.t.DType.RowBytes(k.t.Cols)
				dst := k.t.Data[k.r0*rb : k.r1*rb]
				n := (k.r1 - k.r0) * k.t.Cols
				switch k.t.DType {
				case backend.F32:
					v := quant.BytesF32(dst)
					uniform(v, k.seed, k.scale, k.center)
					if k.signs {
						for i := range v {
							if mix(k.seed^uint64(i))&1 == 1 {
								v[i] = -v[i]
							}
						}
					}
				case backend.Q8_0:
					randomQ8_0(dst, k.seed, k.scale)
				case backend.Q4_K:
					randomQ4_K(dst, k.seed, k.scale)
				case backend.Q5_K:
					randomQ5_K(dst, k.seed, k.scale)
				default: // F16, BF16: the F32 values, rounded
					h := unsafe.Slice((*uint16)(unsafe.Pointer(&dst[0])), n)
					if k.t.DType == backend.BF16 {
						uniformBF16(h, k.seed, k.scale, k.center)
					} else {
						uniformHalf(h, k.seed, k.scale, k.center, quant.F32ToF16)
					}
				}
			}
		}()
	}
	for _, k := range tasks {
		next <- k
	}
	close(next)
	wg.Wait()
	return nil
}

// randomQ8_0 fills Q8_0 blocks directly: scale d = half/127 (rounded to
// F16) and quants uniform in [-127, 127], so values are uniform in about
// [-half, half] without a float pass.
func randomQ8_0(dst []byte, seed uint64, half float32) {
	d := quant.F32ToF16(half / 127)
	s := seed
	for b := 0; b+34 <= len(dst); b += 34 {
		dst[b], dst[b+1] = byte(d), byte(d>>8)
		q := dst[b+2 : b+34]
		for i := 0; i < 32; i += 8 {
			s += 0x9e3779b97f4a7c15
			x := mix(s)
			for j := 0; j < 8; j++ {
				v := byte(x >> (8 * j))
				if v == 0x80 { // -128 is outside Q8_0's symmetric range
					v = 0x81
				}
				q[i+j] = v
			}
		}
	}
}

// randomQ4_K fills Q4_K blocks directly: every sub-block has scale and
// min 32, d = half/240 and dmin = 7.5·d (both rounded to F16), and the
// quants are uniform in 0..15, so values are d·32·(q − 7.5): sixteen
// levels spread evenly over about [-half, half].
func randomQ4_K(dst []byte, seed uint64, half float32) {
	d := quant.F32ToF16(half / 240)
	dmin := quant.F32ToF16(7.5 * quant.F16ToF32(d))
	s := seed
	for b := 0; b+144 <= len(dst); b += 144 {
		blk := dst[b : b+144]
		blk[0], blk[1], blk[2], blk[3] = byte(d), byte(d>>8), byte(dmin), byte(dmin>>8)
		// Scales and mins of 32 (0b100000): bytes 0-7 hold sub-blocks
		// 0-3's low 6 bits and 4-7's top two bits, bytes 8-11 the low
		// nibbles of 4-7 (zero).
		for i := 4; i < 12; i++ {
			blk[i] = 0xA0
		}
		clear(blk[12:16])
		for i := 16; i < 144; i += 8 {
			s += 0x9e3779b97f4a7c15
			x := mix(s)
			for j := range 8 {
				blk[i+j] = byte(x >> (8 * j))
			}
		}
	}
}

// randomQ5_K fills Q5_K blocks as randomQ4_K fills Q4_K ones, with
// 5-bit quants: scales and mins 32, d = half/496, dmin = 15.5·d, the
// quants (nibbles and fifth bits) uniform in 0..31, so values are
// d·32·(q − 15.5), 32 levels over about [-half, half].
func randomQ5_K(dst []byte, seed uint64, half float32) {
	d := quant.F32ToF16(half / 496)
	dmin := quant.F32ToF16(15.5 * quant.F16ToF32(d))
	s := seed
	for b := 0; b+176 <= len(dst); b += 176 {
		blk := dst[b : b+176]
		blk[0], blk[1], blk[2], blk[3] = byte(d), byte(d>>8), byte(dmin), byte(dmin>>8)
		for i := 4; i < 12; i++ {
			blk[i] = 0xA0 // scales and mins of 32, as randomQ4_K
		}
		clear(blk[12:16])
		for i := 16; i < 176; i += 8 {
			s += 0x9e3779b97f4a7c15
			x := mix(s)
			for j := range 8 {
				blk[i+j] = byte(x >> (8 * j))
			}
		}
	}
}

// uniform fills v with values uniform in [center-half, center+half) from a
// splitmix64 stream started at seed.
func uniform(v []float32, seed uint64, half, center float32) {
	s := seed
	k := half / (1 << 31)
	for i := 0; i+1 < len(v); i += 2 {
		s += 0x9e3779b97f4a7c15
		x := mix(s)
		v[i] = center + k*float32(int32(x))
		v[i+1] = center + k*float32(int32(x>>32))
	}
	if len(v)%2 == 1 {
		v[len(v)-1] = center + k*float32(int32(mix(s+0x9e3779b97f4a7c15)))
	}
}

// uniformBF16 is uniform rounded to bfloat16 (ties to even, as
// quant.F32ToBF16 rounds finite values), with the rounding inlined: the
// path that fills 8B-parameter benchmark models.
func uniformBF16(v []uint16, seed uint64, half, center float32) {
	s := seed
	k := half / (1 << 31)
	round := func(f float32) uint16 {
		b := math.Float32bits(f)
		return uint16((b + 0x7fff + (b>>16)&1) >> 16)
	}
	for i := 0; i+1 < len(v); i += 2 {
		s += 0x9e3779b97f4a7c15
		x := mix(s)
		v[i] = round(center + k*float32(int32(x)))
		v[i+1] = round(center + k*float32(int32(x>>32)))
	}
	if len(v)%2 == 1 {
		v[len(v)-1] = round(center + k*float32(int32(mix(s+0x9e3779b97f4a7c15))))
	}
}

// uniformHalf is uniform followed by conv on each value, in one pass.
func uniformHalf(v []uint16, seed uint64, half, center float32, conv func(float32) uint16) {
	s := seed
	k := half / (1 << 31)
	for i := 0; i+1 < len(v); i += 2 {
		s += 0x9e3779b97f4a7c15
		x := mix(s)
		v[i] = conv(center + k*float32(int32(x)))
		v[i+1] = conv(center + k*float32(int32(x>>32)))
	}
	if len(v)%2 == 1 {
		v[len(v)-1] = conv(center + k*float32(int32(mix(s+0x9e3779b97f4a7c15))))
	}
}

// mix is splitmix64's output function.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// hashString is FNV-1a.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}
