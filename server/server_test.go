package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom"
	"github.com/loomllm/loom/internal/testdata"
	"github.com/loomllm/loom/model/chat"
	"github.com/loomllm/loom/runtime/constrain"
	"github.com/loomllm/loom/runtime/sched"
)

// testServer is a real server on a loopback port, serving stories260K on
// the CPU.
type testServer struct {
	url   string
	sched *sched.Scheduler
	model *loom.Model
	stop  context.CancelFunc
	done  chan error
}

type serverOptions struct {
	sched    sched.Config
	apiKey   string
	body     int64
	grace    time.Duration
	blocks   int
	seqs     int
	threads  int            // CPU backend threads; 0 means 2
	model    string         // model file; "" means the shared stories260K
	template *chat.Template // chat template; nil: the model's (ChatML for stories260K)
	// splitReasoning sets Config.SplitReasoning.
	splitReasoning bool
	pooling        string // Config.Pooling
}

func loadModel(t testing.TB, seqs, blocks int) *loom.Model {
	return loadModelThreads(t, "", seqs, blocks, 2)
}

// loadModelThreads loads path (the shared stories260K when "") on the CPU.
func loadModelThreads(t testing.TB, path string, seqs, blocks, threads int) *loom.Model {
	if path == "" {
		path = testdata.Path(t, "models/stories260K.gguf")
	}
	m, err := loom.Load(path,
		loom.Options{Device: "cpu", Threads: threads, Context: 512, Sequences: seqs, KVBlocks: blocks, BatchRows: 256})
	require.NoError(t, err)
	return m
}

func startServer(t testing.TB, o serverOptions) *testServer {
	if o.seqs == 0 {
		o.seqs = 32
	}
	if o.blocks == 0 {
		o.blocks = 32 * 32
	}
	if o.grace == 0 {
		o.grace = 10 * time.Second
	}
	if o.threads == 0 {
		o.threads = 2
	}
	m := loadModelThreads(t, o.model, o.seqs, o.blocks, o.threads)
	metrics := NewMetrics()
	step := o.sched.OnStep
	o.sched.OnStep = func(seqs, tokens int, took time.Duration) {
		metrics.ObserveStep(seqs, tokens, took)
		if step != nil {
			step(seqs, tokens, took)
		}
	}
	sc, err := sched.New(m.Engine(), o.sched)
	require.NoError(t, err)
	srv, err := New(Config{Sched: sc, Tokenizer: m.Tokenizer(), ModelName: "stories260K", APIKey: o.apiKey,
		MaxBodyBytes: o.body, Metrics: metrics, Template: o.template, SplitReasoning: o.splitReasoning, Pooling: o.pooling})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{url: "http://" + ln.Addr().String(), sched: sc, model: m, stop: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx, ln, o.grace) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-ts.done)
		require.NoError(t, m.Close())
	})
	return ts
}

// post sends a JSON body and decodes the JSON answer.
func (ts *testServer) post(t testing.TB, path string, body any, out any) *http.Response {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		b, err = json.Marshal(v)
		require.NoError(t, err)
	}
	resp, err := http.Post(ts.url+path, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if out != nil {
		require.NoError(t, json.Unmarshal(raw, out), string(raw))
	}
	return resp
}

// sse reads a server-sent event stream: the data of each event.
func sse(t testing.TB, r io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		require.True(t, ok, "line %q", line)
		out = append(out, data)
	}
	return out
}

func greedy(prompt string, n int) map[string]any {
	return map[string]any{"model": "stories260K", "prompt": prompt, "max_tokens": n, "temperature": 0}
}

func TestCompletion(t *testing.T) {
	ts := startServer(t, serverOptions{})
	ref := loadModel(t, 1, 0)
	defer ref.Close()
	want, err := ref.GenerateText(context.Background(), "Once upon a time", loom.GenerateOptions{MaxTokens: 30})
	require.NoError(t, err)

	var resp CompletionResponse
	r := ts.post(t, "/v1/completions", greedy("Once upon a time", 30), &resp)
	require.Equal(t, 200, r.StatusCode)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, "text_completion", resp.Object)
	require.True(t, strings.HasPrefix(resp.ID, "cmpl-"))
	require.Equal(t, "stories260K", resp.Model)
	require.Len(t, resp.Choices, 1)
	require.Equal(t, want, resp.Choices[0].Text)
	require.Equal(t, "length", *resp.Choices[0].FinishReason)
	require.Nil(t, resp.Choices[0].Logprobs)
	ids, err := ref.Encode("Once upon a time")
	require.NoError(t, err)
	require.Equal(t, Usage{PromptTokens: len(ids), CompletionTokens: 30, TotalTokens: len(ids) + 30}, *resp.Usage)

	// Token-id prompts, several prompts, stop strings, the default of 16 tokens.
	var multi CompletionResponse
	r = ts.post(t, "/v1/completions", map[string]any{"model": "stories260K", "temperature": 0,
		"prompt": [][]int32{ids, ids}}, &multi)
	require.Equal(t, 200, r.StatusCode)
	require.Len(t, multi.Choices, 2)
	require.Equal(t, multi.Choices[0].Text, multi.Choices[1].Text)
	require.Equal(t, 32, multi.Usage.CompletionTokens)
	require.True(t, strings.HasPrefix(want, multi.Choices[0].Text))

	cut := strings.Index(want[1:], " ") + 1 // the first space after the first word
	var stopped CompletionResponse
	req := greedy("Once upon a time", 30)
	req["stop"] = want[cut : cut+2]
	ts.post(t, "/v1/completions", req, &stopped)
	require.Equal(t, want[:cut], stopped.Choices[0].Text)
	require.Equal(t, "stop", *stopped.Choices[0].FinishReason)
}

