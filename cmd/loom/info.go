package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
	"github.com/loomllm/loom/model/hf"
)

func init() {
	register(command{
		name:    "info",
		summary: "describe a model file (GGUF) or Hugging Face directory",
		run:     runInfo,
	})
}

// infoReport is what loom info prints; --json prints it as is.
type infoReport struct {
	Path       string               `json:"path"`
	Format     string               `json:"format"`
	FileBytes  int64                `json:"file_bytes"`
	FileArch   string               `json:"file_architecture"`
	Config     *model.Config        `json:"config,omitempty"`
	Params     int64                `json:"parameters"`
	Count      int                  `json:"tensor_count"`
	Bytes      int64                `json:"tensor_bytes"`
	Types      map[string]typeCount `json:"types"`
	Tokenizer  *tokenizerInfo       `json:"tokenizer,omitempty"`
	Context    int                  `json:"context_length"`
	Tensors    []tensorInfo         `json:"tensors,omitempty"`
	LoadError  string               `json:"load_error,omitempty"`
	TensorList bool                 `json:"-"`
}

type typeCount struct {
	Tensors int   `json:"tensors"`
	Params  int64 `json:"parameters"`
	Bytes   int64 `json:"bytes"`
}

type tokenizerInfo struct {
	Model  string `json:"model"`
	Pre    string `json:"pre,omitempty"`
	Tokens int    `json:"tokens"`
	Merges int    `json:"merges,omitempty"`
	BOS    int    `json:"bos"`
	EOS    int    `json:"eos"`
	EOT    int    `json:"eot"`
	AddBOS bool   `json:"add_bos"`
	Chat   bool   `json:"chat_template"`
}

type tensorInfo struct {
	Name  string   `json:"name"`
	Type  string   `json:"type"`
	Shape []uint64 `json:"shape"` // GGUF's ne order: elements per row first
	Bytes int64    `json:"bytes"`
}

func runInfo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("info", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	list := fs.Bool("tensors", false, "also list every tensor")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loom info [--json] [--tensors] FILE.gguf|DIR")
		fmt.Fprintln(stderr, "\nDescribes a model without reading its weights: architecture, hyperparameters,")
		fmt.Fprintln(stderr, "parameter count, tensors per type, bytes, tokenizer, context length.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want one FILE or DIR, have %d arguments", errUsage, fs.NArg())
	}
	r, err := describe(fs.Arg(0))
	if err != nil {
		return err
	}
	if !*list {
		r.Tensors = nil
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.print(stdout)
	return nil
}

// describe builds the report. A GGUF file is described from its header
// alone, so files loom cannot run (other architectures, other tensor
// types) are described too, with the reason in LoadError.
func describe(path string) (*infoReport, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	r := &infoReport{Path: path, Types: map[string]typeCount{}}
	add := func(name, typ string, shape []uint64, bytes int64) {
		n := int64(1)
		for _, d := range shape {
			n *= int64(d)
		}
		c := r.Types[typ]
		c.Tensors++
		c.Params += n
		c.Bytes += bytes
		r.Types[typ] = c
		r.Params += n
		r.Bytes += bytes
		r.Count++
		r.Tensors = append(r.Tensors, tensorInfo{name, typ, shape, bytes})
	}
	var m *model.Model
	if st.IsDir() {
		if m, err = hf.Load(path); err != nil {
			return nil, err
		}
		defer m.Close()
		r.Format = "Hugging Face directory"
		r.FileArch, _ = m.Meta["general.architecture"].(string)
		entries, _ := os.ReadDir(path)
		for _, e := range entries {
			if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".safetensors") {
				r.FileBytes += info.Size()
			}
		}
		names := make([]string, 0, len(m.Tensors))
		for n := range m.Tensors {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			t := m.Tensors[n]
			shape := []uint64{uint64(t.Cols)}
			if t.Rows > 1 {
				shape = append(shape, uint64(t.Rows))
			}
			add(n, t.DType.String(), shape, int64(len(t.Data)))
		}
	} else {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r.Format = fmt.Sprintf("GGUF v%d", f.Version)
		r.FileBytes = f.Size()
		r.FileArch, _ = f.String("general.architecture")
		for i := range f.Tensors {
			t := &f.Tensors[i]
			add(t.Name, t.Type.String(), t.Dims, t.Size)
		}
		if m, err = f.Model(); err != nil {
			r.LoadError = err.Error()
		}
	}
	if m != nil {
		r.Config = &m.Config
		r.Context = m.Config.Context
		if tok := &m.Tokenizer; tok.Model != "" || len(tok.HFJSON) > 0 {
			r.Tokenizer = &tokenizerInfo{Model: tok.Model, Pre: tok.Pre, Tokens: len(tok.Tokens), Merges: len(tok.Merges),
				BOS: tok.BOS, EOS: tok.EOS, EOT: tok.EOT, AddBOS: tok.AddBOS, Chat: tok.ChatTemplate != ""}
			if tok.Model == "" {
				r.Tokenizer.Model = "tokenizer.json"
			}
		}
	}
	return r, nil
}

