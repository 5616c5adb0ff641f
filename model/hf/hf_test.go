package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/safetensors"
	"github.com/loomllm/loom/model/synth"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/quant"
)

func tiny(t *testing.T, preset string, dt backend.DType, seed uint64) *model.Model {
	cfg, err := synth.Preset(preset)
	require.NoError(t, err)
	m, err := synth.New(cfg, dt, model.TokenizerSpec{}, seed)
	require.NoError(t, err)
	return m
}

func writeGGUF(t *testing.T, m *model.Model) *model.Model {
	path := filepath.Join(t.TempDir(), "m.gguf")
	fd, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, gguf.WriteModel(fd, m))
	require.NoError(t, fd.Close())
	got, err := gguf.Load(path)
	require.NoError(t, err)
	t.Cleanup(func() { got.Close() })
	return got
}

func writeHF(t *testing.T, m *model.Model) (string, *model.Model) {
	dir := filepath.Join(t.TempDir(), "model")
	require.NoError(t, Write(dir, m))
	got, err := Load(dir)
	require.NoError(t, err)
	t.Cleanup(func() { got.Close() })
	return dir, got
}

// TestLlamaBothWays writes one synthetic llama as GGUF and as a Hugging
// Face directory: the HF loader's description differs only by RopeNeoX and
// the Q/K row order, and converting it back to GGUF gives the original
// tensors bit for bit.
func TestLlamaBothWays(t *testing.T) {
	for _, dt := range []backend.DType{backend.F32, backend.BF16} {
		m := tiny(t, "tiny", dt, 5)
		fromGGUF := writeGGUF(t, m)
		_, fromHF := writeHF(t, m)
		require.False(t, fromGGUF.Config.RopeNeoX)
		require.True(t, fromHF.Config.RopeNeoX)
		want := m.Config
		want.RopeNeoX, want.Name = true, "model"
		require.Equal(t, want, fromHF.Config)
		for name, g := range fromGGUF.Tensors {
			h := fromHF.Tensors[name]
			require.NotNil(t, h, name)
			require.Equal(t, [3]int{int(g.DType), g.Rows, g.Cols}, [3]int{int(h.DType), h.Rows, h.Cols}, name)
			_, rest, _ := splitLayer(name, "blk.")
			if rest == "attn_q.weight" || rest == "attn_k.weight" {
				heads := m.Config.Heads
				if rest == "attn_k.weight" {
					heads = m.Config.KVHeads
				}
				neox, err := gguf.PermuteQK(g, heads, true)
				require.NoError(t, err)
				require.Equal(t, neox, h.Data, name)
				require.NotEqual(t, g.Data, h.Data, name)
				continue
			}
			require.True(t, bytes.Equal(g.Data, h.Data), name)
		}
		back := writeGGUF(t, fromHF)
		for name, w := range m.Tensors {
			require.True(t, bytes.Equal(w.Data, back.Tensors[name].Data), "%v %s after HF→GGUF", dt, name)
		}
	}
}

// TestQwen3BothWays: a Qwen3 model (per-head Q/K norm, head size not
// dim/heads) written as GGUF (general.architecture qwen3, Q/K rows as
// stored) and as a Hugging Face directory (model_type qwen3) comes back
// with the same hyperparameters and bitwise the same tensors both ways.
func TestQwen3BothWays(t *testing.T) {
	m := tiny(t, "tiny-qwen3", backend.BF16, 3)
	require.NotNil(t, m.Tensors["blk.1.attn_k_norm.weight"])
	fromGGUF := writeGGUF(t, m)
	dir, fromHF := writeHF(t, m)
	raw, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	require.Contains(t, string(raw), `"model_type": "qwen3"`)
	require.Contains(t, string(raw), `"Qwen3ForCausalLM"`)
	want := m.Config
	require.Equal(t, want, fromGGUF.Config)
	want.Name = "model"
	require.Equal(t, want, fromHF.Config)
	for _, got := range []*model.Model{fromGGUF, fromHF, writeGGUF(t, fromHF)} {
		require.Equal(t, len(m.Tensors), len(got.Tensors))
		for name, w := range m.Tensors {
			require.True(t, bytes.Equal(w.Data, got.Tensors[name].Data), name)
		}
	}
	f, err := gguf.Open(fromGGUF.Path)
	require.NoError(t, err)
	defer f.Close()
	arch, err := f.String("general.architecture")
	require.NoError(t, err)
	require.Equal(t, "qwen3", arch)
}

