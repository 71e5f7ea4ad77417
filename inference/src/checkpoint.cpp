// A checkpoint folder, opened and checked against the tensors its config implies; what it holds
// and costs (describe).
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "inventory.hpp"
#include "kv_cache.hpp"
#include "safetensors.hpp"
#include "warren/inference/model.hpp"

namespace warren::inference {

namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

// The shard file names the index lists, in their order of first appearance, and which shard
// each tensor is in.
struct Index {
  std::vector<std::string> shards;
  std::map<std::string, std::string, std::less<>> shard_of;
};

Result<Index> read_index(const std::string& dir) {
  const std::string path = dir + "/" + kIndexName;
  if (!is_file(path)) {
    if (is_file(dir + "/" + kSingleName)) return Index{{kSingleName}, {}};
    return tl::unexpected(
        Error{dir + ": not a checkpoint (no " + kIndexName + " or " + kSingleName + ")"});
  }
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  const auto json = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object() || !json.contains("weight_map") ||
      !json["weight_map"].is_object())
    return tl::unexpected(Error{path + ": not an index (no weight_map object)"});
  Index index;
  for (const auto& [tensor, shard] : json["weight_map"].items()) {
    // A shard is a file in the checkpoint's own folder, never a path elsewhere.
    if (!shard.is_string() || shard.get<std::string>().find('/') != std::string::npos ||
        shard.get<std::string>().empty() || shard.get<std::string>()[0] == '.')
      return tl::unexpected(Error{path + ": tensor " + tensor + ": its shard is not a file name"});
    const std::string name = shard.get<std::string>();
    if (std::find(index.shards.begin(), index.shards.end(), name) == index.shards.end())
      index.shards.push_back(name);
    index.shard_of.emplace(tensor, name);
  }
  return index;
}

struct Stored {
  DType dtype;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;
  std::size_t file;  // index into State::files
};

}  // namespace

struct Checkpoint::State {
  Config config;
  std::string dir;
  std::vector<MappedFile> files;
  std::vector<std::string> file_names;
  std::map<std::string, Stored, std::less<>> tensors;
};

Checkpoint::Checkpoint(std::unique_ptr<State> state) : state_(std::move(state)) {}

// The engine reads every weight for its first tokens; faulted in one page at a time that cost the
// small preset's first decoded tokens most of their time (a page's first touch is about 10 us on
// a paravirtualised guest, and the small preset is 600,000 pages). One madvise a shard maps them
// all at once.
void Checkpoint::populate() const {
  for (const MappedFile& file : state_->files) file.populate();
}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

const Config& Checkpoint::config() const {
  return state_->config;
}
const std::string& Checkpoint::dir() const {
  return state_->dir;
}

Result<TensorView> Checkpoint::tensor(std::string_view name) const {
  auto it = state_->tensors.find(name);
  if (it == state_->tensors.end())
    return tl::unexpected(Error{"tensor " + std::string(name) + ": not in " + state_->dir});
  const Stored& s = it->second;
  return TensorView{it->first, s.dtype, s.shape, s.data, state_->file_names[s.file]};
}

std::vector<TensorView> Checkpoint::tensors() const {
  std::vector<TensorView> all;
  for (const auto& [name, s] : state_->tensors)
    all.push_back({name, s.dtype, s.shape, s.data, state_->file_names[s.file]});
  return all;
}

