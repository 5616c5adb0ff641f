package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/hf"
	"github.com/loomllm/loom/model/synth"
	"github.com/loomllm/loom/runtime/backend"
)

func init() {
	register(command{
		name:    "gen",
		summary: "write a synthetic model (random weights at a named or given shape)",
		run:     runGen,
	})
}

func runGen(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gen", stderr)
	preset := fs.String("preset", "", "named shape: "+fmt.Sprint(synth.Presets()))
	arch := fs.String("arch", model.ArchLlama, "architecture without --preset: llama or gpt2")
	vocab := fs.Int("vocab", 0, "vocabulary size")
	dim := fs.Int("dim", 0, "embedding width")
	hidden := fs.Int("hidden", 0, "feed-forward width")
	layers := fs.Int("layers", 0, "layers")
	heads := fs.Int("heads", 0, "query heads")
	kvHeads := fs.Int("kv-heads", 0, "key/value heads (default: heads)")
	headDim := fs.Int("head-dim", 0, "head size (default: dim/heads)")
	context := fs.Int("context", 0, "context length (default 2048)")
	theta := fs.Float64("rope-theta", 0, "RoPE base (default 10000)")
	eps := fs.Float64("norm-eps", 0, "normalisation epsilon (default 1e-5)")
	tied := fs.Bool("tied", false, "share the output projection with the token embedding")
	dtypeName := fs.String("dtype", "f32", "weight type: f32, f16, bf16, q8_0, q4_k or q5_k (k-quant matrices whose rows are not whole 256-element blocks are q8_0; vectors stay f32)")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same weights")
	tokFrom := fs.String("tokenizer-from", "", "copy the tokenizer of this GGUF `file` (sets the vocabulary size)")
	format := fs.String("format", "gguf", "output format: gguf, hf (config.json + model.safetensors) or llama2c (run.c's checkpoint + tokenizer.bin)")
	out := fs.String("o", "", "output `path` (a file; a directory for --format hf)")
	force := fs.Bool("force", false, "overwrite an existing output")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loom gen (--preset NAME | --vocab N --dim N --hidden N --layers N --heads N) [flags] -o PATH")
		fmt.Fprintln(stderr, "\nWrites a model with seeded random weights. Explicit hyperparameters override the preset's.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *out == "" {
		return fmt.Errorf("%w: -o PATH is required", errUsage)
	}
	dt, err := backend.ParseDType(*dtypeName)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var cfg model.Config
	if *preset != "" {
		if cfg, err = synth.Preset(*preset); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	} else {
		for _, f := range []string{"vocab", "dim", "hidden", "layers", "heads"} {
			if !set[f] && !(f == "vocab" && *tokFrom != "") {
				return fmt.Errorf("%w: without --preset, --%s is required", errUsage, f)
			}
		}
		cfg = model.Config{Arch: *arch, Name: "synthetic", Context: 2048, NormEps: 1e-5, RopeTheta: 10000, TiedEmbeddings: *tied}
		if cfg.Arch == model.ArchGPT2 {
			cfg.RopeTheta, cfg.TiedEmbeddings = 0, true
		}
	}
	ints := map[string]struct {
		dst *int
		v   int
	}{"vocab": {&cfg.VocabSize, *vocab}, "dim": {&cfg.Dim, *dim}, "hidden": {&cfg.Hidden, *hidden},
		"layers": {&cfg.Layers, *layers}, "heads": {&cfg.Heads, *heads}, "kv-heads": {&cfg.KVHeads, *kvHeads},
		"head-dim": {&cfg.HeadDim, *headDim}, "context": {&cfg.Context, *context}}
	for name, p := range ints {
		if set[name] {
			*p.dst = p.v
		}
	}
	if set["heads"] && !set["kv-heads"] && *preset == "" {
		cfg.KVHeads = cfg.Heads
	}
	if (set["dim"] || set["heads"]) && !set["head-dim"] && cfg.Heads > 0 {
		cfg.HeadDim = cfg.Dim / cfg.Heads
	}
	if cfg.Arch == model.ArchLlama {
		cfg.RopeDims = cfg.HeadDim
	}
	if set["rope-theta"] {
		cfg.RopeTheta = *theta
	}
	if set["norm-eps"] {
		cfg.NormEps = float32(*eps)
	}
	if set["tied"] {
		cfg.TiedEmbeddings = *tied
	}

	tok := model.TokenizerSpec{}
	if *tokFrom != "" {
		src, err := gguf.Load(*tokFrom)
		if err != nil {
			return err
		}
		tok = src.Tokenizer // its strings and slices are copies, not mapped memory
		src.Close()
		if tok.Model == "" {
			return fmt.Errorf("%s: no tokenizer to copy: %w", *tokFrom, model.ErrMissing)
		}
	}
	if !*force {
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("%s exists (use --force to overwrite): %w", *out, os.ErrExist)
		}
	}
	start := time.Now()
	var written int64
	switch *format {
	case "gguf":
		written, err = genGGUF(*out, cfg, dt, tok, *seed)
	case "hf":
		written, err = genHF(*out, cfg, dt, tok, *seed)
	case "llama2c":
		if dt != backend.F32 {
			return fmt.Errorf("%w: llama2.c checkpoints are f32 (have --dtype %v)", errUsage, dt)
		}
		if cfg.RopeTheta != 10000 || cfg.NormEps != 1e-5 {
			fmt.Fprintf(stderr, "loom gen: note: run.c fixes RoPE theta at 10000 and the norm epsilon at 1e-5 (this model: %g, %g); its outputs will differ from loom's, its speed will not\n", cfg.RopeTheta, cfg.NormEps)
		}
		written, err = genLlama2C(*out, cfg, tok, *seed, *force)
	default:
		return fmt.Errorf("%w: --format %q (want gguf, hf or llama2c)", errUsage, *format)
	}
	if err != nil {
		return err
	}
	sec := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "wrote %s: %s %s, %v weights, seed %d, %s in %.1fs (%.2f GB/s)\n",
		*out, *format, cfg.Name, dt, *seed, humanBytes(written), sec, float64(written)/sec/1e9)
	return nil
}