func (r *infoReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("file", "%s (%s, %s)", filepath.Base(r.Path), r.Format, humanBytes(r.FileBytes))
	if c := r.Config; c != nil {
		arch := c.Arch
		if r.FileArch != "" && r.FileArch != c.Arch {
			arch += " (" + r.FileArch + ")"
		}
		row("architecture", "%s", arch)
		if c.Name != "" {
			row("name", "%s", c.Name)
		}
	} else {
		row("architecture", "%s", r.FileArch)
	}
	row("parameters", "%s (%d)", humanCount(r.Params), r.Params)
	types := make([]string, 0, len(r.Types))
	for t := range r.Types {
		types = append(types, t)
	}
	sort.Strings(types)
	var parts []string
	for _, t := range types {
		c := r.Types[t]
		parts = append(parts, fmt.Sprintf("%s ×%d (%s)", t, c.Tensors, humanBytes(c.Bytes)))
	}
	if r.Count == 0 {
		row("tensors", "none (a vocabulary-only file)")
	} else {
		row("tensors", "%d, %s: %s", r.Count, humanBytes(r.Bytes), strings.Join(parts, ", "))
	}
	if c := r.Config; c != nil && c.Layers > 0 {
		shape := fmt.Sprintf("embedding %d, feed-forward %d, layers %d", c.Dim, c.Hidden, c.Layers)
		if c.VocabSize > 0 {
			shape = fmt.Sprintf("vocabulary %d, %s", c.VocabSize, shape)
		}
		row("shape", "%s", shape)
		qk := ""
		if c.QKNorm {
			qk = ", per-head Q/K norm"
		}
		if c.FusedWeights {
			qk += ", Q/K/V and gate/up fused"
		}
		row("attention", "%d heads, %d key/value heads, head size %d%s", c.Heads, c.KVHeads, c.HeadDim, qk)
		if c.Arch == model.ArchLlama {
			layout := "interleaved"
			if c.RopeNeoX {
				layout = "NeoX"
			}
			rope := fmt.Sprintf("theta %g, %d dims, %s", c.RopeTheta, c.RopeDims, layout)
			if s := c.RopeScaling; s.Type != "" {
				rope += fmt.Sprintf(", %s scaling ×%g", s.Type, s.Factor)
			}
			row("rope", "%s", rope)
		}
		row("norm epsilon", "%g", c.NormEps)
		if r.Count > 0 {
			output := "untied (output.weight)"
			if c.TiedEmbeddings {
				output = "tied to token_embd.weight"
			}
			row("output", "%s", output)
		}
	}
	if r.Context > 0 {
		if c := r.Config; c != nil && c.SlidingWindow > 0 && c.SlidingWindow < r.Context {
			row("context", "%d (sliding window %d: loom runs at most %d positions)", r.Context, c.SlidingWindow, c.SlidingWindow)
		} else {
			row("context", "%d", r.Context)
		}
	}
	if c := r.Config; c != nil && c.Pooling != "" {
		row("pooling", "%s (embeddings)", c.Pooling)
	}
	if t := r.Tokenizer; t != nil {
		kind := map[string]string{"llama": "llama (SentencePiece)", "gpt2": "gpt2 (byte-level BPE)"}[t.Model]
		if kind == "" {
			kind = t.Model
		}
		if t.Pre != "" && t.Pre != "default" {
			kind += ", pre-tokenizer " + t.Pre
		}
		desc := fmt.Sprintf("%s, %d tokens", kind, t.Tokens)
		if t.Merges > 0 {
			desc += fmt.Sprintf(", %d merges", t.Merges)
		}
		desc += fmt.Sprintf(", BOS %d, EOS %d", t.BOS, t.EOS)
		if t.EOT >= 0 {
			desc += fmt.Sprintf(", EOT %d", t.EOT)
		}
		if t.AddBOS {
			desc += ", adds BOS"
		}
		if t.Chat {
			desc += ", chat template"
		}
		row("tokenizer", "%s", desc)
	} else {
		row("tokenizer", "none")
	}
	if r.LoadError != "" {
		row("loadable", "no: %s", r.LoadError)
	}
	tw.Flush()
	if len(r.Tensors) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nname\ttype\tshape\tbytes")
		for _, t := range r.Tensors {
			fmt.Fprintf(tw, "%s\t%s\t%v\t%d\n", t.Name, t.Type, t.Shape, t.Bytes)
		}
		tw.Flush()
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.2f %ciB", v, "KMGTPE"[i])
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
