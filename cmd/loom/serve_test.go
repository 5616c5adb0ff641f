package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/loomllm/loom/internal/testdata"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeSIGTERM runs loom serve in-process (with the model as its own
// draft model): it serves on a free loopback port, answers a completion
// with the text loom run makes, and on SIGTERM finishes and returns
// success (exit status 0).
func TestServeSIGTERM(t *testing.T) {
	model := testdata.Path(t, "models/stories260K.gguf")
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run([]string{"serve", "--model", model, "--port", "0", "--device", "cpu", "--threads", "2",
			"--ctx", "256", "--max-batch", "4", "--api-key", "k", "--grace", "5s",
			"--draft-model", model}, io.Discard, &stderr) // the model drafting for itself
	}()
	addr := regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+)`)
	require.Eventually(t, func() bool { return addr.MatchString(stderr.String()) }, 30*time.Second, 10*time.Millisecond, stderr.String())
	url := addr.FindStringSubmatch(stderr.String())[1]
	require.Contains(t, stderr.String(), "model=stories260K")
	require.Contains(t, stderr.String(), "kv_blocks=64")

	body := `{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0}`
	req, _ := http.NewRequestWithContext(context.Background(), "POST", url+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var out struct {
		Choices []struct{ Text string }
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	// The greedy text loom run makes without drafts.
	c, want, errOut := runLoom("run", "--model", model, "--device", "cpu", "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "8")
	require.Zero(t, c, errOut)
	require.Equal(t, strings.TrimPrefix(want, "Once upon a time"), out.Choices[0].Text)

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	select {
	case c := <-code:
		require.Zero(t, c, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("loom serve did not stop on SIGTERM")
	}
	require.Contains(t, stderr.String(), "stopped")
}

func TestServeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--kv-blocks", "10", "--kv-memory", "1MiB"},
		{"serve", "--kv-memory", "lots"},
		{"serve", "--port", "70000"},
		{"serve", "--max-batch", "0"},
		{"serve", "--max-queue", "0"},
		{"serve", "--log-level", "chatty"},
		{"serve", "extra"},
	} {
		c, _, errOut := runLoom(args...)
		require.Equal(t, 2, c, "%v: %s", args, errOut)
	}
	c, _, errOut := runLoom("serve", "--model", testdata.Path(t, "models/stories260K.gguf"), "--chat-template", "/no/such/file")
	require.Equal(t, 1, c, errOut)

	for in, want := range map[string]int64{"": 0, "1024": 1024, "512MiB": 512 << 20, "8GiB": 8 << 30, "1.5K": 1536, "2 GB": 2 << 30} {
		got, err := parseBytes(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"x", "-1", "5XB", "1e30G"} {
		_, err := parseBytes(in)
		require.Error(t, err, in)
	}
	require.Equal(t, "stories260K", modelName("/a/b/stories260K.gguf"))
	require.Equal(t, "Llama-3-8B", modelName("/models/Llama-3-8B/"))
	require.True(t, isLoopback("127.0.0.1"))
	require.True(t, isLoopback("::1"))
	require.False(t, isLoopback("0.0.0.0"))
}