func TestCompletionStream(t *testing.T) {
	ts := startServer(t, serverOptions{})
	var plain CompletionResponse
	ts.post(t, "/v1/completions", greedy("The cat", 40), &plain)

	req := greedy("The cat", 40)
	req["stream"] = true
	req["stream_options"] = map[string]any{"include_usage": true}
	b, _ := json.Marshal(req)
	resp, err := http.Post(ts.url+"/v1/completions", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	events := sse(t, resp.Body)
	require.Equal(t, "[DONE]", events[len(events)-1])
	var text strings.Builder
	var finish string
	var usage *Usage
	for _, e := range events[:len(events)-1] {
		var c CompletionResponse
		require.NoError(t, json.Unmarshal([]byte(e), &c), e)
		require.Equal(t, "text_completion", c.Object)
		if c.Usage != nil {
			usage = c.Usage
			require.Empty(t, c.Choices)
			continue
		}
		require.Len(t, c.Choices, 1)
		text.WriteString(c.Choices[0].Text)
		if c.Choices[0].FinishReason != nil {
			finish = *c.Choices[0].FinishReason
		}
	}
	require.Equal(t, plain.Choices[0].Text, text.String())
	require.Equal(t, "length", finish)
	require.Equal(t, *plain.Usage, *usage)
	require.GreaterOrEqual(t, len(events), 30, "one event per token")
}

// TestStreamFlushesPerToken: the first token arrives while the rest are
// still being generated.
func TestStreamFlushesPerToken(t *testing.T) {
	ts := startServer(t, serverOptions{sched: sched.Config{OnStep: func(_, _ int, took time.Duration) {
		time.Sleep(5*time.Millisecond - took)
	}}})
	req := greedy("The cat", 100)
	req["stream"] = true
	b, _ := json.Marshal(req)
	start := time.Now()
	resp, err := http.Post(ts.url+"/v1/completions", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "data: {"))
	first := time.Since(start)
	_, err = io.ReadAll(rd)
	require.NoError(t, err)
	require.Less(t, first, time.Since(start)/3, "the first token came long before the last (100 steps of 5 ms)")
}

