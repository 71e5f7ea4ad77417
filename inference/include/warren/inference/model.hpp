// warren/inference: the embedded DeepSeek-V4 engine. This header is its surface: a model's
// configuration (Hugging Face config.json, model_type deepseek_v4), its checkpoint (safetensors
// shards in the official layout, memory-mapped), random-weight checkpoints for tests and
// benchmarks, and what a checkpoint costs (parameters, bytes, KV bytes per token).
// docs/inference.md; the architecture's facts: docs/v4-architecture.md.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace warren::inference {

struct Error {
  std::string message;  // one line a user can act on: it names the field, tensor or file
};

template <class T>
using Result = tl::expected<T, Error>;

enum class ScoringFunction { SqrtSoftplus };  // sqrt(softplus(x)): V4's expert scores
enum class ExpertFormat { Fp4, Fp8 };         // routed experts: e2m1 with 1x32 scales, or e4m3

// A config.json of model_type deepseek_v4: every field of the official Flash and Pro configs.
// Fields the engine needs are checked for consistency when read (parse_config); fields it does
// not use (initializer_range, transformers_version, ...) are accepted as published.
struct Config {
  std::int64_t vocab_size = 0, hidden_size = 0;
  std::int64_t num_hidden_layers = 0, num_nextn_predict_layers = 0;  // + MTP layers
  std::int64_t num_attention_heads = 0, num_key_value_heads = 1;
  std::int64_t head_dim = 0, qk_rope_head_dim = 0;  // the RoPE dims are the last of head_dim
  std::int64_t q_lora_rank = 0, o_lora_rank = 0, o_groups = 0;
  std::int64_t moe_intermediate_size = 0, n_routed_experts = 0, n_shared_experts = 0;
  std::int64_t num_experts_per_tok = 0, num_hash_layers = 0;
  std::int64_t index_n_heads = 0, index_head_dim = 0, index_topk = 0;
  std::int64_t sliding_window = 0, hc_mult = 0, hc_sinkhorn_iters = 0;
  std::int64_t max_position_embeddings = 0, bos_token_id = 0, eos_token_id = 1;
  double rms_norm_eps = 1e-6, hc_eps = 1e-6, routed_scaling_factor = 1.0, swiglu_limit = 0;
  double rope_theta = 10000, compress_rope_theta = 160000;
  // YaRN, for the compressed layers (rope_scaling, type "yarn").
  double rope_factor = 1, rope_beta_fast = 32, rope_beta_slow = 1;
  std::int64_t rope_original_max_position = 0;
  bool norm_topk_prob = true;
  ScoringFunction scoring = ScoringFunction::SqrtSoftplus;
  ExpertFormat expert_format = ExpertFormat::Fp4;
  // One per layer, then one per MTP layer: 0 window-only, 4 CSA (overlapping blocks, the
  // lightning indexer), 128 HCA (dense over 128-token blocks).
  std::vector<int> compress_ratios;

  std::int64_t layers_with_mtp() const { return num_hidden_layers + num_nextn_predict_layers; }
};

// Reads and checks a config.json's text. An unknown field, a wrong type, a value the
// architecture does not allow or shapes that do not fit together are an error naming the field.
Result<Config> parse_config(std::string_view json_text);
Result<Config> load_config(const std::string& path);
// The config.json text of `config`, with the official configs' field names and order.
std::string config_json(const Config& config);

// How a tensor is stored in a checkpoint (safetensors' dtype names).
enum class DType { BF16, F32, F8_E4M3, F8_E8M0, I8, I64 };
std::string_view dtype_name(DType dtype);
std::size_t dtype_bytes(DType dtype);

struct TensorView {
  std::string_view name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;  // in the mapped file: valid while its Checkpoint lives
  std::string_view file;            // the shard it is in
};

// A checkpoint folder: config.json, model.safetensors.index.json and its shards (or one
// model.safetensors), mapped read-only. Opening it checks every tensor the config implies
// (docs/v4-architecture.md's inventory, MTP layers included): present, of the right dtype and
// shape, its bytes within its file. Tensors the config does not imply are an error too.
class Checkpoint {
 public:
  static Result<Checkpoint> open(const std::string& dir);
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  const Config& config() const;
  const std::string& dir() const;
  // The tensor named so; an error naming it when the checkpoint has none.
  Result<TensorView> tensor(std::string_view name) const;
  std::vector<TensorView> tensors() const;  // all of them, by name
  // Reads every shard into memory and maps all of it now, instead of page by page as tensors are
  // first read (the engine does this when it opens a checkpoint).
  void populate() const;