// TestRopeLayoutsAgree checks the claim behind RopeNeoX: attention scores
// computed from the GGUF description with interleaved RoPE equal those
// from the HF description with NeoX RoPE, for every head and position pair.
func TestRopeLayoutsAgree(t *testing.T) {
	m := tiny(t, "tiny", backend.F32, 9)
	g := writeGGUF(t, m)
	_, h := writeHF(t, m)
	c := m.Config
	hd := c.HeadDim
	x := make([]float32, c.Dim)
	y := make([]float32, c.Dim)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
		y[i] = float32(math.Cos(float64(3 * i)))
	}
	scores := func(mm *model.Model, neox bool, p1, p2 int) []float64 {
		q := matvec(quant.BytesF32(mm.Tensors["blk.1.attn_q.weight"].Data), x, c.Heads*hd)
		k := matvec(quant.BytesF32(mm.Tensors["blk.1.attn_k.weight"].Data), y, c.KVHeads*hd)
		rope(q, p1, hd, c.RopeTheta, neox)
		rope(k, p2, hd, c.RopeTheta, neox)
		var out []float64
		for hq := 0; hq < c.Heads; hq++ {
			kv := hq / (c.Heads / c.KVHeads)
			var s float64
			for i := 0; i < hd; i++ {
				s += float64(q[hq*hd+i]) * float64(k[kv*hd+i])
			}
			out = append(out, s)
		}
		return out
	}
	for _, pp := range [][2]int{{0, 0}, {5, 2}, {17, 17}, {100, 3}} {
		a := scores(g, g.Config.RopeNeoX, pp[0], pp[1])
		b := scores(h, h.Config.RopeNeoX, pp[0], pp[1])
		for i := range a {
			require.InDelta(t, a[i], b[i], 1e-4*(1+math.Abs(a[i])), "head %d positions %v", i, pp)
		}
		// The wrong layout gives different scores, so the check can fail.
		wrong := scores(h, false, pp[0], pp[1])
		if pp[0] != pp[1] {
			require.NotEqual(t, a, wrong)
		}
	}
}

func matvec(w, x []float32, rows int) []float32 {
	out := make([]float32, rows)
	for o := range out {
		for i, v := range x {
			out[o] += w[o*len(x)+i] * v
		}
	}
	return out
}

// rope follows the backend contract's RoPE loop.
func rope(x []float32, pos, hd int, theta float64, neox bool) {
	half := hd / 2
	for h := 0; h < len(x)/hd; h++ {
		for i := 0; i < half; i++ {
			ang := float64(pos) * math.Pow(theta, -float64(2*i)/float64(hd))
			c, s := float32(math.Cos(ang)), float32(math.Sin(ang))
			a, b := h*hd+2*i, h*hd+2*i+1
			if neox {
				a, b = h*hd+i, h*hd+i+half
			}
			xa, xb := x[a], x[b]
			x[a], x[b] = xa*c-xb*s, xa*s+xb*c
		}
	}
}

func TestGPT2RoundTrip(t *testing.T) {
	m := tiny(t, "tiny-gpt2", backend.F16, 4)
	dir, got := writeHF(t, m)
	want := m.Config
	want.Name = "model"
	require.Equal(t, want, got.Config)
	for name, w := range m.Tensors {
		require.True(t, bytes.Equal(w.Data, got.Tensors[name].Data), name)
	}
	// Conv1D weights are stored transposed, as GPT2LMHeadModel does.
	st, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	require.NoError(t, err)
	defer st.Close()
	ti, ok := st.Tensor("transformer.h.0.mlp.c_fc.weight")
	require.True(t, ok)
	require.Equal(t, []int64{64, 256}, ti.Shape)
	_, ok = st.Tensor("lm_head.weight")
	require.False(t, ok, "tied output is not stored")
}

