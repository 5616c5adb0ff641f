// Package gguf reads and writes GGUF files, the model format of llama.cpp
// and ggml (versions 2 and 3).
//
// A GGUF file is a header (magic "GGUF", version, tensor and metadata
// counts), typed key/value metadata, a tensor directory (name, shape ne,
// ggml type, offset), then the tensor data, each tensor aligned to
// general.alignment (32 by default). Open memory-maps the file and parses
// only the header, so describing a multi-gigabyte model reads a few pages;
// Parse does the same for bytes already in memory. Every count, length and
// offset is checked against the file's size before it is used, so a hostile
// file yields an error naming the file, the key or tensor and the byte
// offset, never a panic or an allocation beyond a small multiple of the
// file's size.
//
// Load (and File.Model) map a file onto model.Model: llama, mistral, qwen2
// and qwen3 files become model.ArchLlama (qwen2 and qwen3 with RopeNeoX set,
// as llama.cpp runs them, and qwen3 with QKNorm; llama files hold Q/K rows
// permuted for the interleaved layout),
// gpt2 files model.ArchGPT2. Tensor names are kept; a tensor with ne =
// [ne0, ne1, ...] becomes Rows = ne1·ne2·ne3, Cols = ne0. Llama 3.1 files
// keep their RoPE frequency scaling as the rope_freqs.weight tensor, which
// is passed through.
//
// Tensor types and how loom's backends consume them:
//
//	f32, f16, bf16, q8_0   native weight types of every backend
//	q4_0, q4_1, q5_0,      loaded as stored; a backend that cannot multiply
//	q5_1, q2_k, q3_k,      by one converts at upload to Q8_0 (exactly for
//	q4_k, q5_k, q6_k,      q4_0, q5_0 and iq4_nl: quant.ExactQ8_0; else
//	iq4_nl, iq4_xs         quant.Dequantize, then Q8_0) or, where rows are
//	                       not a multiple of 32, to F32
//	others (iq2_*, iq3_*,  described by Open and loom info; Load reports
//	iq1_*, tq*, mxfp4)     model.ErrUnsupported
//
// Write and WriteModel produce version 3 files that llama.cpp reads.
package gguf