func TestChat(t *testing.T) {
	ts := startServer(t, serverOptions{})
	msgs := []map[string]any{{"role": "system", "content": "Tell a story."}, {"role": "user", "content": []map[string]any{{"type": "text", "text": "Once upon"}, {"type": "text", "text": " a time"}}}}
	req := map[string]any{"model": "stories260K", "messages": msgs, "max_tokens": 20, "temperature": 0}
	var resp ChatResponse
	r := ts.post(t, "/v1/chat/completions", req, &resp)
	require.Equal(t, 200, r.StatusCode)
	require.Equal(t, "chat.completion", resp.Object)
	require.True(t, strings.HasPrefix(resp.ID, "chatcmpl-"))
	require.Equal(t, "assistant", resp.Choices[0].Message.Role)
	require.NotEmpty(t, *resp.Choices[0].Message.Content)
	require.Equal(t, 20, resp.Usage.CompletionTokens)

	// The prompt is the ChatML rendering, with BOS, as a completion would see it.
	rendered := "<|im_start|>system\nTell a story.<|im_end|>\n<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n"
	var comp CompletionResponse
	ts.post(t, "/v1/completions", greedy(rendered, 20), &comp)
	require.Equal(t, comp.Choices[0].Text, *resp.Choices[0].Message.Content)
	require.Equal(t, comp.Usage.PromptTokens, resp.Usage.PromptTokens)

	req["stream"] = true
	b, _ := json.Marshal(req)
	hr, err := http.Post(ts.url+"/v1/chat/completions", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer hr.Body.Close()
	events := sse(t, hr.Body)
	require.Equal(t, "[DONE]", events[len(events)-1])
	var text strings.Builder
	for i, e := range events[:len(events)-1] {
		var c ChatResponse
		require.NoError(t, json.Unmarshal([]byte(e), &c))
		require.Equal(t, "chat.completion.chunk", c.Object)
		if i == 0 {
			require.Equal(t, "assistant", c.Choices[0].Delta.Role)
		}
		if c.Choices[0].Delta.Content != nil {
			text.WriteString(*c.Choices[0].Delta.Content)
		}
	}
	require.Equal(t, *resp.Choices[0].Message.Content, text.String())
}

// TestEcho: echo puts the prompt before the text and, with logprobs, its
// tokens' log probabilities before the choice's (null for the first), as
// evaluation harnesses read them: a greedy continuation sent back as a
// prompt scores as it was generated, each token the top one; streamed,
// the prompt comes first with the same figures.
func TestEcho(t *testing.T) {
	ts := startServer(t, serverOptions{})
	gen := greedy("Once upon a time", 12)
	gen["logprobs"] = 1
	var first CompletionResponse
	require.Equal(t, 200, ts.post(t, "/v1/completions", gen, &first).StatusCode)

	// The prompt as token ids: the prompt and the text generated.
	var tk TokenizeResponse
	require.Equal(t, 200, ts.post(t, "/tokenize", map[string]any{"model": "stories260K", "prompt": "Once upon a time" + first.Choices[0].Text}, &tk).StatusCode)
	ids := tk.Tokens
	req := map[string]any{"model": "stories260K", "max_tokens": 1, "temperature": 0, "logprobs": 1, "echo": true}
	req["prompt"] = ids
	var resp CompletionResponse
	require.Equal(t, 200, ts.post(t, "/v1/completions", req, &resp).StatusCode)
	lp := resp.Choices[0].Logprobs
	require.Len(t, lp.Tokens, len(ids)+1, "the prompt's tokens, then the one generated")
	require.Nil(t, lp.TokenLogprobs[0])
	require.Nil(t, lp.TopLogprobs[0])
	require.Equal(t, resp.Choices[0].Text, strings.Join(lp.Tokens, ""))
	require.Equal(t, 0, lp.TextOffset[0])
	for i := 1; i < len(lp.Tokens); i++ {
		require.NotNil(t, lp.TokenLogprobs[i])
		require.LessOrEqual(t, *lp.TokenLogprobs[i], 0.0)
		require.Equal(t, lp.TextOffset[i-1]+len(lp.Tokens[i-1]), lp.TextOffset[i])
	}
	// The generated text re-tokenizes to the tokens generated, which score
	// as they did when generated.
	n := len(first.Choices[0].Logprobs.Tokens)
	require.Equal(t, first.Choices[0].Logprobs.Tokens, lp.Tokens[len(ids)-n:len(ids)])
	for k := range n {
		i := len(ids) - n + k
		require.InDelta(t, *first.Choices[0].Logprobs.TokenLogprobs[k], *lp.TokenLogprobs[i], 1e-4, "token %d", k)
		require.Contains(t, lp.TopLogprobs[i], lp.Tokens[i], "greedy: the top token")
	}

	// Streamed: the prompt first, with the same log probabilities.
	req["stream"] = true
	b, err := json.Marshal(req)
	require.NoError(t, err)
	r, err := http.Post(ts.url+"/v1/completions", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer r.Body.Close()
	var chunks []CompletionResponse
	for _, data := range sse(t, r.Body) {
		if data != "[DONE]" {
			var c CompletionResponse
			require.NoError(t, json.Unmarshal([]byte(data), &c))
			chunks = append(chunks, c)
		}
	}
	head := chunks[0].Choices[0]
	require.Equal(t, lp.Tokens[:len(ids)], head.Logprobs.Tokens)
	for i := 1; i < len(ids); i++ {
		require.InDelta(t, *lp.TokenLogprobs[i], *head.Logprobs.TokenLogprobs[i], 1e-6)
	}
	var all strings.Builder
	for _, c := range chunks {
		for _, ch := range c.Choices {
			all.WriteString(ch.Text)
		}
	}
	require.Equal(t, resp.Choices[0].Text, all.String())

	// Without logprobs: the text only.
	delete(req, "logprobs")
	delete(req, "stream")
	require.Equal(t, 200, ts.post(t, "/v1/completions", req, &resp).StatusCode)
	require.Nil(t, resp.Choices[0].Logprobs)
	require.Equal(t, strings.Join(lp.Tokens, ""), resp.Choices[0].Text)
}

func TestLogprobsAndN(t *testing.T) {
	ts := startServer(t, serverOptions{})
	req := greedy("Once upon a time", 10)
	req["logprobs"] = 3
	var resp CompletionResponse
	require.Equal(t, 200, ts.post(t, "/v1/completions", req, &resp).StatusCode)
	lp := resp.Choices[0].Logprobs
	require.Len(t, lp.Tokens, 10)
	require.Len(t, lp.TokenLogprobs, 10)
	require.Len(t, lp.TopLogprobs, 10)
	require.Equal(t, resp.Choices[0].Text, strings.Join(lp.Tokens, ""), "token texts make up the text")
	for i, top := range lp.TopLogprobs {
		require.LessOrEqual(t, len(top), 3)
		require.InDelta(t, *lp.TokenLogprobs[i], top[lp.Tokens[i]], 1e-6, "greedy picks the top token")
	}

	chat := map[string]any{"model": "stories260K", "messages": []map[string]string{{"role": "user", "content": "Hi"}},
		"max_tokens": 5, "logprobs": true, "top_logprobs": 2, "n": 3, "seed": 7}
	var cr ChatResponse
	require.Equal(t, 200, ts.post(t, "/v1/chat/completions", chat, &cr).StatusCode)
	require.Len(t, cr.Choices, 3)
	for i, c := range cr.Choices {
		require.Equal(t, i, c.Index)
		require.Len(t, c.Logprobs.Content, 5)
		for _, e := range c.Logprobs.Content {
			require.Len(t, e.TopLogprobs, 2)
			require.Equal(t, len(e.Token), len(e.Bytes))
			require.LessOrEqual(t, e.Logprob, 0.0)
		}
	}
	var again ChatResponse
	ts.post(t, "/v1/chat/completions", chat, &again)
	for i := range cr.Choices {
		require.Equal(t, *cr.Choices[i].Message.Content, *again.Choices[i].Message.Content, "the seed makes sampling reproducible")
	}
}

// TestBatchInvariance: 32 concurrent greedy requests return exactly what
// each returns alone.
func TestBatchInvariance(t *testing.T) {
	ts := startServer(t, serverOptions{})
	prompts := []string{"Once upon a time", "The cat", "Lily and Tom went to the park", "One day, a little bird",
		"Tim had a red ball.", "The sun was", "Sara", "A big dog saw a small frog and said"}
	reqs := make([]map[string]any, 32)
	alone := make([]string, len(reqs))
	for i := range reqs {
		reqs[i] = greedy(prompts[i%len(prompts)]+strings.Repeat(" and", i/len(prompts)), 30+2*i)
		var resp CompletionResponse
		require.Equal(t, 200, ts.post(t, "/v1/completions", reqs[i], &resp).StatusCode)
		alone[i] = resp.Choices[0].Text
	}
	got := make([]string, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var resp CompletionResponse
			ts.post(t, "/v1/completions", reqs[i], &resp)
			if len(resp.Choices) == 1 {
				got[i] = resp.Choices[0].Text
			}
		}()
	}
	wg.Wait()
	require.Equal(t, alone, got)
}

func TestModelsHealthMetrics(t *testing.T) {
	ts := startServer(t, serverOptions{})
	resp, err := http.Get(ts.url + "/v1/models")
	require.NoError(t, err)
	var list ModelList
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	resp.Body.Close()
	require.Equal(t, "list", list.Object)
	require.Equal(t, "stories260K", list.Data[0].ID)
	require.Equal(t, 512, list.Data[0].MaxModelLen)

	resp, err = http.Get(ts.url + "/v1/models/stories260K")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	resp, err = http.Get(ts.url + "/health")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	var c CompletionResponse
	ts.post(t, "/v1/completions", greedy("Once", 8), &c)
	ts.post(t, "/v1/completions", `{`, nil)
	resp, err = http.Get(ts.url + "/metrics")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	text := string(body)
	for _, want := range []string{
		`loom_requests_total{endpoint="/v1/completions",code="200"} 1`,
		`loom_requests_total{endpoint="/v1/completions",code="400"} 1`,
		"loom_generation_tokens_total 8",
		"# TYPE loom_queue_depth gauge", "loom_queue_depth 0", "loom_kv_blocks_used 0", "loom_kv_blocks_reserved 0", "loom_kv_blocks_total 1024",
		"# TYPE loom_time_to_first_token_seconds histogram", `loom_time_to_first_token_seconds_bucket{le="+Inf"} 1`,
		"loom_time_to_first_token_seconds_count 1", "loom_time_per_output_token_seconds_count 7",
		"# TYPE loom_batch_size histogram", "loom_running_sequences 0",
	} {
		require.Contains(t, text, want)
	}
	// Every sample line is "name{labels} value" or "name value".
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		require.Len(t, f, 2, line)
	}
}

