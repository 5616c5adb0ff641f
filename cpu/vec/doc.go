// Package vec holds the innermost loops of loom's CPU backend: dot products
// of a float32 activation vector with a weight row stored as float32, IEEE
// half precision, bfloat16, or GGUF Q8_0/Q4_0 blocks; a four-row F32 dot
// (DotRows) for matrix-vector products and a register-blocked tile
// (DotTile) for matrix-matrix ones, both adding in one canonical order
// (see kern.go); an integer path for the quantized types (QuantizeQ8,
// DotQ8_0Q8, DotQ4_0Q8, the K-quants DotQ2_KQ8, DotQ4_KQ8, DotQ5_KQ8,
// DotQ6_KQ8 and the IQ4 types DotIQ4_NLQ8, DotIQ4_XSQ8);
// exact conversions of a weight row to float32
// (WidenF16, WidenBF16, WidenQ8_0, WidenQ4_0) for tiles that meet many
// activation rows; attention's fused block kernel (AttnBlocks) and value
// sum (AxpyRows); a vectorised exponential behind ExpSum, SwiGLU and
// GELU; ArgMax; and Axpy.
//
// # Two implementations of everything
//
// The routine without a suffix (Dot, DotF16, ...) is the fast path: on
// amd64 with AVX2, FMA and F16C (checked at run time with x/sys/cpu) it runs
// hand-written Go assembly (DotTile also AVX-512 blocks where the CPU has
// AVX512F and AVX512DQ, DotTileQ8_0Q8, DotQ4_KQ8 and DotQ5_KQ8 AVX512-VNNI ones), elsewhere (other architectures, or the purego
// build tag) the plain Go twin. The twin with the Generic suffix
// (DotGeneric, DotF16Generic, ...) is always plain Go and always available,
// so callers can force it and the tests compare the two. Features reports
// which path the fast routines take.
//
// The fast and generic routines compute the same mathematical sum but add
// its terms in a different order (the assembly keeps several independent
// partial sums and uses fused multiply-add), so results differ in the last
// bits, within the usual float32 bound n·2⁻²⁴·Σ|terms|. Dequantization is
// exact in both: every stored weight widens to the same float32 as
// runtime/quant's reference conversions. NaN and infinities propagate as
// in the plain loop.
//
// Weight rows are passed as raw little-endian bytes, exactly as they sit in
// a GGUF or safetensors file, and need no particular alignment.
//
// # Choices, and the measurements behind them
//
// Measured on the development VM (2 cores of an Intel Xeon with AVX-512,
// 48 KiB L1d and 2 MiB L2 per core, a large shared L3), one goroutine,
// 4096 elements, 27 November 2026, as thread CPU time (the VM is shared,
// so wall-clock figures are noisy); "stream" means rows read from a
// 256 MiB matrix, so from memory:
//
//   - Dot keeps 8 accumulators of 8 lanes and reaches about 60 GFLOP/s on
//     L1-resident data and 39 on L2-resident data (64Ki elements), against
//     7 for the plain Go loop; two loads per FMA bound it. DotRows loads
//     each x element once for eight rows, one accumulator per row (eight
//     independent FMA chains hide the FMA latency), which is the canonical
//     order DotTile repeats; a matrix-vector product streaming from memory
//     runs as fast as the earlier four-row, two-accumulator kernel (F32
//     4096×4096, 2 goroutines: 1.44–1.49 ms hot, 2.7–3.1 ms cold).
//   - DotTile multiplies three activation rows by four weight rows in
//     twelve accumulators (seven loads per twelve FMAs, where DotRows needs
//     nine per eight): the F32 prefill product 4096×4096 at 64 rows went
//     from 26 ms (84 GFLOP/s, DotRows per activation row) to 15 ms (140
//     GFLOP/s), 2 goroutines.
//   - Short rows: DotRows prefetches the same place in the next eight rows
//     when a row is shorter than 2·PFD bytes (in-row prefetches PFD ahead
//     would land in the group being read): stories15m/110m decode 2–9%
//     faster.
//   - Attention with tiny heads (stories260K: 8 of 8) is all call overhead
//     and latency when written as per-position dots and axpys: one
//     AttnBlocks call per run of cache blocks (about 16 KiB of keys, so
//     they stay in L1 for every head of the group), each phase (scores,
//     exponentials, value sums) for all heads before the next so that
//     their dependency chains overlap, took a 16-row batch against 80
//     positions from 224 µs to 19 µs.
//   - Every streaming loop prefetches about 4 KiB ahead, one PREFETCHT0 per
//     64 to 128 bytes of weights. The hardware prefetchers stop at 4 KiB
//     page boundaries; software prefetches do not. From memory this made
//     Q8_0 about 1.5 times and Q4_0 about 1.7 times faster (F16/BF16 1.1 to
//     1.3, F32 within noise); on cache-resident data it costs up to 20% in
//     the load-bound F32 loop, less elsewhere.
//   - Quantized blocks find their F16 scale in a 256 KiB table of all 65536
//     conversions (one load, where VCVTPH2PS plus a broadcast would take
//     two more uops on the shuffle and FMA ports the dequantizing loops are
//     bound by).
//   - The float path for Q8_0 (widen 32 int8 with VPMOVSXBD, convert, FMA)
//     runs about 41 GFLOP/s in cache (Q4_0: 32) and is memory-bound when
//     streaming from DRAM. The integer path (quantize x once per product,
//     then VPMADDUBSW on int8 pairs) runs about 64 GFLOP/s in cache for
//     Q8_0 and 55 for Q4_0, so it wins whenever the weights come from
//     cache (a 4096×4096 Q8_0 matrix, 17 MiB, stays in this VM's L3: the
//     product takes 0.75 ms against 1.08 ms on the float path, F32 3.0 to
//     3.6 ms), and ties from DRAM. It costs accuracy (see QuantizeQ8), so
//     both are offered: the caller picks.
//   - A four-row variant of the integer path gained nothing from memory and
//     is not offered.
//   - simd/archsimd (GOEXPERIMENT=simd, Go 1.26): the same 8-accumulator
//     F32 dot written with archsimd.Float32x8 ran 3 to 4 times slower than
//     the assembly (slice-load bounds handling in the loop), and the package
//     has no compatibility promise, so the fast paths are assembly.
//   - AVX-512 is used in one place: DotTile's whole 4×8 blocks, where
//     the FMA rate bounds the work (matrix-matrix products from cache). A
//     ZMM register holds two activation rows' 8-lane accumulators against
//     one weight row (a 256-bit load plus a 256-bit insert; the weight
//     chunk broadcast to both halves), so every lane does exactly the
//     256-bit kernels' arithmetic and the sums stay canonical: the seams
//     with the AVX2 blocks that take the remaining rows and columns do not
//     show, and LOOM_NO_AVX512=1 gives the same bits. This VM runs two
//     512-bit FMAs a cycle (a register-only FMA loop: 226 GFLOP/s per core
//     against 98 with 256 bits). DotTile, one goroutine, 27 November 2026:
//     16×128 at k=64 from 69–71 to 89–91 GFLOP/s, 16×64 at k=172 from
//     77–80 to 107–112, 16×64 at k=4096 from 85–87 to 120–135, 64×16 at
//     k=4096 from 93–96 to 120–132. Dots and matrix-vector products stream
//     their weights and gain little from wider registers.
//   - AVX512-VNNI's VPDPBUSD (uint8 × int8, four products per int32 lane)
//     is used where the weights meet several activation rows or need
//     unpacking: DotTileQ8_0Q8 and DotTileQ4_0Q8 (4×3 blocks, activations
//     offset to uint8 and 128·Σw subtracted, so the int32 lanes are
//     exactly the one-row kernel's: 134 against 60 GFLOP/s pair by pair
//     for Q8_0), DotQ4_KQ8 (73 against 63 with the activation sums
//     hoisted, 57 against 46 before) and DotQ5_KQ8 (61 against 52, its
//     fifth bits merged by VPTESTMB and a byte-masked VPADDB). The IQ4
//     dots look their levels up with VPSHUFB and multiply |level| by
//     x·sign(level) (VPSIGNB) through VPMADDUBSW: 49–52 GFLOP/s. Q2_K,
//     Q3_K and Q6_K (AVX2) take the activations' sums per 16 for their
//     mins or offsets and form each 16-element group's factor once a
//     block: 59–62, 45 and 50–53 GFLOP/s. The
//     one-row Q8_0/Q4_0 dots stream from memory and keep
//     VPMADDUBSW.
package vec
