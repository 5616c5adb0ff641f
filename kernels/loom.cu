// loom.cu: the one translation unit nvcc compiles into loom.fatbin (see
// CMakeLists.txt). Every kernel file is included here, so shared helpers and
// the device error word (common.cuh) exist once, and package gpu loads one
// module holding every kernel by its extern "C" name.
//
// The build does not use --use_fast_math: rope.cu relies on the accurate
// sincosf, and the element-wise kernels on accurate expf and tanhf.
#include "common.cuh"

#include "argmax.cu"
#include "elementwise.cu"
#include "embed.cu"
#include "kvcache.cu"
#include "norm.cu"
#include "rope.cu"

// Engineer B's matrix and attention kernels (kernels/ABI.md).
#if __has_include("matmul.cu")
#include "matmul.cu"
#endif
#if __has_include("attention.cu")
#include "attention.cu"
#endif
