// The `.kpb` file: a Module (graph + weight store) as a kiln.pb.Module protobuf with a format
// version (schema in ir/kiln.proto), plus the whole-file helpers kiln's file formats share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/module.h"
#include "ir/status.h"

namespace kiln::ir {

/// Bumped when a reader of the previous version would misread a new file. Adding optional
/// fields or ops does not bump it (old readers reject unknown ops by name).
inline constexpr uint32_t kKpbFormatVersion = 1;

/// Writes `m` to `path` atomically (see writeFileAtomic).
Status writeKpb(const std::string& path, const Module& m);
/// Reads and fully validates a `.kpb`: format version, op names, operand ids (defined
/// before use, no duplicates), arity, attribute kinds, tensor sizes, and the result types
/// against the op table's shape rules. Garbage gives a Status, never a crash.
Expected<Module> readKpb(const std::string& path);

/// The protobuf bytes of `m`. Modules over 2 GiB (protobuf's limit) give an empty string;
/// writeKpb reports that case as an error.
std::string serializeModule(const Module& m);
/// Parses and validates like readKpb; `what` names the input in messages.
Expected<Module> parseModule(std::string_view bytes, std::string_view what);

// ---- whole-file helpers shared by the file formats (.kpb, .npy, .npz) ----

/// The whole file; a missing file gives "cannot open 'x': No such file or directory".
Expected<std::vector<std::byte>> readFileBytes(const std::string& path);
/// `path.tmp.<pid>`: where atomic writers put their bytes before renaming.
std::string tempPathFor(const std::string& path);
/// Renames `tmp` onto `path` (or removes `tmp` and reports why not).
Status commitTempFile(const std::string& tmp, const std::string& path);
/// Writes `bytes` to `tempPathFor(path)`, flushes it and renames it onto `path`; on any
/// failure the temporary is removed and `path` is untouched.
Status writeFileAtomic(const std::string& path, std::span<const std::byte> bytes);

}  // namespace kiln::ir
