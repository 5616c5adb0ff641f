package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	openai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/require"
)

// TestOpenAIClient talks to the server with a real OpenAI client library.
func TestOpenAIClient(t *testing.T) {
	ts := startServer(t, serverOptions{apiKey: "test-key"})
	cfg := openai.DefaultConfig("test-key")
	cfg.BaseURL = ts.url + "/v1"
	client := openai.NewClientWithConfig(cfg)
	ctx := context.Background()
	seed := 42

	models, err := client.ListModels(ctx)
	require.NoError(t, err)
	require.Equal(t, "stories260K", models.Models[0].ID)

	// Completions. The client cannot send temperature 0 (it omits zero
	// values), so these sample at OpenAI's default temperature with a seed.
	creq := openai.CompletionRequest{Model: "stories260K", Prompt: "Once upon a time", MaxTokens: 24, Seed: &seed, LogProbs: 2}
	comp, err := client.CreateCompletion(ctx, creq)
	require.NoError(t, err)
	require.Len(t, comp.Choices, 1)
	require.NotEmpty(t, comp.Choices[0].Text)
	require.Equal(t, "length", comp.Choices[0].FinishReason)
	require.Equal(t, 24, comp.Usage.CompletionTokens)
	require.Len(t, comp.Choices[0].LogProbs.Tokens, 24)

	creq.Stream = true
	creq.LogProbs = 0
	cs, err := client.CreateCompletionStream(ctx, creq)
	require.NoError(t, err)
	var text strings.Builder
	finish := ""
	for {
		r, err := cs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		text.WriteString(r.Choices[0].Text)
		if r.Choices[0].FinishReason != "" {
			finish = r.Choices[0].FinishReason
		}
	}
	cs.Close()
	require.Equal(t, comp.Choices[0].Text, text.String(), "the same seed, streamed or not")
	require.Equal(t, "length", finish)

	// Chat.
	chatReq := openai.ChatCompletionRequest{Model: "stories260K", MaxTokens: 16, Seed: &seed, N: 2,
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleSystem, Content: "Tell a story."},
			{Role: openai.ChatMessageRoleUser, Content: "Once upon a time"}}}
	cr, err := client.CreateChatCompletion(ctx, chatReq)
	require.NoError(t, err)
	require.Len(t, cr.Choices, 2)
	require.Equal(t, openai.ChatMessageRoleAssistant, cr.Choices[0].Message.Role)
	require.Equal(t, openai.FinishReasonLength, cr.Choices[0].FinishReason)
	require.Equal(t, 32, cr.Usage.CompletionTokens)

	chatReq.Stream = true
	chatReq.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	st, err := client.CreateChatCompletionStream(ctx, chatReq)
	require.NoError(t, err)
	texts := make([]strings.Builder, 2)
	var usage *openai.Usage
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if r.Usage != nil {
			usage = r.Usage
		}
		for _, c := range r.Choices {
			texts[c.Index].WriteString(c.Delta.Content)
		}
	}
	st.Close()
	for i := range texts {
		require.Equal(t, cr.Choices[i].Message.Content, texts[i].String())
	}
	require.NotNil(t, usage)
	require.Equal(t, cr.Usage, *usage)

	// Errors arrive as the library's APIError.
	_, err = client.CreateCompletion(ctx, openai.CompletionRequest{Model: "no-such-model", Prompt: "x"})
	var apiErr *openai.APIError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	require.Equal(t, 404, apiErr.HTTPStatusCode)
	require.Equal(t, "model_not_found", apiErr.Code)

	badCfg := openai.DefaultConfig("wrong-key")
	badCfg.BaseURL = ts.url + "/v1"
	_, err = openai.NewClientWithConfig(badCfg).ListModels(ctx)
	require.True(t, errors.As(err, &apiErr))
	require.Equal(t, 401, apiErr.HTTPStatusCode)
}

// TestOpenAIClientTools: the client library's tools, tool_calls history
// and tool messages are accepted by a server whose template describes
// tools (Qwen3's, on stories260K, which answers in prose).
func TestOpenAIClientTools(t *testing.T) {
	ts := startServer(t, serverOptions{template: template(t, "qwen3.jinja")})
	cfg := openai.DefaultConfig("")
	cfg.BaseURL = ts.url + "/v1"
	client := openai.NewClientWithConfig(cfg)
	tool := openai.Tool{Type: openai.ToolTypeFunction, Function: &openai.FunctionDefinition{Name: "get_weather"}}
	seed := 1
	req := openai.ChatCompletionRequest{Model: "stories260K", MaxTokens: 8, Seed: &seed, Tools: []openai.Tool{tool},
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Once upon a time"}}}
	resp, err := client.CreateChatCompletion(context.Background(), req)
	require.NoError(t, err)
	require.Empty(t, resp.Choices[0].Message.ToolCalls)
	require.Equal(t, openai.FinishReasonLength, resp.Choices[0].FinishReason)

	req.Tools = nil
	req.Messages = []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Weather?"},
		{Role: openai.ChatMessageRoleAssistant, ToolCalls: []openai.ToolCall{{ID: "call_1", Type: openai.ToolTypeFunction,
			Function: openai.FunctionCall{Name: "get_weather", Arguments: `{"city": "Paris"}`}}}},
		{Role: openai.ChatMessageRoleTool, ToolCallID: "call_1", Content: "sunny"}}
	resp, err = client.CreateChatCompletion(context.Background(), req)
	require.NoError(t, err)
	require.NotEmpty(t, resp.Choices)
}

// TestToolCallsJSONShape: a reply with calls, as the server writes it,
// decodes into the client library's types, whole and as stream deltas.
func TestToolCallsJSONShape(t *testing.T) {
	_, calls, ok := parseToolCalls(toolsHermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>")
	require.True(t, ok)
	reason := "tool_calls"
	b, err := jsonMarshal(ChatResponse{ID: "x", Object: "chat.completion", Model: "m",
		Choices: []ChatChoice{{Message: &ChatReply{Role: "assistant", ToolCalls: calls}, FinishReason: &reason}}})
	require.NoError(t, err)
	var resp openai.ChatCompletionResponse
	require.NoError(t, json.Unmarshal(b, &resp))
	require.Equal(t, openai.FinishReasonToolCalls, resp.Choices[0].FinishReason)
	tc := resp.Choices[0].Message.ToolCalls
	require.Len(t, tc, 1)
	require.Equal(t, "get_weather", tc[0].Function.Name)
	require.JSONEq(t, `{"city": "Paris"}`, tc[0].Function.Arguments)
	require.Equal(t, calls[0].ID, tc[0].ID)

	zero := 0
	calls[0].Index = &zero
	b, err = jsonMarshal(ChatResponse{ID: "x", Object: "chat.completion.chunk", Model: "m",
		Choices: []ChatChoice{{Delta: &ChatReply{ToolCalls: calls}}}})
	require.NoError(t, err)
	var chunk openai.ChatCompletionStreamResponse
	require.NoError(t, json.Unmarshal(b, &chunk))
	require.Equal(t, 0, *chunk.Choices[0].Delta.ToolCalls[0].Index)
	require.Equal(t, "get_weather", chunk.Choices[0].Delta.ToolCalls[0].Function.Name)
}