// TestShardedWidened loads a directory written by hand: two shards with an
// index, BF16 norms (widened to F32), names without the GPT-2 prefix.
func TestShardedWidened(t *testing.T) {
	m := tiny(t, "tiny", backend.BF16, 8)
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref")
	require.NoError(t, Write(ref, m))
	st, err := safetensors.Open(filepath.Join(ref, WeightsFile))
	require.NoError(t, err)
	defer st.Close()
	shards := [2][]safetensors.Tensor{}
	index := map[string]string{}
	for i, ti := range st.Tensors {
		data := st.Data(&st.Tensors[i])
		if ti.DType == "F32" { // store norms as BF16 as HF checkpoints do
			v := quant.BytesF32Unaligned(data) // a copy: the mapping is read-only
			for j := range v {
				v[j] = quant.BF16ToF32(quant.F32ToBF16(v[j]))
			}
			b := make([]byte, len(v)*2)
			quant.EncodeBF16(b, v)
			ti.DType, data = "BF16", b
		}
		s := i % 2
		shards[s] = append(shards[s], safetensors.Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Data: data})
		index[ti.Name] = []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[s]
	}
	sharded := filepath.Join(dir, "sharded")
	require.NoError(t, os.MkdirAll(sharded, 0o755))
	for s, ts := range shards {
		fd, err := os.Create(filepath.Join(sharded, []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[s]))
		require.NoError(t, err)
		require.NoError(t, safetensors.Write(fd, ts, nil))
		require.NoError(t, fd.Close())
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": index})
	require.NoError(t, os.WriteFile(filepath.Join(sharded, IndexFile), idx, 0o644))
	cfg, err := os.ReadFile(filepath.Join(ref, ConfigFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(sharded, ConfigFile), cfg, 0o644))

	got, err := Load(sharded)
	require.NoError(t, err)
	defer got.Close()
	want, err := Load(ref)
	require.NoError(t, err)
	defer want.Close()
	for name, w := range want.Tensors {
		g := got.Tensors[name]
		require.Equal(t, w.DType, g.DType, name)
		if w.Rows == 1 {
			require.Equal(t, backend.F32, g.DType, "%s widened", name)
			require.InDeltaSlice(t, quant.BytesF32(w.Data), quant.BytesF32(g.Data), 1e-2, name)
			continue
		}
		require.Equal(t, w.Data, g.Data, name)
	}
}

