// safetensors reading and writing: see safetensors.hpp.
#include "safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

namespace warren::inference {

namespace {

// safetensors' own limit on the header, which a corrupt length would otherwise exceed.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

const std::pair<std::string_view, DType> kDtypeNames[] = {
    {"BF16", DType::BF16},       {"F32", DType::F32}, {"F8_E4M3", DType::F8_E4M3},
    {"F8_E8M0", DType::F8_E8M0}, {"I8", DType::I8},   {"I64", DType::I64},
};

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

std::string_view dtype_name(DType dtype) {
  for (const auto& [name, d] : kDtypeNames)
    if (d == dtype) return name;
  return "?";
}

std::size_t dtype_bytes(DType dtype) {
  switch (dtype) {
    case DType::BF16:
      return 2;
    case DType::F32:
      return 4;
    case DType::I64:
      return 8;
    case DType::F8_E4M3:
    case DType::F8_E8M0:
    case DType::I8:
      return 1;
  }
  return 1;
}

std::uint64_t tensor_bytes(DType dtype, const std::vector<std::int64_t>& shape) {
  std::uint64_t n = dtype_bytes(dtype);
  for (std::int64_t s : shape) n *= static_cast<std::uint64_t>(s);
  return n;
}

Result<MappedFile> MappedFile::open(const std::string& path) {
  // O_NOFOLLOW is not used: checkpoints are the operator's files, and Hugging Face's cache
  // lays them out as links into its blob store.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return tl::unexpected(Error{path + ": " + errno_text()});
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return tl::unexpected(Error{path + ": not a regular file"});
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  void* data = size == 0 ? nullptr : ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (data == MAP_FAILED) return tl::unexpected(Error{path + ": cannot map: " + errno_text()});
  return MappedFile(path, static_cast<const std::byte*>(data), size);
}

void MappedFile::populate() const {
  if (size_ == 0) return;
  void* start = const_cast<std::byte*>(data_);
  // MADV_POPULATE_READ is Linux 5.14's; before it, read-ahead is what can be asked.
  if (::madvise(start, size_, 22 /* MADV_POPULATE_READ */) != 0)
    ::madvise(start, size_, MADV_WILLNEED);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
    path_ = std::move(other.path_);
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

Result<std::vector<SafetensorsEntry>> read_safetensors(const MappedFile& file,
                                                       const std::string& label) {
  const auto bytes = file.bytes();
  auto fail = [&](const std::string& why) { return tl::unexpected(Error{label + ": " + why}); };
  if (bytes.size() < 8) return fail("truncated: shorter than a safetensors header");
  std::uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i)
    header_bytes = (header_bytes << 8) | static_cast<std::uint8_t>(bytes[static_cast<size_t>(i)]);
  if (header_bytes > kMaxHeaderBytes || header_bytes > bytes.size() - 8)
    return fail("truncated or not a safetensors file: its header runs past the end");
  const auto* header_text = reinterpret_cast<const char*>(bytes.data() + 8);
  const auto header = nlohmann::json::parse(header_text, header_text + header_bytes, nullptr,
                                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    return fail("not a safetensors file: its header is not a JSON object");
  const std::span<const std::byte> data = bytes.subspan(8 + header_bytes);

  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    auto tensor_fail = [&](const std::string& why) { return fail("tensor " + name + ": " + why); };
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets"))
      return tensor_fail("its header entry lacks dtype, shape or data_offsets");
    SafetensorsEntry entry{name, DType::BF16, {}, {}};
    bool known = false;
    for (const auto& [dtype_text, dtype] : kDtypeNames)
      if (info["dtype"] == dtype_text) entry.dtype = dtype, known = true;
    if (!known)
      return tensor_fail("dtype " + info["dtype"].dump() + " is not one a V4 checkpoint uses");
    for (const auto& s : info["shape"]) {
      if (!s.is_number_unsigned()) return tensor_fail("its shape is not a list of sizes");
      entry.shape.push_back(s.get<std::int64_t>());
    }
    const auto& offsets = info["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      return tensor_fail("data_offsets is not [begin, end]");
    const auto begin = offsets[0].get<std::uint64_t>(), end = offsets[1].get<std::uint64_t>();
    if (begin > end || end > data.size())
      return tensor_fail("truncated: its bytes [" + std::to_string(begin) + ", " +
                         std::to_string(end) + ") run past the file's " +
                         std::to_string(data.size()) + " bytes of data");
    if (end - begin != tensor_bytes(entry.dtype, entry.shape))
      return tensor_fail(std::to_string(end - begin) + " bytes do not hold its shape");
    entry.data = data.subspan(begin, end - begin);
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<void> write_safetensors(const std::string& path, const std::vector<PlannedTensor>& tensors,
                               const TensorFiller& fill) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::uint64_t size = tensor_bytes(t.dtype, t.shape);
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-aligned, as writers do it
  std::FILE* out = std::fopen(path.c_str(), "wbx");
  if (!out) return tl::unexpected(Error{path + ": " + errno_text()});
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  std::fwrite(length, 1, 8, out);
  std::fwrite(text.data(), 1, text.size(), out);
  for (std::size_t i = 0; i < tensors.size(); ++i) fill(i, out);
  const bool ok = std::ferror(out) == 0;
  if (std::fclose(out) != 0 || !ok)
    return tl::unexpected(Error{path + ": write failed: " + errno_text()});
  return {};
}

}  // namespace warren::inference