func TestAuth(t *testing.T) {
	ts := startServer(t, serverOptions{apiKey: "s3cret"})
	do := func(path, key string) int {
		req, _ := http.NewRequest("GET", ts.url+path, nil)
		if key != "" {
			req.Header.Set("Authorization", key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode == 401 {
			var e ErrorBody
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			require.Equal(t, "invalid_api_key", *e.Error.Code)
			require.NotEmpty(t, resp.Header.Get("WWW-Authenticate"))
		}
		return resp.StatusCode
	}
	require.Equal(t, 401, do("/v1/models", ""))
	require.Equal(t, 401, do("/v1/models", "Bearer wrong"))
	require.Equal(t, 401, do("/v1/models", "Bearer s3cret-and-more"))
	require.Equal(t, 401, do("/v1/models", "s3cret"))
	require.Equal(t, 401, do("/v1/completions", ""))
	require.Equal(t, 200, do("/v1/models", "Bearer s3cret"))
	require.Equal(t, 200, do("/health", ""))
	require.Equal(t, 200, do("/metrics", ""))
}

// TestBadInput: every class of bad input gets OpenAI's error JSON with the
// right status.
func TestBadInput(t *testing.T) {
	ts := startServer(t, serverOptions{body: 1 << 16})
	long := strings.Repeat("Once upon a time there was a cat. ", 80)
	cases := []struct {
		name, path, body string
		status           int
		param, code      string
	}{
		{"malformed", "/v1/completions", `{"model": "stories260K", "prompt": "x"`, 400, "", ""},
		{"not an object", "/v1/completions", `[1, 2]`, 400, "", ""},
		{"empty body", "/v1/completions", ``, 400, "", ""},
		{"trailing data", "/v1/completions", `{"model":"stories260K","prompt":"x"} {}`, 400, "", ""},
		{"wrong type", "/v1/completions", `{"model": "stories260K", "prompt": "x", "max_tokens": "ten"}`, 400, "max_tokens", ""},
		{"wrong prompt type", "/v1/completions", `{"model": "stories260K", "prompt": {"a": 1}}`, 400, "", ""},
		{"wrong stop type", "/v1/completions", `{"model": "stories260K", "prompt": "x", "stop": 5}`, 400, "", ""},
		{"temperature", "/v1/completions", `{"model": "stories260K", "prompt": "x", "temperature": 2.5}`, 400, "temperature", ""},
		{"top_p", "/v1/completions", `{"model": "stories260K", "prompt": "x", "top_p": 0}`, 400, "top_p", ""},
		{"top_k", "/v1/completions", `{"model": "stories260K", "prompt": "x", "top_k": -2}`, 400, "top_k", ""},
		{"penalty", "/v1/completions", `{"model": "stories260K", "prompt": "x", "presence_penalty": 3}`, 400, "presence_penalty", ""},
		{"n", "/v1/completions", `{"model": "stories260K", "prompt": "x", "n": 0}`, 400, "n", ""},
		{"max_tokens", "/v1/completions", `{"model": "stories260K", "prompt": "x", "max_tokens": 0}`, 400, "max_tokens", ""},
		{"logprobs", "/v1/completions", `{"model": "stories260K", "prompt": "x", "logprobs": 6}`, 400, "logprobs", ""},
		{"logit_bias key", "/v1/completions", `{"model": "stories260K", "prompt": "x", "logit_bias": {"hello": 1}}`, 400, "logit_bias", ""},
		{"logit_bias id", "/v1/completions", `{"model": "stories260K", "prompt": "x", "logit_bias": {"512": 1}}`, 400, "logit_bias", ""},
		{"logit_bias value", "/v1/completions", `{"model": "stories260K", "prompt": "x", "logit_bias": {"5": 101}}`, 400, "logit_bias", ""},
		{"token id", "/v1/completions", `{"model": "stories260K", "prompt": [1, 99999]}`, 400, "prompt", ""},
		{"no prompt", "/v1/completions", `{"model": "stories260K"}`, 400, "prompt", ""},
		{"suffix", "/v1/completions", `{"model": "stories260K", "prompt": "x", "suffix": "y"}`, 400, "suffix", ""},
		{"stream_options", "/v1/completions", `{"model": "stories260K", "prompt": "x", "stream_options": {"include_usage": true}}`, 400, "stream_options", ""},
		{"no model", "/v1/completions", `{"prompt": "x"}`, 400, "model", ""},
		{"unknown model", "/v1/completions", `{"model": "gpt-4", "prompt": "x"}`, 404, "model", "model_not_found"},
		{"prompt too long", "/v1/completions", fmt.Sprintf(`{"model": "stories260K", "prompt": %q}`, long), 400, "prompt", "context_length_exceeded"},
		{"prompt plus max_tokens", "/v1/completions", `{"model": "stories260K", "prompt": "x", "max_tokens": 600}`, 400, "max_tokens", "context_length_exceeded"},
		{"n over the batch", "/v1/completions", `{"model": "stories260K", "prompt": "x", "n": 64}`, 400, "", "request_too_large"},
		{"oversized body", "/v1/completions", fmt.Sprintf(`{"model": "stories260K", "prompt": %q}`, strings.Repeat("x", 1<<16)), 413, "", ""},
		{"no messages", "/v1/chat/completions", `{"model": "stories260K", "messages": []}`, 400, "messages", ""},
		{"message type", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": 5}]}`, 400, "", ""},
		{"image part", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}`, 400, "", ""},
		{"no role", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"content": "x"}]}`, 400, "messages[0].role", ""},
		{"top_logprobs", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}`, 400, "top_logprobs", ""},
		{"top_logprobs range", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}`, 400, "top_logprobs", ""},
		{"tools", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}`, 400, "tools[0]", ""},
		{"tools not a list", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "tools": {"a": 1}}`, 400, "tools", ""},
		{"tools the template ignores", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]}`, 400, "tools", ""},
		{"tool_choice unknown function", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}`, 400, "tool_choice", ""},
		{"tool_choice without tools", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}`, 400, "tool_choice", ""},
		{"json schema missing", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema"}}`, 400, "response_format.json_schema.schema", ""},
		{"json schema keyword", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object", "properties": {"a": {"type": "string", "format": "date"}}}}}}`, 400, "response_format.json_schema.schema", ""},
		{"response format", "/v1/chat/completions", `{"model": "stories260K", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "grammar"}}`, 400, "response_format", ""},
		{"chat too long", "/v1/chat/completions", fmt.Sprintf(`{"model": "stories260K", "messages": [{"role": "user", "content": %q}]}`, long), 400, "messages", "context_length_exceeded"},
		{"wrong method", "/v1/models", ``, 405, "", ""},
		{"unknown path", "/v1/rerank", `{}`, 404, "", "not_found"},
		{"embeddings without pooling", "/v1/embeddings", `{"model": "stories260K", "input": "x"}`, 400, "model", ""},
		{"unknown model id", "/v1/models/gpt-4", ``, 405, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var e ErrorBody
			r := ts.post(t, c.path, c.body, &e)
			require.Equal(t, c.status, r.StatusCode)
			require.Equal(t, "application/json", r.Header.Get("Content-Type"))
			require.NotEmpty(t, e.Error.Message)
			require.NotEmpty(t, e.Error.Type)
			if c.param != "" {
				require.NotNil(t, e.Error.Param)
				require.Equal(t, c.param, *e.Error.Param)
			}
			if c.code != "" {
				require.NotNil(t, e.Error.Code)
				require.Equal(t, c.code, *e.Error.Code)
			}
		})
	}
	resp, err := http.Get(ts.url + "/v1/models/gpt-4")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 404, resp.StatusCode)
	require.Zero(t, ts.sched.Stats().BlocksUsed)
}

