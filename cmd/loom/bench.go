package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/loomllm/loom"
	"github.com/loomllm/loom/bench"
	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/loader"
	"github.com/loomllm/loom/model/synth"
	"github.com/loomllm/loom/runtime/backend"
)

func init() {
	register(command{name: "bench", summary: "measure prefill and decode speed against the machine's measured limits", run: runBench})
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	path := fs.String("model", "", "model file (GGUF) or Hugging Face directory")
	preset := fs.String("preset", "", "synthetic model shape instead of a file: "+strings.Join(synth.Presets(), ", "))
	dtype := fs.String("dtype", "bf16", "weight type of the synthetic model: f32, f16, bf16, q8_0, q4_k or q5_k")
	device := fs.String("device", defaultDevice(), "auto, cpu, cuda or cuda:N (default $LOOM_DEVICE, else auto)")
	threads := fs.Int("threads", 0, "CPU threads (0: all)")
	promptLen := fs.Int("prompt-len", 512, "prompt tokens of the prefill measurement (0 skips it)")
	decodePrompt := fs.Int("decode-prompt", 128, "context each sequence holds before the timed decode steps")
	gen := fs.Int("gen", 32, "timed decode steps per batch size")
	batches := fs.String("batch", "1", "decode batch sizes, comma-separated (e.g. 1,8,32)")
	reps := fs.Int("reps", 3, "prefill repetitions (the median is reported)")
	seed := fs.Uint64("seed", 1, "seed of the synthetic weights and the random token ids")
	temps := fs.String("temperature", "0", "how decode steps pick tokens, comma-separated, each measured at every batch size: 0 greedy argmax on the device, above 0 sampled on the host at that temperature as a server does (e.g. 0,0.8)")
	peakFlops := fs.Float64("peak-tflops", 0, "matrix-multiply ceiling in TFLOP/s measured elsewhere (e.g. cuBLAS through torch); 0 uses loom's own probe")
	peakBW := fs.Float64("peak-gbs", 0, "memory-bandwidth ceiling in GB/s measured elsewhere; 0 measures it")
	asJSON := fs.Bool("json", false, "print one JSON object per measurement")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measurements (not the setup) to `FILE`, for go tool pprof")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loom bench (--model FILE | --preset NAME [--dtype D]) [flags]")
		fmt.Fprintln(stderr, "\nMeasures time to first token, prefill and decode speed with random token ids, each")
		fmt.Fprintln(stderr, "against a ceiling measured in the same run: memory bandwidth for decode, the")
		fmt.Fprintln(stderr, "matrix-multiply rate for prefill. Presets generate synthetic weights in memory.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*path == "") == (*preset == "") {
		return fmt.Errorf("%w: give exactly one of --model and --preset", errUsage)
	}
	bs, err := parseInts(*batches)
	var ts []float32
	for _, f := range strings.Split(*temps, ",") {
		v, perr := strconv.ParseFloat(strings.TrimSpace(f), 32)
		if perr != nil || !(v >= 0 && v <= 100) {
			return fmt.Errorf("%w: --temperature %q: want values from 0 to 100", errUsage, *temps)
		}
		ts = append(ts, float32(v))
	}
	if err != nil || *promptLen < 0 || *decodePrompt < 1 || *gen < 2 || *reps < 1 {
		return fmt.Errorf("%w: --batch %q, --prompt-len %d, --decode-prompt %d, --gen %d (at least 2), --reps %d",
			errUsage, *batches, *promptLen, *decodePrompt, *gen, *reps)
	}
	maxB := 1
	for _, b := range bs {
		maxB = max(maxB, b)
	}

	var desc *model.Model
	if *path != "" {
		desc, err = loader.Open(*path)
	} else {
		var cfg model.Config
		var dt backend.DType
		if cfg, err = synth.Preset(*preset); err == nil {
			if dt, err = backend.ParseDType(*dtype); err == nil {
				fmt.Fprintf(stderr, "generating synthetic %s weights in %v...\n", *preset, dt)
				desc, err = synth.New(cfg, dt, model.TokenizerSpec{}, *seed)
			}
		}
	}
	if err != nil {
		return err
	}
	ctx := max(*promptLen, *decodePrompt+*gen+1)
	m, err := loom.FromModel(desc, loom.Options{Device: *device, Threads: *threads, Context: ctx,
		Sequences: maxB, BatchRows: max(*promptLen, maxB, 1)})
	if err != nil {
		desc.Close()
		return err
	}
	defer m.Close()
	eng := m.Engine()
	kv := eng.Cache().Spec().DType
	shape := bench.ShapeOf(desc, kv)
	fmt.Fprintf(stderr, "%s (%s) on %s; measuring the machine's limits...\n", shape.Name, shape.DType, eng.Backend().Name())
	ceil, err := bench.MeasureCeilings(eng.Backend(), *threads)
	if err != nil {
		return err
	}
	if *peakBW > 0 {
		ceil.Bandwidth, ceil.BandwidthMethod = *peakBW*1e9, "given with --peak-gbs"
	}
	if *peakFlops > 0 {
		ceil.MatMul, ceil.MatMulMethod = *peakFlops*1e12, "given with --peak-tflops"
	}
	fmt.Fprintf(stderr, "bandwidth %.1f GB/s (%s)", ceil.Bandwidth/1e9, ceil.BandwidthMethod)
	if ceil.MatMul > 0 {
		fmt.Fprintf(stderr, "; matmul %.1f TFLOP/s (%s)", ceil.MatMul/1e12, ceil.MatMulMethod)
	}
	fmt.Fprintln(stderr)

	r := &bench.Runner{Engine: eng, Shape: shape, Ceilings: ceil,
		Config: bench.Config{PromptLen: *promptLen, DecodePrompt: *decodePrompt, Gen: *gen, Batches: bs, Reps: *reps, Seed: *seed,
			Temperatures: ts}}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	enc := json.NewEncoder(stdout)
	return r.Run(func(res bench.Result) {
		if *asJSON {
			_ = enc.Encode(res)
			return
		}
		switch res.Kind {
		case "prefill":
			fmt.Fprintf(stdout, "prefill  %5d tokens: ttft %8.1f ms  %9.1f tok/s  %7.2f TFLOP/s", res.PromptLen, res.TTFTms, res.PrefillTokS, res.PrefillTFLOPS)
			if res.PrefillFracPeak > 0 {
				fmt.Fprintf(stdout, "  %5.1f%% of matmul peak", 100*res.PrefillFracPeak)
			}
		case "decode":
			fmt.Fprintf(stdout, "decode   batch %3d: %8.2f ms/step (p99 %.2f)  %9.1f tok/s  %8.1f GB/s  %5.1f%% of bandwidth",
				res.Batch, res.DecodeMsP50, res.DecodeMsP99, res.DecodeTokSAggregate, res.DecodeGBs, 100*res.DecodeFracBW)
			if res.Temperature > 0 {
				fmt.Fprintf(stdout, "  sampled at %g", res.Temperature)
			}
		}
		fmt.Fprintf(stdout, "  (peak host %.0f MiB)\n", float64(res.PeakHostBytes)/(1<<20))
	})
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no counts in %q", s)
	}
	return out, nil
}