// genGGUF writes the model tensor by tensor (see fillFile).
func genGGUF(path string, cfg model.Config, dt backend.DType, tok model.TokenizerSpec, seed uint64) (int64, error) {
	m, err := synth.Describe(cfg, dt, tok)
	if err != nil {
		return 0, err
	}
	kvs, infos, _, err := gguf.ModelLayout(m)
	if err != nil {
		return 0, err
	}
	header, align, err := gguf.Header(kvs, infos)
	if err != nil {
		return 0, err
	}
	size := int64(len(header)) + gguf.DataSize(infos, align)
	offsets := map[string]int64{}
	for _, t := range infos {
		offsets[t.Name] = int64(len(header)) + int64(t.Offset)
	}
	return size, fillFile(path, header, size, m, offsets, seed)
}

// genHF builds the model in memory and writes it as a Hugging Face
// directory.
func genHF(dir string, cfg model.Config, dt backend.DType, tok model.TokenizerSpec, seed uint64) (int64, error) {
	if dt != backend.F32 && dt != backend.F16 && dt != backend.BF16 {
		return 0, fmt.Errorf("%w: safetensors holds f32, f16 or bf16 weights, not %v", errUsage, dt)
	}
	m, err := synth.New(cfg, dt, tok, seed)
	if err != nil {
		return 0, err
	}
	if err := hf.Write(dir, m); err != nil {
		return 0, err
	}
	st, err := os.Stat(filepath.Join(dir, hf.WeightsFile))
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// genLlama2C writes run.c's checkpoint at path and tokenizer.bin beside it.
func genLlama2C(path string, cfg model.Config, tok model.TokenizerSpec, seed uint64, force bool) (int64, error) {
	m, err := synth.Describe(cfg, backend.F32, tok)
	if err != nil {
		return 0, err
	}
	header, offsets, size, err := synth.Llama2CLayout(m)
	if err != nil {
		return 0, err
	}
	tokPath := filepath.Join(filepath.Dir(path), "tokenizer.bin")
	if _, err := os.Stat(tokPath); err == nil && !force {
		return 0, fmt.Errorf("%s exists (use --force to overwrite): %w", tokPath, os.ErrExist)
	}
	if err := fillFile(path, header, size, m, offsets, seed); err != nil {
		return 0, err
	}
	f, err := os.Create(tokPath)
	if err != nil {
		return 0, err
	}
	if err := synth.WriteLlama2CTokenizer(f, &m.Tokenizer, m.Config.VocabSize); err != nil {
		f.Close()
		return 0, err
	}
	return size, f.Close()
}

// fillFile creates path with size bytes, writes header at its start and
// each tensor of m at its offset, generating one tensor at a time into a
// reused buffer (all CPUs fill it), so models larger than memory can be
// written; gaps stay zero.
func fillFile(path string, header []byte, size int64, m *model.Model, offsets map[string]int64, seed uint64) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if _, err := f.Write(header); err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		return err
	}
	largest := 0
	for _, t := range m.Tensors {
		largest = max(largest, synth.Bytes(t))
	}
	buf := make([]byte, largest)
	for _, name := range synth.Names(m) {
		t := m.Tensors[name]
		off, ok := offsets[name]
		if !ok {
			return errors.New("internal: tensor " + name + " has no place in the file")
		}
		t.Data = buf[:synth.Bytes(t)]
		one := &model.Model{Config: m.Config, Tensors: map[string]*model.Tensor{name: t}}
		if err := synth.Fill(one, seed); err != nil {
			return err
		}
		if _, err := f.WriteAt(t.Data, off); err != nil {
			return err
		}
		t.Data = nil
	}
	return nil
}
