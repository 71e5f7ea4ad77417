// safetensors files (huggingface/safetensors, "Format"): an 8-byte little-endian header length,
// a JSON header mapping each tensor's name to its dtype, shape and [begin, end) byte offsets in
// the data that follows, then the data. Files are memory-mapped read-only: weights are never
// copied or expanded up front.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "warren/inference/model.hpp"

namespace warren::inference {

// A file mapped read-only for the life of this object.
class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path);
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Reads the whole file in and maps every page now (checkpoint.cpp says why).
  void populate() const;

 private:
  MappedFile(std::string path, const std::byte* data, std::size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;  // within the file's mapping
};

// The tensors of a mapped safetensors file. A header that is not JSON, a dtype this format does
// not use, offsets outside the file or a size that does not match the shape are errors naming
// the file (`label`) and the tensor.
Result<std::vector<SafetensorsEntry>> read_safetensors(const MappedFile& file,
                                                       const std::string& label);

// Writes one safetensors file whose tensors are known up front (names, dtypes, shapes) and whose
// bytes are produced one tensor after another, in order, by `fill` (so that a file of many GB
// never sits in memory whole).
struct PlannedTensor {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
};
using TensorFiller = std::function<void(std::size_t index, std::FILE* out)>;
Result<void> write_safetensors(const std::string& path, const std::vector<PlannedTensor>& tensors,
                               const TensorFiller& fill);

std::uint64_t tensor_bytes(DType dtype, const std::vector<std::int64_t>& shape);

}  // namespace warren::inference