 private:
  struct State;
  explicit Checkpoint(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// What a checkpoint holds and what running it costs.
struct ModelInfo {
  // Weight values (a packed FP4 byte is two; scales are not counted) of the main model, as the
  // published sizes count them (V4-Flash 284B), and of the MTP layers apart.
  std::uint64_t parameters = 0, mtp_parameters = 0;
  std::uint64_t active_parameters = 0;  // read for one token: see describe()
  // Of those, the head's: a prompt's tokens but its last never go through it.
  std::uint64_t head_parameters = 0;
  std::map<std::string, std::uint64_t> bytes_by_dtype;  // safetensors dtype name -> bytes
  std::uint64_t file_bytes = 0;                         // tensors' bytes together
  std::uint64_t active_weight_bytes = 0;                // bytes read per token at batch 1
  // The KV cache in the architecture's compact formats: bytes per token once a sequence is long
  // (compressed entries and indexer keys), and the fixed bytes of one sequence (the sliding
  // window's rows and the compressors' partial blocks), whatever its length.
  double kv_bytes_per_token = 0;
  std::uint64_t kv_fixed_bytes = 0;
};
// From the config alone (the official configs give the real models' figures without weights).
// Active parameters: the non-expert weights of every main layer, num_experts_per_tok routed
// experts and the shared experts per layer, the head, one embedding row; not the MTP layers.
ModelInfo describe(const Config& config);
// The same, with the bytes counted from the checkpoint's tensors.
ModelInfo describe(const Checkpoint& checkpoint);
// Bytes of the compact KV cache that decoding one token reads once a sequence holds `length`:
// each layer's window rows, HCA's entries, CSA's chosen entries and all its indexer keys.
std::uint64_t kv_bytes_read(const Config& config, std::int64_t length);
// Bytes a sequence's cache holds after `length` tokens, as the engine lays it out
// (Sequence::cache_bytes, to the byte): every layer's window rows, compressed entries and indexer
// keys, and its compressors' partial blocks.
std::uint64_t kv_cache_bytes(const Config& config, std::int64_t length);

// A byte-level BPE tokenizer read from a Hugging Face tokenizer.json (DeepSeek's format: a BPE
// model with merges, a pre-tokenizer of regex splits then ByteLevel, added tokens). Encoding is
// `encode(text, add_special_tokens=False)`: added tokens in the text are kept whole and nothing
// is added around it (toolcall's prompt encoder writes BOS itself). Safe to use from several
// threads at once.
class Tokenizer {
 public:
  static Result<Tokenizer> load(const std::string& path);
  static Result<Tokenizer> parse(std::string_view json_text);
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  std::vector<std::int32_t> encode(std::string_view text) const;
  // The bytes of the tokens, added tokens as their text. Ids outside the vocabulary are skipped.
  std::string decode(std::span<const std::int32_t> ids) const;
  // A token's id by its text (an added token's content, or a vocabulary entry's raw bytes).
  std::optional<std::int32_t> id_of(std::string_view token) const;
  std::int32_t size() const;  // one more than the largest id

 private:
  struct State;
  explicit Tokenizer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The tokenizer.json of a byte-level BPE tokenizer with DeepSeek's pre-tokenizer, its merges
// learned from `corpus` until the vocabulary (special tokens included) has `vocab_size` entries
// or no pair occurs twice. `special_tokens` come first, with ids 0, 1, ... (BOS, EOS, ...);
// then the 256 bytes, then the merges.
std::string train_tokenizer(std::string_view corpus, std::size_t vocab_size,
                            const std::vector<std::string>& special_tokens);

// One sequence in the engine: the tokens it has seen and its cache (the sliding window's KV rows,
// compressed entries, indexer keys and the compressors' partial blocks, per layer). Made by
// Engine::start; movable, not copyable.
class Sequence {
 public:
  Sequence(Sequence&&) noexcept;
  Sequence& operator=(Sequence&&) noexcept;
  ~Sequence();
  std::int64_t length() const;  // tokens fed so far
  // Bytes its cache holds now: the KV rows and indexer keys in their compact formats, and the
  // compressors' partial blocks.
  std::uint64_t cache_bytes() const;
  // A copy of this sequence at its current token: fed the same tokens afterwards, it gives the
  // same logits as this one would (the cache is plain values). Prefix reuse starts from one.
  Sequence snapshot() const;

  struct State;  // engine-private

 private:
  friend class Engine;
  explicit Sequence(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The linear layers' kernels: the plain reference path (activations in double), or the fast
// ones for a vector unit (src/kernels.hpp), which give the same bits as each other.
enum class Kernels { Reference, Avx2, Avx512 };
std::string_view to_string(Kernels set);  // reference, avx2, avx512
std::optional<Kernels> parse_kernels(std::string_view name);
bool supported(Kernels set);  // whether this CPU runs them
Kernels best_kernels();       // the fastest this CPU runs

// The embedded engine over one checkpoint: DeepSeek-V4's forward pass, one token at a time
// (prefill is decode of each prompt token in turn, so the two agree by construction).
struct EngineOptions {
  unsigned threads = 1;  // 0: one per core. Logits are the same for any number.
  Kernels kernels = best_kernels();
};

class Engine {
 public:
  // Opens the checkpoint (checked tensor by tensor) and its tokenizer.json when it has one.
  static Result<Engine> open(const std::string& dir, EngineOptions options = {});
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  ~Engine();

  const Config& config() const;
  // The checkpoint's tokenizer; an error when its folder has no tokenizer.json.
  Result<const Tokenizer*> tokenizer() const;
  Sequence start() const;
  // Runs `tokens` through the model after what `sequence` holds and returns the logits of the
  // last one [vocab_size]. A token id outside the vocabulary is an error naming it (nothing of
  // the call is fed then). Several threads may feed at once, each its own sequence: the weights
  // are only read, and the thread pool's jobs take turns.
  Result<std::vector<float>> feed(Sequence& sequence, std::span<const std::int32_t> tokens) const;
  // One decode step of several sequences: tokens[i] after what sequences[i] holds, all through the
  // layers together (each weight row read once for them all), each sequence's logits exactly what
  // feed gives it alone. The sequences must be distinct; a token outside the vocabulary, or a
  // sequence given twice, is an error and nothing is fed.
  Result<std::vector<std::vector<float>>> step(std::span<Sequence* const> sequences,
                                               std::span<const std::int32_t> tokens) const;

 private:
  struct State;
  explicit Engine(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// How the next token is chosen from the logits.
struct SamplingOptions {
  double temperature = 0;  // 0: greedy (the highest logit, the lower id among equals)
  std::int64_t top_k = 0;  // keep the k most likely (0: all)
  double top_p = 1;        // then the smallest set whose probability reaches p
  std::uint64_t seed = 0;
};

enum class FinishReason { Length, Eos, Stop };
std::string_view to_string(FinishReason reason);  // length, eos, stop

// Changes the logits before a token is chosen from them: where grammars constrain the choice
// (tests force a recorded completion with one). `generated`: the tokens chosen so far.
using LogitsProcessor =
    std::function<void(std::span<float> logits, std::span<const std::int32_t> generated)>;

struct GenerateOptions {
  std::int64_t max_tokens = 256;
  SamplingOptions sampling;
  std::vector<std::string> stop;     // the text ends before the first of these
  LogitsProcessor logits_processor;  // none: the model's own
};

struct Generated {
  std::vector<std::int32_t> tokens;
  std::vector<double> logprobs;  // each token's log probability under the model (temperature 1)
  std::string text;              // decoded, cut before a stop string
  FinishReason finish = FinishReason::Length;
};

// Feeds `prompt` to `sequence`, then samples up to max_tokens tokens, feeding each back, until
// EOS (config's eos_token_id) or a stop string. `on_token` sees each token as it is chosen. An
// empty prompt is an error.
Result<Generated> generate(const Engine& engine, Sequence& sequence,
                           std::span<const std::int32_t> prompt, const GenerateOptions& options,
                           const std::function<void(std::int32_t token)>& on_token = {});

// Generations of concurrent requests gathered into decode steps (Engine::step): one thread of its
// own takes each new request's prompt through the engine, then steps every request in flight
// together, a token each, so that the weights are read once a step for them all. Each request's
// result is exactly what generate() gives it alone (its sampling, stop strings and logits
// processor its own). New requests' prompts are fed 256 tokens at most between two steps, oldest
// first, so that a long prompt does not hold the requests in flight for the whole of it; a request
// joins the steps once its prompt is all fed. A request's `on_token` and logits processor run on
// the batcher's thread: they hold up every request meanwhile, and must not wait on the batcher.
// What a request's work throws ends that request (its future rethrows it), not the others.
class Batcher {
 public:
  explicit Batcher(std::shared_ptr<const Engine> engine);
  ~Batcher();  // after the requests in flight have finished
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  const Engine& engine() const;

  struct Request {
    std::vector<std::int32_t> prompt;
    GenerateOptions options;
    std::function<void(std::int32_t token)> on_token;
  };
  // Starts the requests together (they share their first step); each future gives its result. A
  // request refused before any work (an empty prompt; stop strings without a tokenizer) has its
  // error in its future at once.
  std::vector<std::future<Result<Generated>>> submit(std::vector<Request> requests);
  // One request, waited for: for callers on threads of their own.
  Result<Generated> generate(std::span<const std::int32_t> prompt, const GenerateOptions& options,
                             const std::function<void(std::int32_t token)>& on_token = {});

  struct Stats {
    std::int64_t requests = 0;      // submitted so far
    std::int64_t steps = 0;         // decode steps run
    std::int64_t step_tokens = 0;   // tokens they fed, all sequences together
    std::int64_t largest_step = 0;  // the most sequences one step took
  };
  Stats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Random-weight checkpoints in the official layout, for tests and benchmarks.
enum class Preset {
  Tiny,        // a few layers covering window-only, CSA and HCA; under 50 MB: tests
  Small,       // a decoded token reads a few hundred MB of active weights: benchmarks
  FlashSlice,  // V4-Flash's layer shapes with few layers and experts: per-layer speed
};
Result<Preset> preset_named(std::string_view name);  // tiny, small, flash-slice
Config preset_config(Preset preset);
using Progress = std::function<void(const std::string& line)>;
// Writes config.json, the shards and their index into `dir` (made if missing; it must hold no
// checkpoint yet). Weights are drawn from `seed`, the same checkpoint byte for byte for a seed.
Result<void> write_random_checkpoint(const Config& config, const std::string& dir,
                                     std::uint64_t seed, const Progress& progress = {});

}  // namespace warren::inference
