package hf

import (
	"encoding/json"
	"testing"

	"github.com/loomllm/loom/model"
	"github.com/loomllm/loom/model/gguf"
)

// FuzzConfig feeds arbitrary config.json bytes through the hyperparameter
// mapping and the tensor table: errors, never panics or huge tables.
// Run by hand: go test -run '^$' -fuzz FuzzConfig ./model/hf
func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{"model_type":"llama","hidden_size":64,"intermediate_size":192,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":128,"vocab_size":512,"rope_scaling":{"rope_type":"llama3","factor":8}}`))
	f.Add([]byte(`{"model_type":"gpt2","n_embd":64,"n_layer":2,"n_head":4,"n_positions":128,"vocab_size":512,"n_inner":null}`))
	f.Add([]byte(`{"model_type":"qwen2","hidden_size":896,"rope_parameters":{"rope_theta":1e6},"partial_rotary_factor":0.5}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c config
		if json.Unmarshal(data, &c) != nil {
			return
		}
		cfg, err := c.toConfig("config.json", "fuzz")
		if err != nil {
			return
		}
		m := &model.Model{Config: cfg, Tensors: map[string]*model.Tensor{"x": {}}}
		if err := gguf.Check(m); err == nil {
			t.Fatalf("a model with no real tensors passed the check: %+v", cfg)
		}
	})
}

// FuzzTokenizer feeds arbitrary tokenizer.json bytes to the vocabulary
// decoder. Run by hand: go test -run '^$' -fuzz FuzzTokenizer ./model/hf
func FuzzTokenizer(f *testing.F) {
	f.Add([]byte(`{"added_tokens":[{"id":3,"content":"<s>","special":true}],"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"],"byte_fallback":true,"unk_token":"a"}}`))
	f.Add([]byte(`{"pre_tokenizer":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[["a","b"]]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var tj tokenizerJSON
		if json.Unmarshal(data, &tj) != nil {
			return
		}
		var spec model.TokenizerSpec
		if decodeVocab("tokenizer.json", &tj, &spec) != nil {
			return
		}
		if len(spec.Tokens) != len(spec.Types) || len(spec.Tokens) > len(tj.Model.Vocab)+len(tj.AddedTokens)+maxHoles {
			t.Fatalf("%d tokens, %d types", len(spec.Tokens), len(spec.Types))
		}
	})
}