func TestTokenizerFiles(t *testing.T) {
	m := tiny(t, "tiny", backend.F32, 1)
	dir := filepath.Join(t.TempDir(), "m")
	require.NoError(t, Write(dir, m))
	vocab := map[string]int{}
	for i := 0; i < 509; i++ {
		vocab[string(rune('A'+i))] = i
	}
	tj := map[string]any{
		"added_tokens": []map[string]any{
			{"id": 509, "content": "<|begin_of_text|>", "special": true},
			{"id": 510, "content": "<|end_of_text|>", "special": true},
			{"id": 511, "content": "<|eot_id|>", "special": true},
		},
		"pre_tokenizer":  map[string]any{"type": "Sequence", "pretokenizers": []any{map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `\p{N}{1,3}`}}}},
		"post_processor": map[string]any{"type": "TemplateProcessing", "single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>"}}}},
		"model":          map[string]any{"type": "BPE", "vocab": vocab, "merges": []any{"A B", []string{"C", "D"}}},
	}
	raw, _ := json.Marshal(tj)
	require.NoError(t, os.WriteFile(filepath.Join(dir, TokenizerFile), raw, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, TokenizerConfigFile),
		[]byte(`{"chat_template": "{{ messages }}", "bos_token": {"content": "<|begin_of_text|>"}}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, GenerationConfigFile),
		[]byte(`{"bos_token_id": 509, "eos_token_id": [510, 511]}`), 0o644))
	got, err := Load(dir)
	require.NoError(t, err)
	defer got.Close()
	tok := got.Tokenizer
	require.Equal(t, raw, tok.HFJSON)
	require.Equal(t, "gpt2", tok.Model)
	require.Equal(t, "llama-bpe", tok.Pre)
	require.Len(t, tok.Tokens, 512)
	require.Equal(t, []string{"A B", "C D"}, tok.Merges)
	require.Equal(t, int32(3), tok.Types[511])
	require.Equal(t, int32(1), tok.Types[0])
	require.Equal(t, [3]int{509, 510, 511}, [3]int{tok.BOS, tok.EOS, tok.EOT})
	require.True(t, tok.AddBOS, "the post-processor adds BOS")
	require.Equal(t, "{{ messages }}", tok.ChatTemplate)
}

func TestBadDirectories(t *testing.T) {
	m := tiny(t, "tiny", backend.F32, 2)
	good := filepath.Join(t.TempDir(), "good")
	require.NoError(t, Write(good, m))
	cfg, err := os.ReadFile(filepath.Join(good, ConfigFile))
	require.NoError(t, err)
	weights, err := os.ReadFile(filepath.Join(good, WeightsFile))
	require.NoError(t, err)
	edit := func(f func(c map[string]any)) []byte {
		var c map[string]any
		require.NoError(t, json.Unmarshal(cfg, &c))
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	cases := []struct {
		name  string
		files map[string][]byte
		want  error
		msg   string
	}{
		{"no config", map[string][]byte{WeightsFile: weights}, os.ErrNotExist, ConfigFile},
		{"bad json", map[string][]byte{ConfigFile: []byte("{"), WeightsFile: weights}, model.ErrFormat, ConfigFile},
		{"missing field", map[string][]byte{ConfigFile: edit(func(c map[string]any) { delete(c, "hidden_size") }), WeightsFile: weights}, model.ErrMissing, `"hidden_size"`},
		{"zero field", map[string][]byte{ConfigFile: edit(func(c map[string]any) { c["num_hidden_layers"] = 0 }), WeightsFile: weights}, model.ErrFormat, `"num_hidden_layers" = 0`},
		{"model type", map[string][]byte{ConfigFile: edit(func(c map[string]any) { c["model_type"] = "mamba" }), WeightsFile: weights}, model.ErrUnsupported, `"mamba"`},
		{"activation", map[string][]byte{ConfigFile: edit(func(c map[string]any) { c["hidden_act"] = "gelu" }), WeightsFile: weights}, model.ErrUnsupported, `"gelu"`},
		{"rope scaling", map[string][]byte{ConfigFile: edit(func(c map[string]any) { c["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4} }), WeightsFile: weights}, model.ErrUnsupported, `"yarn"`},
		{"shape", map[string][]byte{ConfigFile: edit(func(c map[string]any) { c["intermediate_size"] = 128 }), WeightsFile: weights}, model.ErrFormat, `"blk.0.ffn_gate.weight" is 192×64, want 128×64`},
		{"heads", map[string][]byte{ConfigFile: edit(func(c map[string]any) { c["num_key_value_heads"] = 3 }), WeightsFile: weights}, model.ErrFormat, "not a multiple of 3"},
		{"no weights", map[string][]byte{ConfigFile: cfg}, model.ErrMissing, IndexFile},
		{"pickle", map[string][]byte{ConfigFile: cfg, "pytorch_model.bin": {1}}, model.ErrUnsupported, "pytorch_model.bin"},
		{"index escape", map[string][]byte{ConfigFile: cfg, IndexFile: []byte(`{"weight_map":{"a":"../model.safetensors"}}`)}, model.ErrFormat, `"../model.safetensors"`},
		{"index missing tensor", map[string][]byte{ConfigFile: cfg, "w.safetensors": weights, IndexFile: []byte(`{"weight_map":{"nope":"w.safetensors"}}`)}, model.ErrMissing, `"nope"`},
		{"bad weights", map[string][]byte{ConfigFile: cfg, WeightsFile: weights[:100]}, safetensors.ErrTruncated, WeightsFile},
		{"missing tensor", map[string][]byte{ConfigFile: cfg, WeightsFile: func() []byte {
			st, err := safetensors.Parse("w", weights)
			require.NoError(t, err)
			var ts []safetensors.Tensor
			for i, ti := range st.Tensors {
				if ti.Name != "model.layers.1.mlp.up_proj.weight" {
					ts = append(ts, safetensors.Tensor{Name: ti.Name, DType: ti.DType, Shape: ti.Shape, Data: st.Data(&st.Tensors[i])})
				}
			}
			var buf bytes.Buffer
			require.NoError(t, safetensors.Write(&buf, ts, nil))
			return buf.Bytes()
		}()}, model.ErrMissing, `"blk.1.ffn_up.weight"`},
		{"dtype", map[string][]byte{ConfigFile: cfg, WeightsFile: func() []byte {
			var buf bytes.Buffer
			require.NoError(t, safetensors.Write(&buf, []safetensors.Tensor{{Name: "model.norm.weight", DType: "I64", Shape: []int64{64}, Data: make([]byte, 512)}}, nil))
			return buf.Bytes()
		}()}, model.ErrUnsupported, "dtype I64"},
		{"token id overflow", map[string][]byte{ConfigFile: cfg, WeightsFile: weights, TokenizerFile: []byte(`{"model":{"type":"BPE","vocab":{"a":9223372036854775807}}}`)}, model.ErrFormat, "has id 9223372036854775807"},
		{"generation config", map[string][]byte{ConfigFile: cfg, WeightsFile: weights, TokenizerFile: []byte(`{"model":{"type":"BPE","vocab":{"a":0}}}`), GenerationConfigFile: []byte(`{"eos_token_id": "x"}`)}, model.ErrFormat, GenerationConfigFile},
		{"token ids", map[string][]byte{ConfigFile: cfg, WeightsFile: weights, TokenizerFile: []byte(`{"model":{"type":"BPE","vocab":{"a":99999999}}}`)}, model.ErrFormat, "has id 99999999 (1 tokens defined)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range c.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
			}
			_, err := Load(dir)
			require.ErrorIs(t, err, c.want)
			require.ErrorContains(t, err, dir)
			require.ErrorContains(t, err, c.msg)
		})
	}
}

func TestNames(t *testing.T) {
	cases := []struct{ arch, hf, gguf string }{
		{model.ArchLlama, "model.layers.12.self_attn.q_proj.weight", "blk.12.attn_q.weight"},
		{model.ArchLlama, "model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight"},
		{model.ArchLlama, "lm_head.weight", "output.weight"},
		{model.ArchGPT2, "transformer.h.3.attn.c_attn.bias", "blk.3.attn_qkv.bias"},
		{model.ArchGPT2, "transformer.wpe.weight", "position_embd.weight"},
	}
	for _, c := range cases {
		g, skip, ok := GGUFName(c.arch, c.hf)
		require.True(t, ok && !skip, c.hf)
		require.Equal(t, c.gguf, g)
		h, ok := HFName(c.arch, c.gguf)
		require.True(t, ok)
		require.Equal(t, c.hf, h)
	}
	g, _, ok := GGUFName(model.ArchGPT2, "h.3.ln_2.bias") // without the prefix
	require.True(t, ok)
	require.Equal(t, "blk.3.ffn_norm.bias", g)
	_, skip, _ := GGUFName(model.ArchLlama, "model.layers.1.self_attn.rotary_emb.inv_freq")
	require.True(t, skip)
	for _, bad := range []string{"model.layers.x.mlp.up_proj.weight", "model.layers.01.mlp.up_proj.weight", "model.layers.-1.mlp.up_proj.weight", "model.layers.1"} {
		_, _, ok := GGUFName(model.ArchLlama, bad)
		require.False(t, ok, bad)
	}
}

// TestPhi3Directory: a Hugging Face Phi-3 directory (model_type phi3,
// qkv_proj and gate_up_proj tensors, a sliding window) loads as the fused
// llama layout: attn_qkv holds the Q, K and V rows of the same model
// written unfused, ffn_up its gate then up rows.
func TestPhi3Directory(t *testing.T) {
	m := tiny(t, "tiny", backend.F32, 4)
	dir, plain := writeHF(t, m)
	st, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	require.NoError(t, err)
	defer st.Close()
	data := func(name string) []byte {
		info, ok := st.Tensor(name)
		require.True(t, ok, name)
		return st.Data(info)
	}
	var tensors []safetensors.Tensor
	for _, info := range st.Tensors {
		name := info.Name
		layer, rest, ok := splitLayer(name, "model.layers.")
		switch {
		case ok && rest == "self_attn.q_proj.weight":
			p := "model.layers." + layer + "."
			var qkv []byte
			rows := int64(0)
			for _, n := range []string{"q_proj", "k_proj", "v_proj"} {
				qkv = append(qkv, data(p+"self_attn."+n+".weight")...)
				i, _ := st.Tensor(p + "self_attn." + n + ".weight")
				rows += i.Shape[0]
			}
			tensors = append(tensors, safetensors.Tensor{Name: p + "self_attn.qkv_proj.weight", DType: info.DType, Shape: []int64{rows, info.Shape[1]}, Data: qkv})
		case ok && rest == "mlp.gate_proj.weight":
			p := "model.layers." + layer + "."
			gu := append(slices.Clone(data(p+"mlp.gate_proj.weight")), data(p+"mlp.up_proj.weight")...)
			tensors = append(tensors, safetensors.Tensor{Name: p + "mlp.gate_up_proj.weight", DType: info.DType, Shape: []int64{2 * info.Shape[0], info.Shape[1]}, Data: gu})
		case ok && (rest == "self_attn.k_proj.weight" || rest == "self_attn.v_proj.weight" || rest == "mlp.up_proj.weight"):
		default:
			tensors = append(tensors, safetensors.Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: data(name)})
		}
	}
	phi := filepath.Join(t.TempDir(), "phi3")
	require.NoError(t, os.MkdirAll(phi, 0o755))
	fd, err := os.Create(filepath.Join(phi, WeightsFile))
	require.NoError(t, err)
	require.NoError(t, safetensors.Write(fd, tensors, nil))
	require.NoError(t, fd.Close())
	var cfg map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &cfg))
	cfg["model_type"], cfg["architectures"], cfg["sliding_window"] = "phi3", []string{"Phi3ForCausalLM"}, 48
	raw, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(phi, ConfigFile), raw, 0o644))

	got, err := Load(phi)
	require.NoError(t, err)
	defer got.Close()
	require.True(t, got.Config.FusedWeights)
	require.Equal(t, 48, got.Config.SlidingWindow)
	for l := range m.Config.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		cat := func(names ...string) []byte {
			var b []byte
			for _, n := range names {
				b = append(b, plain.Tensors[p+n].Data...)
			}
			return b
		}
		require.Equal(t, cat("attn_q.weight", "attn_k.weight", "attn_v.weight"), got.Tensors[p+"attn_qkv.weight"].Data)
		require.Equal(t, cat("ffn_gate.weight", "ffn_up.weight"), got.Tensors[p+"ffn_up.weight"].Data)
		require.Nil(t, got.Tensors[p+"attn_q.weight"])
	}
	require.ErrorIs(t, Write(filepath.Join(t.TempDir(), "back"), got), model.ErrUnsupported)

	// Qwen2's use_sliding_window false leaves its sliding_window unused.
	cfg["model_type"], cfg["use_sliding_window"] = "qwen2", false
	var c config
	raw, _ = json.Marshal(cfg)
	require.NoError(t, json.Unmarshal(raw, &c))
	mc, err := c.toConfig(phi, "x")
	require.NoError(t, err)
	require.Zero(t, mc.SlidingWindow)
}
