package main

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/loomllm/loom/cpu"
	"github.com/loomllm/loom/gpu"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/arch"
	"github.com/loomllm/loom/model/loader"
	"github.com/loomllm/loom/model/tokenizer"
	"github.com/loomllm/loom/runtime/backend"
	"github.com/loomllm/loom/runtime/generate"
	"github.com/loomllm/loom/runtime/kvcache"
	"github.com/loomllm/loom/runtime/quant"
	"github.com/loomllm/loom/runtime/sample"
)

func init() {
	register(command{
		name:    "verify",
		summary: "compare a model's activations on two backends or weight types",
		run:     runVerify,
	})
}

// errDiverged marks a comparison beyond its tolerance (exit status 1).
var errDiverged = errors.New("outputs differ beyond the tolerance")

// verifyModes are the comparisons loom verify knows: the reference is
// always the CPU backend with its SIMD kernels and the weights as stored.
var verifyModes = map[string]struct {
	desc string
	tol  float64
}{
	"generic": {"CPU plain-Go kernels", 1e-4},
	"q8_0":    {"CPU with weights converted to Q8_0", 8e-2},
	"f16":     {"CPU with weights converted to F16", 2e-2},
	"cuda":    {"CUDA device 0", 2e-2},
}

func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("verify", stderr)
	path := fs.String("model", "", "model `file` (GGUF) or Hugging Face directory")
	prompt := fs.String("prompt", "Once upon a time", "the prompt `text`")
	against := fs.String("against", "generic", "what to compare with the CPU reference: generic, q8_0, f16 or cuda")
	tokens := fs.Int("tokens", 32, "greedy decode steps after the prompt")
	tol := fs.Float64("tol", 0, "largest relative difference of the logits that passes (0: the mode's default)")
	threads := fs.Int("threads", 0, "CPU threads (0: all cores)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loom verify --model FILE [--against generic|q8_0|f16|cuda] [--prompt TEXT] [--tokens N] [--tol X]")
		fmt.Fprintln(stderr, "\nRuns the prompt, then greedy decoding, through the CPU reference (SIMD kernels, weights as")
		fmt.Fprintln(stderr, "stored) and through the configuration named by --against, feeding both the reference's tokens.")
		fmt.Fprintln(stderr, "Reports the largest relative difference of every layer's output and of the logits, and the")
		fmt.Fprintln(stderr, "first step where the greedy tokens differ. Exits 1 when the logits differ beyond --tol.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	mode, ok := verifyModes[*against]
	switch {
	case *path == "":
		return fmt.Errorf("%w: --model is required", errUsage)
	case !ok:
		return fmt.Errorf("%w: --against %q (want generic, q8_0, f16 or cuda)", errUsage, *against)
	case *tokens < 0 || *tokens > 4096 || *tol < 0 || *threads < 0:
		return fmt.Errorf("%w: --tokens, --tol and --threads must be in range", errUsage)
	case fs.NArg() > 0:
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *tol == 0 {
		*tol = mode.tol
	}

	desc, err := loader.Open(*path)
	if err != nil {
		return err
	}
	defer desc.Close()
	var ids []int32
	piece := func(id int32) string { return fmt.Sprint(id) }
	if tok, err := tokenizer.New(&desc.Tokenizer); err == nil {
		ids = tok.Encode(*prompt, tokenizer.EncodeOptions{AddSpecial: true})
		if len(ids) == 0 {
			ids = []int32{max(tok.BOS(), 0)}
		}
		piece = tok.Piece
	} else { // numbers do not need words: a fixed prompt of ids
		fmt.Fprintf(stderr, "loom verify: %v; using token ids 1..8 as the prompt\n", err)
		for i := range int32(8) {
			ids = append(ids, (1+i)%int32(desc.Config.VocabSize))
		}
	}
	ids = ids[:min(len(ids), 256)]

	ref := cpu.New(cpu.Options{Threads: *threads})
	defer ref.Close()
	a, err := newProbe(ref, desc, arch.Options{}, len(ids), *tokens)
	if err != nil {
		return err
	}
	defer a.close()
	var be backend.Backend
	opt := arch.Options{}
	switch *against {
	case "generic":
		be = cpu.New(cpu.Options{Threads: *threads, Generic: true})
	case "q8_0":
		be, opt.Convert = cpu.New(cpu.Options{Threads: *threads}), backend.Q8_0
	case "f16":
		be, opt.Convert = cpu.New(cpu.Options{Threads: *threads}), backend.F16
	case "cuda":
		g, err := gpu.New(gpu.Options{})
		if err != nil {
			return err
		}
		be = g
	}
	defer be.Close()
	b, err := newProbe(be, desc, opt, len(ids), *tokens)
	if err != nil {
		return err
	}
	defer b.close()

	fmt.Fprintf(stdout, "model %s (%s, %d layers), prompt %d tokens, %d decode steps\n", *path, desc.Config.Arch, desc.Config.Layers, len(ids), *tokens)
	fmt.Fprintf(stdout, "reference: %s\nagainst:   %s: %s\n\n", ref.Name(), mode.desc, be.Name())

	// Prefill, then decode with the reference's greedy tokens fed to both.
	diverged := -1
	var worstLogits float64
	next := ids
	for step := 0; step <= *tokens; step++ {
		la, err := a.step(next)
		if err != nil {
			return fmt.Errorf("reference: %w", err)
		}
		lb, err := b.step(next)
		if err != nil {
			return fmt.Errorf("%s: %w", *against, err)
		}
		worstLogits = max(worstLogits, relDiff(la, lb))
		ta, tb := sample.ArgMax(la), sample.ArgMax(lb)
		if diverged < 0 && ta != tb {
			diverged = step
			fmt.Fprintf(stdout, "greedy tokens differ at decode step %d: reference %d %q, %s %d %q\n",
				step, ta, piece(ta), *against, tb, piece(tb))
		}
		if int(ta) >= desc.Config.VocabSize || a.seq.Len() >= a.e.Context() {
			break
		}
		next = []int32{ta}
	}

	fmt.Fprintf(stdout, "%-8s %s\n", "layer", "largest relative difference (all positions)")
	for l := range a.layers {
		name := fmt.Sprint(l)
		if l == len(a.layers)-1 {
			name = "final"
		}
		fmt.Fprintf(stdout, "%-8s %.3g\n", name, relDiff(a.layers[l], b.layers[l]))
	}
	fmt.Fprintf(stdout, "%-8s %.3g (tolerance %.3g)\n", "logits", worstLogits, *tol)
	if diverged < 0 {
		fmt.Fprintf(stdout, "greedy tokens identical for all %d positions\n", *tokens+1)
	}
	if !(worstLogits <= *tol) {
		return fmt.Errorf("loom verify: %w: logits %.3g > %.3g", errDiverged, worstLogits, *tol)
	}
	fmt.Fprintln(stdout, "PASS")
	return nil
}

// probe runs one configuration, recording every layer's output.
type probe struct {
	be     backend.Backend
	m      arch.Model
	e      *generate.Engine
	seq    *kvcache.Seq
	layers [][]float32 // per layer (and the final norm): outputs appended step by step
	jobs   []generate.Job
}

func newProbe(be backend.Backend, desc *model.Model, opt arch.Options, promptLen, tokens int) (*probe, error) {
	p := &probe{be: be}
	opt.MaxRows, opt.MaxOut = promptLen, 1
	p.layers = make([][]float32, desc.Config.Layers+1)
	opt.Trace = func(layer int, x backend.Tensor) {
		buf := make([]byte, x.Rows()*x.RowBytes())
		if err := be.Download(buf, x); err == nil {
			p.layers[layer] = append(p.layers[layer], quant.BytesF32(buf)...)
		}
	}
	m, err := arch.New(be, desc, opt)
	if err != nil {
		return nil, err
	}
	p.m = m
	e, err := generate.NewEngine(be, m, generate.EngineOptions{Context: promptLen + tokens + 1, NoGraphs: true})
	if err != nil {
		m.Close()
		return nil, err
	}
	p.e, p.seq = e, e.Cache().NewSeq()
	p.jobs = make([]generate.Job, 1)
	return p, nil
}

// step feeds tokens and returns the logits of the last one.
func (p *probe) step(tokens []int32) ([]float32, error) {
	p.jobs[0] = generate.Job{Seq: p.seq, Tokens: tokens, Want: generate.WantLogits}
	if err := p.e.Step(p.jobs); err != nil {
		return nil, err
	}
	return append([]float32(nil), p.jobs[0].Logits...), nil
}

func (p *probe) close() {
	p.seq.Free()
	p.e.Close()
	p.m.Close()
}

// relDiff is ‖a−b‖/‖a‖ over all elements (+Inf for NaN or a length
// mismatch).
func relDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d, n float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		d += (x - y) * (x - y)
		n += x * x
	}
	r := math.Sqrt(d / max(n, 1e-30))
	if math.IsNaN(r) {
		return math.Inf(1)
	}
	return r
}
