package arch

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/conformance"
	"github.com/loomllm/loom/runtime/quant"
)

// TestGGMLQuantizedFile runs a model whose matrices ggml quantized, one
// GGUF type each (testdata/README.md). Against the same model with every
// matrix replaced by the F32 values the backend holds (dequantized,
// bitwise ggml's own values, see runtime/quant's TestGGMLVectors, and
// for types the backend lacks requantized to Q8_0 first, or for Q3_K
// converted to Q6_K where the backend has it, which changes nothing), the
// logits
// agree to rounding; against the plain dequantized model they differ by
// the requantization alone. On the CPU with exact activations, and on a
// backend with only the GPU's weight types.
func TestGGMLQuantizedFile(t *testing.T) {
	q, err := gguf.Load("testdata/ggml-mix.gguf")
	require.NoError(t, err)
	types := map[backend.DType]int{}
	for _, tk := range q.Tensors {
		types[tk.DType]++
	}
	require.Len(t, types, 13, "f32 and the twelve quantized types: %v", types)
	// held returns q with each matrix as the F32 values a backend holds
	// that multiplies by the types of supported.
	held := func(supported func(backend.DType) bool) *model.Model {
		m := *q
		m.Tensors = map[string]*model.Tensor{}
		for name, tk := range q.Tensors {
			f := make([]float32, tk.Rows*tk.Cols)
			require.NoError(t, quant.Dequantize(tk.DType, f, tk.Data), name)
			if !supported(tk.DType) && !(tk.DType == backend.Q3_K && supported(backend.Q6_K)) { // Q3_K → Q6_K is exact
				q8 := make([]byte, len(f)/32*34)
				if !quant.ExactQ8_0(tk.DType, q8, tk.Data) {
					quant.QuantizeQ8_0(q8, f)
				}
				quant.DequantizeQ8_0(f, q8)
			}
			m.Tensors[name] = &model.Tensor{Name: name, DType: backend.F32, Rows: tk.Rows, Cols: tk.Cols, Data: quant.F32Bytes(f)}
		}
		return &m
	}
	all := func(backend.DType) bool { return true }

	tokens := []int32{1, 17, 200, 3, 99, 255, 0, 42}
	views := []struct {
		name string
		view func(*cpu.Backend) backend.Backend // the backend as the model sees it
	}{
		{"cpu", func(b *cpu.Backend) backend.Backend { return b }},
		{"gpu types", func(b *cpu.Backend) backend.Backend { return gpuWeights{b} }},
		// A backend with Q6_K but not Q3_K holds Q3_K as Q6_K (exactly).
		{"gpu types and q6_k", func(b *cpu.Backend) backend.Backend { return gpuWeightsQ6{b} }},
	}
	run := func(desc *model.Model, view func(*cpu.Backend) backend.Backend) [][]float32 {
		cb := cpu.New(cpu.Options{ExactQuant: true}) // no 8-bit activations: the weights alone
		defer cb.Close()
		be := view(cb)
		m, err := New(be, desc, Options{MaxRows: 8, MaxOut: 8})
		require.NoError(t, err)
		defer m.Close()
		return newRunner(t, be, m, len(tokens)).step(tokens)
	}
	exact := run(held(all), views[0].view)
	for _, v := range views {
		cb := cpu.New(cpu.Options{})
		want := run(held(v.view(cb).SupportsWeights), views[0].view)
		cb.Close()
		got := run(q, v.view)
		for p := range tokens {
			require.Less(t, conformance.RelErr(got[p], want[p]), 1e-5, "%s: position %d", v.name, p)
			t.Logf("%s: position %d: %.2e from the weights as held, %.2e from the dequantized file",
				v.name, p, conformance.RelErr(got[p], want[p]), conformance.RelErr(got[p], exact[p]))
		}
	}
}

// gpuWeightsQ6 is gpuWeights with Q6_K.
type gpuWeightsQ6 struct{ *cpu.Backend }

func (b gpuWeightsQ6) SupportsWeights(dt backend.DType) bool {
	return dt == backend.Q6_K || gpuWeights(b).SupportsWeights(dt)
}

// gpuWeights is the CPU backend with only the weight types the GPU
// backend multiplies by.
type gpuWeights struct{ *cpu.Backend }

func (b gpuWeights) SupportsWeights(dt backend.DType) bool {
	switch dt {
	case backend.F32, backend.F16, backend.BF16, backend.Q8_0, backend.Q4_0:
		return true
	}
	return false
}
