// NumPy tensor files: `.npy` (one array) and `.npz` (a zip of `.npy` members, as written by
// np.savez / np.savez_compressed). Weight stores travel as `.npz` keyed by parameter name.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/status.h"
#include "ir/tensor.h"

namespace kiln::runtime {

// Reading accepts npy format versions 1.0, 2.0 and 3.0 and the dtypes <f4 <f8 <f2 <i8 <i4 |i1
// |u1 |b1 (f32 f64 f16 i64 i32 i8 u8 bool). Big-endian arrays ('>f4') are byte-swapped and
// fortran_order=True arrays are transposed to row-major on load, so numpy files written
// either way load as the same logical tensor. Tensors get ir::defaultLayout(rank); rank > 5
// is an error. Trailing bytes after the array data are an error (the file is not what it
// claims to be).

/// Reads one `.npy` file.
Expected<ir::Tensor> readNpy(const std::string& path);
/// Parses the bytes of a `.npy` file; `what` names it in messages (a path, `w.npz:conv1.weight`).
Expected<ir::Tensor> parseNpy(std::span<const std::byte> bytes, std::string_view what);

/// The bytes of a version 1.0 `.npy` file (2.0 when the header does not fit 64 KiB) holding
/// `t` in logical row-major order: tensors in permuted or blocked layouts (nhwc, nChw16c, …)
/// are converted, bf16 is widened to f32 (numpy has no bfloat16). Fails on a tensor with no
/// data (a default-constructed Tensor).
Expected<std::vector<std::byte>> serializeNpy(const ir::Tensor& t);

/// Writes `path` atomically: the bytes go to `path.tmp.<pid>`, which is renamed onto `path`;
/// on failure the temporary is removed and `path` is left as it was.
Status writeNpy(const std::string& path, const ir::Tensor& t);

/// Reads a `.npz`; each member `name.npy` becomes the entry `name`. Stored and deflated
/// members (including zip64 extras, which np.savez always writes) are read; CRCs are checked.
Expected<ir::WeightStore> readNpz(const std::string& path);
/// Parses the bytes of a `.npz` file; `what` names it in messages.
Expected<ir::WeightStore> parseNpz(std::span<const std::byte> bytes, std::string_view what);

enum class NpzCompression { Stored, Deflated };

/// Writes every entry of `store` as `name.npy` (sorted by name, fixed timestamps, so equal
/// stores give equal files). Atomic like writeNpy. np.load reads the result.
Status writeNpz(const std::string& path, const ir::WeightStore& store,
                NpzCompression compression = NpzCompression::Stored);

}  // namespace kiln::runtime