// TestQueueFull: beyond the queue, requests get 429 with Retry-After.
func TestQueueFull(t *testing.T) {
	// The scheduler's first step waits at the gate until the four requests
	// have been decided, so none can finish (and free its place) before
	// the last one arrives; the first is running before the others are
	// sent: exactly one runs, one waits, two are refused.
	gate := make(chan struct{})
	ts := startServer(t, serverOptions{seqs: 1, blocks: 64, sched: sched.Config{MaxQueue: 1,
		OnStep: func(_, _ int, took time.Duration) { <-gate }}})
	var wg sync.WaitGroup
	codes := make(chan int, 4)
	for i := range 4 {
		if i == 1 { // the first request is running (held at the gate) before the others come
			require.Eventually(t, func() bool { return ts.sched.Stats().Running == 1 }, 10*time.Second, time.Millisecond)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out map[string]any
			r := ts.post(t, "/v1/completions", greedy("Once upon a time", 100), &out)
			if r.StatusCode == 429 {
				require.Equal(t, "1", r.Header.Get("Retry-After"))
				require.Equal(t, "server_busy", out["error"].(map[string]any)["code"])
			}
			codes <- r.StatusCode
		}()
	}
	n := map[int]int{}
	for range 2 { // the two refusals come back while the gate is shut
		select {
		case c := <-codes:
			n[c]++
		case <-time.After(10 * time.Second):
			close(gate)
			require.FailNow(t, "no refusal within 10 s", "codes so far: %v", n)
		}
	}
	close(gate)
	wg.Wait()
	close(codes)
	for c := range codes {
		n[c]++
	}
	require.Equal(t, map[int]int{200: 2, 429: 2}, n, "one runs, one waits, two are turned away")
}

