package loom_test

import (
	"context"
	"fmt"
	"log"

	"github.com/loomllm/loom"
)

// The built-in demo model needs no file: its weights are fixed random
// numbers, so it writes words without meaning.
func ExampleDemo() {
	m, err := loom.Demo(loom.Options{Device: "cpu"})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	text, err := m.GenerateText(context.Background(), "Once upon a time", loom.GenerateOptions{MaxTokens: 6})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(text)
	// Output:  by felt when star it felt
}

// Tokens arrive one at a time; breaking out of the loop, or cancelling the
// context, stops the generation.
func ExampleModel_Generate() {
	m, err := loom.Load("model.gguf", loom.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	opt := loom.GenerateOptions{MaxTokens: 100, Temperature: 0.8, TopP: 0.95, Seed: 42, Stop: []string{"\n\n"}}
	for tok, err := range m.Generate(context.Background(), "Once upon a time", opt) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(tok.Text)
	}
}