Result<Checkpoint> Checkpoint::open(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return tl::unexpected(Error{dir + ": not a folder"});
  auto state = std::make_unique<State>();
  state->dir = dir;
  if (!is_file(dir + "/config.json"))
    return tl::unexpected(Error{dir + ": not a checkpoint (no config.json)"});
  auto config = load_config(dir + "/config.json");
  if (!config) return tl::unexpected(config.error());
  state->config = std::move(*config);

  auto index = read_index(dir);
  if (!index) return tl::unexpected(index.error());
  for (const std::string& shard : index->shards) {
    auto file = MappedFile::open(dir + "/" + shard);
    if (!file) return tl::unexpected(file.error());
    auto entries = read_safetensors(*file, shard);
    if (!entries) return tl::unexpected(entries.error());
    const std::size_t file_index = state->files.size();
    for (auto& e : *entries) {
      auto listed = index->shard_of.find(e.name);
      // With an index, a tensor counts in the shard the index names for it (and only there).
      if (!index->shard_of.empty() && (listed == index->shard_of.end() || listed->second != shard))
        return tl::unexpected(
            Error{shard + ": tensor " + e.name + ": not where " + kIndexName + " puts it"});
      if (!state->tensors.emplace(e.name, Stored{e.dtype, e.shape, e.data, file_index}).second)
        return tl::unexpected(Error{shard + ": tensor " + e.name + ": stored twice"});
    }
    state->files.push_back(std::move(*file));
    state->file_names.push_back(shard);
  }
  for (const auto& [tensor, shard] : index->shard_of)
    if (!state->tensors.contains(tensor))
      return tl::unexpected(
          Error{shard + ": tensor " + tensor + ": missing (" + kIndexName + " lists it there)"});

  // Every tensor the config implies, as the config implies it; nothing else.
  const auto inventory = checkpoint_inventory(state->config);
  std::map<std::string_view, const TensorSpec*> expected;
  for (const auto& spec : inventory) expected.emplace(spec.name, &spec);
  for (const auto& spec : inventory) {
    auto it = state->tensors.find(spec.name);
    if (it == state->tensors.end())
      return tl::unexpected(
          Error{"tensor " + spec.name + ": missing from " + dir + " (config.json implies it)"});
    const Stored& s = it->second;
    const std::string where = state->file_names[s.file] + ": tensor " + spec.name + ": ";
    if (s.dtype != spec.dtype)
      return tl::unexpected(Error{where + "dtype " + std::string(dtype_name(s.dtype)) +
                                  ", expected " + std::string(dtype_name(spec.dtype))});
    if (s.shape != spec.shape)
      return tl::unexpected(
          Error{where + "shape " + shape_text(s.shape) + ", expected " + shape_text(spec.shape)});
  }
  for (const auto& [name, s] : state->tensors)
    if (!expected.contains(name))
      return tl::unexpected(Error{state->file_names[s.file] + ": tensor " + name +
                                  ": not a tensor of this config (config.json does not imply it)"});
  return Checkpoint(std::move(state));
}

namespace {

// Bytes of one KV row and of one indexer key, as the engine's cache stores them (kv_cache.hpp):
// 584 for V4's 448 + 64 dims (as SGLang stores them too), 68 for 128 dims.
std::uint64_t kv_entry_bytes(const Config& c) {
  return RowFormat(RowKind::Kv, static_cast<std::size_t>(c.head_dim),
                   static_cast<std::size_t>(c.qk_rope_head_dim))
      .bytes();
}

std::uint64_t indexer_entry_bytes(const Config& c) {
  return RowFormat(RowKind::IndexerKey, static_cast<std::size_t>(c.index_head_dim)).bytes();
}

// A compressor's partial blocks holding `tokens` tokens: their kv and gate projections, 2 dim wide
// where CSA blocks overlap (ratio 4), in double as the engine keeps them (forward.hpp's
// CompressorState: they are activations, not yet quantised).
std::uint64_t compressor_tokens_bytes(int ratio, std::int64_t dim, std::uint64_t tokens) {
  const auto width = static_cast<std::uint64_t>(ratio == 4 ? 2 * dim : dim);
  return tokens * 2 * width * sizeof(double);
}

// At most: the block being filled and, for overlapping blocks, the whole one before.
std::uint64_t compressor_state_bytes(int ratio, std::int64_t dim) {
  return compressor_tokens_bytes(ratio, dim,
                                 static_cast<std::uint64_t>(ratio * (ratio == 4 ? 2 : 1)));
}

}  // namespace