// TestDisconnect: a client that goes away frees its sequence's blocks at once.
func TestDisconnect(t *testing.T) {
	ts := startServer(t, serverOptions{sched: sched.Config{OnStep: func(_, _ int, took time.Duration) {
		time.Sleep(2*time.Millisecond - took)
	}}})
	for _, stream := range []bool{true, false} {
		ctx, cancel := context.WithCancel(context.Background())
		req := greedy("Once upon a time", 400)
		req["stream"] = stream
		req["n"] = 2
		b, _ := json.Marshal(req)
		hr, _ := http.NewRequestWithContext(ctx, "POST", ts.url+"/v1/completions", bytes.NewReader(b))
		done := make(chan struct{})
		go func() {
			defer close(done)
			resp, err := http.DefaultClient.Do(hr)
			if err == nil {
				_, _ = bufio.NewReader(resp.Body).ReadString('\n')
				time.Sleep(50 * time.Millisecond)
				resp.Body.Close()
			}
		}()
		require.Eventually(t, func() bool { return ts.sched.Stats().BlocksUsed > 0 }, 5*time.Second, time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		cancel()
		<-done
		require.Eventually(t, func() bool {
			st := ts.sched.Stats()
			return st.BlocksUsed == 0 && st.Running == 0 && st.Reserved == 0
		}, time.Second, time.Millisecond, "stream=%v", stream)
	}
}

// TestShutdown: in-flight requests finish within the grace period and
// Run returns; past the grace period they are cut off.
func TestShutdown(t *testing.T) {
	slow := sched.Config{OnStep: func(_, _ int, took time.Duration) { time.Sleep(2*time.Millisecond - took) }}
	ts := startServer(t, serverOptions{sched: slow})
	req := greedy("Once upon a time", 100)
	req["stream"] = true
	b, _ := json.Marshal(req)
	resp, err := http.Post(ts.url+"/v1/completions", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	ts.stop() // like SIGTERM
	events := sse(t, resp.Body)
	resp.Body.Close()
	require.Equal(t, "[DONE]", events[len(events)-1])
	require.Len(t, events, 100+2, "every token, the finish chunk and [DONE]")
	require.NoError(t, <-ts.done)
	ts.done <- nil // for the cleanup
	_, err = http.Get(ts.url + "/health")
	require.Error(t, err, "no longer listening")

	short := startServer(t, serverOptions{sched: slow, grace: 100 * time.Millisecond})
	req["max_tokens"] = 400
	b, _ = json.Marshal(req)
	resp, err = http.Post(short.url+"/v1/completions", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	start := time.Now()
	short.stop()
	events = sse(t, resp.Body)
	resp.Body.Close()
	require.NoError(t, <-short.done)
	short.done <- nil
	require.Less(t, time.Since(start), 3*time.Second)
	require.Equal(t, "[DONE]", events[len(events)-1])
	require.Contains(t, events[len(events)-2], `"error"`)
}

// TestPrefixCacheUsage: with the prefix cache on, a second request that
// shares a long prompt reports the reused tokens in
// usage.prompt_tokens_details.cached_tokens, returns the same greedy text,
// and the metrics count them.
func TestPrefixCacheUsage(t *testing.T) {
	ts := startServer(t, serverOptions{sched: sched.Config{PrefixCache: true}})
	long := "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her big red ball."
	var first, second CompletionResponse
	require.Equal(t, 200, ts.post(t, "/v1/completions", greedy(long, 12), &first).StatusCode)
	require.Nil(t, first.Usage.PromptTokensDetails, "nothing cached before")
	require.Equal(t, 200, ts.post(t, "/v1/completions", greedy(long, 12), &second).StatusCode)
	require.Equal(t, first.Choices[0].Text, second.Choices[0].Text)
	require.NotNil(t, second.Usage.PromptTokensDetails)
	cached := second.Usage.PromptTokensDetails.CachedTokens
	require.Positive(t, cached)
	require.Less(t, cached, second.Usage.PromptTokens)
	require.Zero(t, cached%16)

	resp, err := http.Get(ts.url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), fmt.Sprintf("loom_prefix_cache_tokens_total %d\n", cached))
	require.Contains(t, string(body), "loom_kv_blocks_cached ")
}

// TestJSONSchemaFormat: response_format json_schema constrains every
// choice, streamed or not, to an instance of the schema: a reply that stops
// by itself decodes into the schema's shape with its enum and bounds held,
// one cut by max_tokens is a prefix the schema's automaton accepts.
func TestJSONSchemaFormat(t *testing.T) {
	ts := startServer(t, serverOptions{})
	const schema = `{"type": "object", "additionalProperties": false, "required": ["name", "mood", "friends", "age"],
	  "properties": {"name": {"type": "string", "maxLength": 12}, "mood": {"enum": ["happy", "sad"]},
	    "friends": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 2}, "age": {"type": "integer"},
	    "pet": {"type": ["string", "null"], "maxLength": 6}}}`
	compiled, err := constrain.CompileSchema([]byte(schema))
	require.NoError(t, err)
	rf := map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "person", "strict": true, "schema": json.RawMessage(schema)}}
	check := func(i int, text, finish string) {
		st := compiled.Start()
		for k := range len(text) {
			require.True(t, st.Feed(text[k]), "choice %d: %q at %d", i, text, k)
		}
		if finish == "length" {
			return
		}
		require.Equal(t, "stop", finish, "choice %d", i)
		require.True(t, st.Done(), "choice %d: %q", i, text)
		var v struct {
			Name    string   `json:"name"`
			Mood    string   `json:"mood"`
			Friends []string `json:"friends"`
			Age     *int64   `json:"age"`
			Pet     *string  `json:"pet"`
		}
		d := json.NewDecoder(strings.NewReader(text))
		d.DisallowUnknownFields()
		require.NoError(t, d.Decode(&v), "choice %d: %q", i, text)
		require.Contains(t, []string{"happy", "sad"}, v.Mood)
		require.LessOrEqual(t, len(v.Friends), 2)
		require.NotNil(t, v.Age)
	}
	req := map[string]any{"model": "stories260K", "messages": []map[string]any{{"role": "user", "content": "Who are you?"}},
		"response_format": rf, "max_tokens": 300, "temperature": 1.0, "seed": 3, "n": 6}
	var resp ChatResponse
	require.Equal(t, 200, ts.post(t, "/v1/chat/completions", req, &resp).StatusCode)
	require.Len(t, resp.Choices, 6)
	stopped := 0
	for i, c := range resp.Choices {
		check(i, *c.Message.Content, *c.FinishReason)
		if *c.FinishReason == "stop" {
			stopped++
		}
	}
	require.Positive(t, stopped, "some replies complete within max_tokens")

	req["n"] = 1
	st := streamChat(t, ts, req)
	check(0, st.content.String(), st.reason)

	// The same on /v1/completions (vLLM's extension).
	comp := map[string]any{"model": "stories260K", "prompt": "JSON:", "response_format": rf, "max_tokens": 300, "temperature": 1.0, "seed": 4, "n": 3}
	var cr CompletionResponse
	require.Equal(t, 200, ts.post(t, "/v1/completions", comp, &cr).StatusCode)
	for i, c := range cr.Choices {
		check(i, c.Text, *c.FinishReason)
	}
}

