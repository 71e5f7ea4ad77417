// Attention of one token: MQA over the sliding window plus compressed entries (CSA: the blocks
// the lightning indexer picks; HCA: all), with a learned sink per head and the grouped output
// projection. Shapes: D hidden, H heads of d dims (the last rd RoPE'd), Lq the query latent.
#include <algorithm>
#include <cmath>

#include "formats.hpp"
#include "forward.hpp"
#include "thread_pool.hpp"

namespace warren::inference {

namespace {

// Feeds token t, by its projections a = wkv x and g = wgate x, to a compressor; when t completes a
// block, returns the block's entry (before its norm): per channel, the softmax-over-tokens of the
// gates weighting the kv values. CSA (ratio 4) blocks overlap: an entry takes the first half of
// the previous block's channels and the second half of this block's, 8 candidates a channel (4
// for the first block).
std::optional<std::vector<double>> compress(const CompressorWeights& w, CompressorState& s,
                                            std::vector<double> a, std::vector<double> g,
                                            std::int64_t t) {
  const auto width = static_cast<std::size_t>(w.wkv.out());
  const auto slot = static_cast<std::size_t>(t % w.ratio);
  for (std::size_t i = 0; i < width; ++i) g[i] += w.ape[slot * width + i];
  s.a.push_back(std::move(a));
  s.g.push_back(std::move(g));
  if ((t + 1) % w.ratio != 0) return std::nullopt;

  const auto dim = static_cast<std::size_t>(w.dim);
  const bool overlap = width == 2 * dim;
  std::vector<double> entry(dim);
  for (std::size_t ch = 0; ch < dim; ++ch) {
    std::vector<std::pair<double, double>> candidates;  // (gate, value)
    if (overlap)
      for (std::size_t i = 0; i < s.prev_a.size(); ++i)
        candidates.emplace_back(s.prev_g[i][ch], s.prev_a[i][ch]);
    const std::size_t own = overlap ? dim + ch : ch;
    for (std::size_t i = 0; i < s.a.size(); ++i) candidates.emplace_back(s.g[i][own], s.a[i][own]);
    double top = -INFINITY, total = 0, sum = 0;
    for (const auto& [gate, value] : candidates) top = std::max(top, gate);
    for (const auto& [gate, value] : candidates) {
      const double e = std::exp(gate - top);
      total += e;
      sum += e * value;
    }
    entry[ch] = sum / total;
  }
  if (overlap) {
    s.prev_a = std::move(s.a);
    s.prev_g = std::move(s.g);
  }
  s.a.clear();
  s.g.clear();
  return entry;
}

// The CSA blocks token t attends to: all when there are no more than index_topk, else the
// lightning indexer's top-k, ascending. Scores: sum over indexer heads of the head's weight times
// ReLU(query . key), queries and keys Hadamard-rotated and FP4 as stored. `q` = index_wq_b cq
// [heads, di] and `weights` = index_weights x [heads], the token's; empty when they were not
// computed (they are needed only past index_topk blocks).
std::vector<std::size_t> select_blocks(const Config& c, const Rotary& rope, ThreadPool* pool,
                                       const LayerCache& cache, std::vector<double> q,
                                       std::span<const double> weights, std::int64_t t) {
  const std::size_t blocks = cache.index.entries.size();
  std::vector<std::size_t> chosen;
  if (static_cast<std::int64_t>(blocks) <= c.index_topk) {
    for (std::size_t b = 0; b < blocks; ++b) chosen.push_back(b);
    return chosen;
  }
  const std::vector<double> keys = cache.index.entries.decode_all();  // [blocks, di]
  const auto heads = static_cast<std::size_t>(c.index_n_heads);
  const auto di = static_cast<std::size_t>(c.index_head_dim);
  const auto rd = static_cast<std::size_t>(c.qk_rope_head_dim);
  for (std::size_t h = 0; h < heads; ++h) {
    std::span<double> qh(q.data() + h * di, di);
    rope.apply(qh.last(rd), t);
    hadamard(qh);
    formats::round_trip_e2m1(qh, 32);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(di * heads));
  std::vector<double> scores(blocks);
  each_index(pool, blocks, [&](std::size_t b) {  // each block's score one thread's
    double score = 0;
    for (std::size_t h = 0; h < heads; ++h)
      score += weights[h] * scale *
               std::max(0.0, dot<double>({q.data() + h * di, di}, {keys.data() + b * di, di}));
    scores[b] = score;
  });
  for (std::int64_t b : top_k(scores, c.index_topk)) chosen.push_back(static_cast<std::size_t>(b));
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

// Runs a compressor for token t (its projections a and g) and stores the entry it completes, if
// any.
void compress_into(const Config& c, const CompressorWeights& w, const Rotary& rope,
                   CompressorState& s, std::vector<double> a, std::vector<double> g, std::int64_t t,
                   bool indexer_key) {
  auto entry = compress(w, s, std::move(a), std::move(g), t);
  if (!entry) return;
  rms_norm(*entry, w.norm, c.rms_norm_eps);
  const std::int64_t block = (t + 1) / w.ratio - 1;
  rope.apply(std::span<double>(*entry).last(static_cast<std::size_t>(c.qk_rope_head_dim)),
             w.ratio * block);
  if (indexer_key) hadamard(*entry);
  s.entries.push(*entry);  // quantised as its format says: e2m1 for a key, e4m3 and BF16 for KV
}

}  // namespace

LayerCache::LayerCache(const Config& c)
    : window(RowFormat(RowKind::Kv, static_cast<std::size_t>(c.head_dim),
                       static_cast<std::size_t>(c.qk_rope_head_dim)),
             static_cast<std::size_t>(c.sliding_window)),
      kv{.entries = PackedRows(RowFormat(RowKind::Kv, static_cast<std::size_t>(c.head_dim),
                                         static_cast<std::size_t>(c.qk_rope_head_dim)))},
      index{.entries = PackedRows(
                RowFormat(RowKind::IndexerKey, static_cast<std::size_t>(c.index_head_dim)))} {}

namespace {

// [tokens, rows] values, one token's at a time.
struct Rows {
  std::vector<double> values;
  std::size_t width = 0;
  std::span<double> operator[](std::size_t t) { return {values.data() + t * width, width}; }
  std::vector<double> copy(std::size_t t) const {
    return {values.begin() + static_cast<std::ptrdiff_t>(t * width),
            values.begin() + static_cast<std::ptrdiff_t>((t + 1) * width)};
  }
};

// W x for each token's x (`x` [tokens, W.in]).
Rows project(const Linear& w, std::span<const double> x, std::size_t tokens, bool quantise) {
  Rows y{std::vector<double>(tokens * static_cast<std::size_t>(w.out())),
         static_cast<std::size_t>(w.out())};
  w.apply(x, y.values, quantise, static_cast<std::int64_t>(tokens));
  return y;
}

// A compressor's projections of the tokens' inputs.
struct Compressed {
  Rows a, g;
};
std::optional<Compressed> compressor_inputs(const std::optional<CompressorWeights>& w,
                                            std::span<const double> x, std::size_t tokens) {
  if (!w) return std::nullopt;
  return Compressed{project(w->wkv, x, tokens, false), project(w->wgate, x, tokens, false)};
}

// Attention of token t over the cache, its queries q [H, d] done: the softmax over all keys per
// head, the sink in its denominator; inverse RoPE on the output [H, d]. Heads go in groups, each
// key read once for a group (its queries and sums, 16 KiB each, stay in the core's cache while the
// keys pass; head after head, every head read all the keys twice), and the groups are split among
// the threads: each head's values are one thread's, summed key after key, for any number of them.
// The keys [n, d] as floats: a decoded row's values are e4m3 and BF16 values (kv_cache.hpp), exact
// in float, and read again and again at half the size. The output goes to `o` [H, d].
void attend(const Config& c, const AttentionWeights& w, const Rotary& rope, ThreadPool* pool,
            std::span<const float> keys, std::span<const double> q, std::int64_t t,
            std::span<double> o) {
  const auto H = static_cast<std::size_t>(c.num_attention_heads);
  const auto d = static_cast<std::size_t>(c.head_dim);
  const auto rd = static_cast<std::size_t>(c.qk_rope_head_dim);
  const std::size_t n = keys.size() / d;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const auto key = [&](std::size_t j) { return keys.subspan(j * d, d); };
  // With the fast kernels, a group's products go through KeyDots and KeySums (kernels.hpp), the
  // same sums in the same order with fused multiply-adds and AVX2: attention was a tenth of a
  // prompt's time in plain x86-64's SSE2.
  const RowKernels* kernels = d % 8 == 0 ? w.wq_a.kernels() : nullptr;
  constexpr std::size_t kGroup = kKeyHeads;
  each_index(pool, (H + kGroup - 1) / kGroup, [&](std::size_t group) {
    const std::size_t first = group * kGroup, heads = std::min(H, first + kGroup) - first;
    std::vector<double> logits(heads * n), top(heads), total(heads), sum(heads * d, 0.0);
    for (std::size_t h = 0; h < heads; ++h) top[h] = w.sink[first + h];
    if (kernels)
      kernels->key_dots(keys.data(), static_cast<std::int64_t>(n), static_cast<std::int64_t>(d),
                        q.data() + first * d, static_cast<int>(heads), logits.data());
    for (std::size_t j = 0; j < n; ++j)
      for (std::size_t h = 0; h < heads; ++h) {
        double& logit = logits[h * n + j];
        logit = (kernels ? logit : dot<float>(key(j), q.subspan((first + h) * d, d))) * scale;
        top[h] = std::max(top[h], logit);
      }
    for (std::size_t h = 0; h < heads; ++h) total[h] = std::exp(w.sink[first + h] - top[h]);
    if (kernels) {
      for (std::size_t h = 0; h < heads; ++h)
        for (std::size_t j = 0; j < n; ++j) {
          double& p = logits[h * n + j];  // the logit's weight, in its place
          p = std::exp(p - top[h]);
          total[h] += p;
        }
      kernels->key_sums(keys.data(), static_cast<std::int64_t>(n), static_cast<std::int64_t>(d),
                        logits.data(), static_cast<int>(heads), sum.data());
    } else {
      for (std::size_t j = 0; j < n; ++j) {
        const float* k = key(j).data();
        for (std::size_t h = 0; h < heads; ++h) {
          const double p = std::exp(logits[h * n + j] - top[h]);
          total[h] += p;
          double* s = sum.data() + h * d;
          for (std::size_t i = 0; i < d; ++i) s[i] += p * k[i];
        }
      }
    }
    for (std::size_t h = 0; h < heads; ++h) {
      std::span<double> oh = o.subspan((first + h) * d, d);
      for (std::size_t i = 0; i < d; ++i) oh[i] = sum[h * d + i] / total[h];
      rope.apply(oh.last(rd), t, /*inverse=*/true);
    }
  });
}

}  // namespace

Batch attention_block(const Config& c, const LayerWeights& lw, const Rotaries& ropes,
                      std::span<const Place> places, std::size_t layer, const Batch& x) {
  const AttentionWeights& w = lw.attn;
  const Rotary& rope = ropes.of(lw.ratio);
  const auto H = static_cast<std::size_t>(c.num_attention_heads);
  const auto d = static_cast<std::size_t>(c.head_dim);
  const auto rd = static_cast<std::size_t>(c.qk_rope_head_dim);
  const std::size_t T = x.size();
  const std::vector<double> inputs = flatten(x);
  const auto position = [&](std::size_t t) { return places[t].position; };
  const auto cache_of = [&](std::size_t t) -> LayerCache& { return (*places[t].layers)[layer]; };
  ThreadPool* pool = w.wq_a.pool();

  // What depends on a token's input alone, for all the tokens at once (each weight read once):
  // queries cq = RMSNorm(W_qa x) [Lq], q = W_qb cq [H, d], each head RMS-normed, RoPE'd; the KV
  // row [d] (key and value alike); the compressors' projections.
  Rows cq = project(w.wq_a, inputs, T, true);
  for (std::size_t t = 0; t < T; ++t) rms_norm(cq[t], w.q_norm, c.rms_norm_eps);
  Rows q = project(w.wq_b, cq.values, T, true);
  Rows kv = project(w.wkv, inputs, T, true);
  for (std::size_t t = 0; t < T; ++t) {
    for (std::size_t h = 0; h < H; ++h) {
      std::span<double> qh = q[t].subspan(h * d, d);
      rms_norm(qh, {}, c.rms_norm_eps);
      rope.apply(qh.last(rd), position(t));
    }
    rms_norm(kv[t], w.kv_norm, c.rms_norm_eps);
    rope.apply(kv[t].last(rd), position(t));
  }
  auto kv_compressor = compressor_inputs(w.compressor, inputs, T);
  auto index_compressor = compressor_inputs(w.index_compressor, inputs, T);
  // The indexer's queries and head weights, when some token of these may have more blocks than
  // index_topk to choose from.
  Rows index_q, index_weights;
  bool indexed = false;
  for (std::size_t t = 0; t < T && lw.ratio == 4; ++t)
    indexed |=
        static_cast<std::int64_t>(cache_of(t).index.entries.size() + (T + 3) / 4) > c.index_topk;
  if (indexed) {
    index_q = project(*w.index_wq_b, cq.values, T, true);
    index_weights = project(*w.index_weights, inputs, T, false);
  }

  // Token after token, each attending to the cache as the ones before it left it: its KV row into
  // the window (which drops its oldest row past sliding_window) in the compact format, the
  // compressors' entries, then the keys: the window and the compressed entries this layer
  // attends to.
  const std::size_t group_width = H * d / static_cast<std::size_t>(c.o_groups);
  std::vector<double> o(T * H * d);
  // A token's keys as floats (attend), and a row as it decodes: reused token after token.
  std::vector<float> keys;
  std::vector<double> row(d);
  for (std::size_t t = 0; t < T; ++t) {
    LayerCache& cache = cache_of(t);
    cache.window.push(kv[t]);
    if (kv_compressor)
      compress_into(c, *w.compressor, rope, cache.kv, kv_compressor->a.copy(t),
                    kv_compressor->g.copy(t), position(t), false);
    if (index_compressor)
      compress_into(c, *w.index_compressor, rope, cache.index, index_compressor->a.copy(t),
                    index_compressor->g.copy(t), position(t), true);
    keys.clear();
    const auto add_row = [&](const PackedRows& rows, std::size_t i) {
      rows.decode(i, row);
      keys.insert(keys.end(), row.begin(), row.end());
    };
    for (std::size_t i = 0; i < cache.window.size(); ++i) add_row(cache.window, i);
    if (lw.ratio == 128)
      for (std::size_t b = 0; b < cache.kv.entries.size(); ++b) add_row(cache.kv.entries, b);
    if (lw.ratio == 4) {
      for (std::size_t b :
           select_blocks(c, rope, pool, cache, indexed ? index_q.copy(t) : std::vector<double>{},
                         indexed ? index_weights[t] : std::span<double>{}, position(t)))
        add_row(cache.kv.entries, b);
    }
    attend(c, w, rope, pool, keys, q[t], position(t),
           std::span<double>(o).subspan(t * H * d, H * d));
  }

  // Grouped output: group g's heads through wo_a's rows [g Lo, (g+1) Lo), unquantised; then wo_b.
  const auto G = static_cast<std::size_t>(c.o_groups), Lo = static_cast<std::size_t>(c.o_lora_rank);
  std::vector<double> u(T * G * Lo), group(T * group_width), part(T * Lo);
  for (std::size_t g = 0; g < G; ++g) {
    for (std::size_t t = 0; t < T; ++t)
      std::copy_n(o.begin() + static_cast<std::ptrdiff_t>(t * H * d + g * group_width), group_width,
                  group.begin() + static_cast<std::ptrdiff_t>(t * group_width));
    w.wo_a.apply_rows(group, part, static_cast<std::int64_t>(g * Lo),
                      static_cast<std::int64_t>((g + 1) * Lo), false, static_cast<std::int64_t>(T));
    for (std::size_t t = 0; t < T; ++t)
      std::copy_n(part.begin() + static_cast<std::ptrdiff_t>(t * Lo), Lo,
                  u.begin() + static_cast<std::ptrdiff_t>(t * G * Lo + g * Lo));
  }
  Rows out = project(w.wo_b, u, T, true);
  Batch y;
  for (std::size_t t = 0; t < T; ++t) y.push_back(out.copy(t));
  return y;
}

}  // namespace warren::inference