ModelInfo describe(const Config& c) {
  ModelInfo info;
  const double routed_share =
      static_cast<double>(c.num_experts_per_tok) / static_cast<double>(c.n_routed_experts);
  for (const auto& spec : checkpoint_inventory(c)) {
    const std::uint64_t bytes = tensor_bytes(spec.dtype, spec.shape);
    info.bytes_by_dtype[std::string(dtype_name(spec.dtype))] += bytes;
    info.file_bytes += bytes;
    const bool scale = spec.name.ends_with(".scale");
    const std::uint64_t values =
        scale ? 0 : element_count(spec.shape) * (spec.dtype == DType::I8 ? 2 : 1);
    if (spec.role != TensorRole::Mtp) info.parameters += values;
    switch (spec.role) {
      case TensorRole::Embedding:
        info.active_parameters += static_cast<std::uint64_t>(spec.shape[1]);
        info.active_weight_bytes += static_cast<std::uint64_t>(spec.shape[1]) * 2;
        break;
      case TensorRole::Head:
        info.head_parameters += values;
        [[fallthrough]];
      case TensorRole::Dense:
        info.active_parameters += values;
        info.active_weight_bytes += bytes;
        break;
      case TensorRole::RoutedExpert:
        info.active_parameters +=
            static_cast<std::uint64_t>(static_cast<double>(values) * routed_share);
        info.active_weight_bytes +=
            static_cast<std::uint64_t>(static_cast<double>(bytes) * routed_share);
        break;
      case TensorRole::Mtp:
        info.mtp_parameters += values;
        break;
    }
  }
  const std::uint64_t entry = kv_entry_bytes(c);
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int ratio = c.compress_ratios[static_cast<std::size_t>(l)];
    info.kv_fixed_bytes += static_cast<std::uint64_t>(c.sliding_window) * entry;
    if (ratio == 0) continue;
    info.kv_bytes_per_token += static_cast<double>(entry) / ratio;
    info.kv_fixed_bytes += compressor_state_bytes(ratio, c.head_dim);
    if (ratio == 4) {
      info.kv_bytes_per_token += static_cast<double>(indexer_entry_bytes(c)) / ratio;
      info.kv_fixed_bytes += compressor_state_bytes(4, c.index_head_dim);
    }
  }
  return info;
}

std::uint64_t kv_bytes_read(const Config& c, std::int64_t length) {
  const std::uint64_t entry = kv_entry_bytes(c);
  std::uint64_t bytes = 0;
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int ratio = c.compress_ratios[static_cast<std::size_t>(l)];
    bytes += static_cast<std::uint64_t>(std::min(length, c.sliding_window)) * entry;
    if (ratio == 0) continue;
    const auto blocks = static_cast<std::uint64_t>(length / ratio);
    if (ratio == 128) bytes += blocks * entry;
    if (ratio == 4)
      bytes += std::min(blocks, static_cast<std::uint64_t>(c.index_topk)) * entry +
               blocks * indexer_entry_bytes(c);
  }
  return bytes;
}

std::uint64_t kv_cache_bytes(const Config& c, std::int64_t length) {
  const std::uint64_t entry = kv_entry_bytes(c), key = indexer_entry_bytes(c);
  // A compressor of `dim` at `ratio`: its entries, and the tokens of the block being filled and,
  // for overlapping CSA blocks, of the whole block before.
  auto compressor = [&](int ratio, std::int64_t dim, std::uint64_t entry_bytes) {
    const auto partial = static_cast<std::uint64_t>(length % ratio) +
                         (ratio == 4 && length >= ratio ? static_cast<std::uint64_t>(ratio) : 0);
    return static_cast<std::uint64_t>(length / ratio) * entry_bytes +
           compressor_tokens_bytes(ratio, dim, partial);
  };
  std::uint64_t bytes = 0;
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int ratio = c.compress_ratios[static_cast<std::size_t>(l)];
    bytes += static_cast<std::uint64_t>(std::min(length, c.sliding_window)) * entry;
    if (ratio > 0) bytes += compressor(ratio, c.head_dim, entry);
    if (ratio == 4) bytes += compressor(4, c.index_head_dim, key);
  }
  return bytes;
}

ModelInfo describe(const Checkpoint& checkpoint) {
  ModelInfo info = describe(checkpoint.config());
  info.bytes_by_dtype.clear();
  info.file_bytes = 0;
  for (const auto& t : checkpoint.tensors()) {
    info.bytes_by_dtype[std::string(dtype_name(t.dtype))] += t.data.size();
    info.file_bytes += t.data.size();
  }
  return info;
}

}  // namespace warren::inference