// TestJSONMode: response_format json_object constrains every choice to a
// JSON object: a reply that stops by itself is valid JSON (finish "stop"),
// one cut by max_tokens a prefix of one; streamed the same.
func TestJSONMode(t *testing.T) {
	ts := startServer(t, serverOptions{})
	req := map[string]any{"model": "stories260K", "messages": []map[string]any{{"role": "user", "content": "Give me JSON"}},
		"response_format": map[string]any{"type": "json_object"}, "max_tokens": 400, "temperature": 1.2, "seed": 5, "n": 6}
	var resp ChatResponse
	require.Equal(t, 200, ts.post(t, "/v1/chat/completions", req, &resp).StatusCode)
	require.Len(t, resp.Choices, 6)
	for i, c := range resp.Choices {
		text := *c.Message.Content
		require.True(t, strings.HasPrefix(text, "{"), "choice %d: %q", i, text)
		if *c.FinishReason == "stop" {
			require.True(t, json.Valid([]byte(text)), "choice %d: %q", i, text)
		} else {
			require.Equal(t, "length", *c.FinishReason)
			var j constrain.JSON
			for k := range len(text) {
				require.True(t, j.Feed(text[k]), "choice %d: %q at %d", i, text, k)
			}
		}
	}
}

// TestStopTokenIDs: vLLM's stop_token_ids end a choice at a token of the
// story (finish stop, the token not in the text), min_tokens holds that
// end off, and ignore_eos leaves only the stop ids as ends.
func TestStopTokenIDs(t *testing.T) {
	ts := startServer(t, serverOptions{})
	req := greedy("Once upon a time", 40)
	req["logprobs"] = 0
	var full CompletionResponse
	require.Equal(t, 200, ts.post(t, "/v1/completions", req, &full).StatusCode)
	var p, all TokenizeResponse
	require.Equal(t, 200, ts.post(t, "/tokenize", map[string]any{"model": "stories260K", "prompt": "Once upon a time"}, &p).StatusCode)
	require.Equal(t, 200, ts.post(t, "/tokenize", map[string]any{"model": "stories260K", "prompt": "Once upon a time" + full.Choices[0].Text}, &all).StatusCode)
	id := all.Tokens[len(p.Tokens)+10] // the story's 11th token

	delete(req, "logprobs")
	req["stop_token_ids"] = []int32{id}
	var stopped CompletionResponse
	require.Equal(t, 200, ts.post(t, "/v1/completions", req, &stopped).StatusCode)
	require.Equal(t, "stop", *stopped.Choices[0].FinishReason)
	require.True(t, strings.HasPrefix(full.Choices[0].Text, stopped.Choices[0].Text))
	require.Less(t, len(stopped.Choices[0].Text), len(full.Choices[0].Text))

	req["min_tokens"] = 30
	var held CompletionResponse
	require.Equal(t, 200, ts.post(t, "/v1/completions", req, &held).StatusCode)
	require.GreaterOrEqual(t, held.Usage.CompletionTokens, 30)

	model := func(id int32) bool { return id == 2 }
	isEnd, e := endTokens(model, &samplingFields{IgnoreEOS: true, StopTokenIDs: []int64{7}}, 100)
	require.Nil(t, e)
	require.False(t, isEnd(2))
	require.True(t, isEnd(7))
	isEnd, _ = endTokens(model, &samplingFields{StopTokenIDs: []int64{7}}, 100)
	require.True(t, isEnd(2) && isEnd(7) && !isEnd(3))
	for body, param := range map[string]string{
		`{"model": "stories260K", "prompt": "x", "stop_token_ids": [99999]}`:        "stop_token_ids",
		`{"model": "stories260K", "prompt": "x", "max_tokens": 5, "min_tokens": 6}`: "min_tokens",
		`{"model": "stories260K", "prompt": "x", "min_tokens": -1}`:                 "min_tokens",
	} {
		var eb ErrorBody
		require.Equal(t, 400, ts.post(t, "/v1/completions", body, &eb).StatusCode, body)
		require.Equal(t, param, *eb.Error.Param, body)
	}
}
