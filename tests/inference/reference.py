#!/usr/bin/python3
"""An independent reference of DeepSeek-V4's forward pass, for inference_tests to compare the
engine against. Written from docs/v4-architecture.md and the checkpoint formats in
docs/inference.md, not from the engine's code: PyTorch (Debian's python3-torch) in float64, the
whole sequence at once (causal by construction), reading the same safetensors files.

    reference.py CHECKPOINT --tokens 1,2,3 [--generate N]

prints JSON: {"logits": [...the last position's...], "generated": [...greedy ids...]}.
"""

import argparse
import json
import math
import os
import struct

import torch

F64 = torch.float64


# --- number formats -----------------------------------------------------------------------------

def e4m3_values():
    """The 127 non-negative finite e4m3fn values, by code (0..126)."""
    values = []
    for code in range(127):
        exponent, mantissa = code >> 3, code & 7
        if exponent == 0:
            values.append(mantissa / 8 * 2.0 ** -6)
        else:
            values.append((1 + mantissa / 8) * 2.0 ** (exponent - 7))
    return torch.tensor(values, dtype=F64)


E4M3 = e4m3_values()
E2M1 = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=F64)


def round_to_grid(x, grid):
    """Each |x| to the nearest value of `grid` (ascending, code = index), ties to the even code,
    beyond the largest saturating; the sign kept."""
    magnitude = x.abs().clamp(max=grid[-1].item())
    upper = torch.searchsorted(grid, magnitude).clamp(1, len(grid) - 1)
    lower = upper - 1
    to_lower = magnitude - grid[lower]
    to_upper = grid[upper] - magnitude
    pick = torch.where(to_lower < to_upper, lower,
                       torch.where(to_upper < to_lower, upper,
                                   torch.where(lower % 2 == 0, lower, upper)))
    return torch.sign(x) * grid[pick]


def fake_quantise(x, block, grid):
    """Blocks of `block` values along the last dim scaled by a power of two so that the largest
    fits the grid (amax floored at 1e-4), rounded to the grid, scaled back."""
    shape = x.shape
    blocks = x.reshape(-1, block)
    amax = blocks.abs().amax(dim=1, keepdim=True).clamp(min=1e-4)
    scale = torch.pow(2.0, torch.ceil(torch.log2(amax / grid[-1])))
    return (round_to_grid(blocks / scale, grid) * scale).reshape(shape)


def fp8_activations(x):
    return fake_quantise(x, 128, E4M3)


def bf16(x):
    return x.to(torch.float32).to(torch.bfloat16).to(F64)


# --- the checkpoint -----------------------------------------------------------------------------

def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        tensors[name] = (info["dtype"], info["shape"], body[begin:end])
    return tensors


def to_tensor(dtype, shape, raw):
    if dtype == "BF16":
        bits = torch.frombuffer(bytearray(raw), dtype=torch.int16).to(torch.int32) & 0xFFFF
        return (bits << 16).view(torch.float32).to(F64).reshape(shape)
    if dtype == "F32":
        return torch.frombuffer(bytearray(raw), dtype=torch.float32).to(F64).reshape(shape)
    if dtype == "I64":
        return torch.frombuffer(bytearray(raw), dtype=torch.int64).reshape(shape)
    if dtype in ("F8_E4M3", "F8_E8M0", "I8"):
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.int64).reshape(shape)
    raise ValueError(dtype)


class Checkpoint:
    def __init__(self, folder):
        self.config = json.load(open(os.path.join(folder, "config.json")))
        index = json.load(open(os.path.join(folder, "model.safetensors.index.json")))
        self.raw = {}
        for shard in sorted(set(index["weight_map"].values())):
            self.raw.update(read_safetensors(os.path.join(folder, shard)))

    def has(self, name):
        return name in self.raw

    def tensor(self, name):
        return to_tensor(*self.raw[name])

    def linear(self, name):
        """A linear layer's weight [out, in] as float64, dequantised."""
        weight_dtype = self.raw[name + ".weight"][0]
        w = self.tensor(name + ".weight")
        if weight_dtype == "BF16":
            return w
        scale = torch.pow(2.0, self.tensor(name + ".scale").to(F64) - 127)
        if weight_dtype == "F8_E4M3":
            sign = torch.where(w >= 128, -1.0, 1.0).to(F64)
            values = sign * E4M3[(w & 127).clamp(max=126)]
            out, inp = values.shape
            scale = scale.repeat_interleave(128, 0)[:out].repeat_interleave(128, 1)[:, :inp]
            return values * scale
        # Two FP4 codes a byte, the low nibble first.
        codes = torch.stack([w & 15, w >> 4], dim=-1).reshape(w.shape[0], -1)
        values = torch.where(codes >= 8, -1.0, 1.0).to(F64) * E2M1[codes & 7]
        return values * scale.repeat_interleave(32, 1)


# --- the blocks ---------------------------------------------------------------------------------

def rms_norm(x, weight, eps):
    y = x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps)
    return y if weight is None else y * weight


def rope_frequencies(cfg, compressed):
    dims = cfg["qk_rope_head_dim"]
    theta = cfg["compress_rope_theta"] if compressed else cfg["rope_theta"]
    freqs = 1.0 / theta ** (torch.arange(0, dims, 2, dtype=F64) / dims)
    if not compressed:
        return freqs
    scaling = cfg["rope_scaling"]
    original = scaling["original_max_position_embeddings"]

    def correction(rotations):
        return dims * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction(scaling["beta_fast"])), 0)
    high = min(math.ceil(correction(scaling["beta_slow"])), dims - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dims // 2, dtype=F64) - low) / (high - low)).clamp(0, 1)
    return freqs / scaling["factor"] * ramp + freqs * (1 - ramp)


def rotate(x, positions, freqs, inverse=False):
    """Rotates interleaved pairs of x's last dims by position * freq. x: [..., T?, dims] with
    `positions` broadcasting against x's leading dims."""
    angles = positions.to(F64)[..., None] * freqs
    if inverse:
        angles = -angles
    cos, sin = torch.cos(angles), torch.sin(angles)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def hadamard_matrix(n):
    h = torch.ones(1, 1, dtype=F64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h / math.sqrt(n)


def store_kv(rows, rope_dims):
    """KV rows as stored: the no-RoPE dims through FP8 in blocks of 64, the RoPE dims BF16."""
    nope = rows.shape[-1] - rope_dims
    return torch.cat([fake_quantise(rows[..., :nope], 64, E4M3), bf16(rows[..., nope:])], -1)


class Model:
    def __init__(self, folder):
        self.ck = Checkpoint(folder)
        self.cfg = self.ck.config
        self.eps = self.cfg["rms_norm_eps"]

    # Compressed entries of every complete block: [blocks, dim]. `x` [T, D].
    def compress(self, prefix, x, ratio, dim, rope_freqs):
        ck = self.ck
        a = x @ ck.linear(prefix + ".wkv").T
        g = x @ ck.linear(prefix + ".wgate").T
        ape = ck.tensor(prefix + ".ape")
        t = x.shape[0]
        g = g + ape[torch.arange(t) % ratio]
        blocks = t // ratio
        overlap = a.shape[1] == 2 * dim
        entries = []
        for b in range(blocks):
            own = slice(b * ratio, (b + 1) * ratio)
            if overlap:
                values = a[own, dim:]
                gates = g[own, dim:]
                if b > 0:
                    before = slice((b - 1) * ratio, b * ratio)
                    values = torch.cat([a[before, :dim], values])
                    gates = torch.cat([g[before, :dim], gates])
            else:
                values, gates = a[own], g[own]
            weights = torch.softmax(gates, dim=0)
            entries.append((weights * values).sum(dim=0))
        if not entries:
            return torch.zeros(0, dim, dtype=F64)
        e = rms_norm(torch.stack(entries), ck.tensor(prefix + ".norm.weight"), self.eps)
        rd = self.cfg["qk_rope_head_dim"]
        starts = torch.arange(blocks) * ratio
        e = torch.cat([e[:, :-rd], rotate(e[:, -rd:], starts, rope_freqs)], -1)
        return e

    def attention(self, layer, x):
        cfg, ck = self.cfg, self.ck
        p = f"layers.{layer}.attn"
        ratio = cfg["compress_ratios"][layer]
        T, H, d, rd = x.shape[0], cfg["num_attention_heads"], cfg["head_dim"], cfg["qk_rope_head_dim"]
        freqs = rope_frequencies(cfg, ratio > 0)
        pos = torch.arange(T)
        cq = rms_norm(fp8_activations(x) @ ck.linear(p + ".wq_a").T, ck.tensor(p + ".q_norm.weight"), self.eps)
        q = (fp8_activations(cq) @ ck.linear(p + ".wq_b").T).reshape(T, H, d)
        q = rms_norm(q, None, self.eps)
        q = torch.cat([q[..., :-rd], rotate(q[..., -rd:], pos[:, None], freqs)], -1)
        kv = rms_norm(fp8_activations(x) @ ck.linear(p + ".wkv").T, ck.tensor(p + ".kv_norm.weight"), self.eps)
        kv = torch.cat([kv[:, :-rd], rotate(kv[:, -rd:], pos, freqs)], -1)
        kv = store_kv(kv, rd)

        entries = index_keys = None
        if ratio > 0:
            entries = store_kv(self.compress(p + ".compressor", x, ratio, d, freqs), rd)
        if ratio == 4:
            di, hi = cfg["index_head_dim"], cfg["index_n_heads"]
            rotation = hadamard_matrix(di)
            keys = self.compress(p + ".indexer.compressor", x, 4, di, freqs)
            index_keys = fake_quantise(keys @ rotation.T, 32, E2M1)
            iq = (fp8_activations(cq) @ ck.linear(p + ".indexer.wq_b").T).reshape(T, hi, di)
            iq = torch.cat([iq[..., :-rd], rotate(iq[..., -rd:], pos[:, None], freqs)], -1)
            iq = fake_quantise(iq @ rotation.T, 32, E2M1)
            head_weights = x @ ck.linear(p + ".indexer.weights_proj").T / math.sqrt(di * hi)

        sink = ck.tensor(p + ".attn_sink")
        window = cfg["sliding_window"]
        out = torch.zeros(T, H, d, dtype=F64)
        for t in range(T):
            keys = [kv[max(0, t - window + 1):t + 1]]
            visible = (t + 1) // ratio if ratio else 0
            if ratio == 128 and visible:
                keys.append(entries[:visible])
            if ratio == 4 and visible:
                chosen = list(range(visible))
                if visible > cfg["index_topk"]:
                    scores = (head_weights[t][:, None] *
                              torch.relu(iq[t] @ index_keys[:visible].T)).sum(0)
                    # Largest first, the lower block among equal scores.
                    order = sorted(range(visible), key=lambda b: (-scores[b].item(), b))
                    chosen = sorted(order[:cfg["index_topk"]])
                keys.append(entries[chosen])
            k = torch.cat(keys)
            logits = q[t] @ k.T / math.sqrt(d)  # [H, keys]
            top = torch.maximum(logits.amax(dim=1), sink)
            weights = torch.exp(logits - top[:, None])
            denominator = weights.sum(dim=1) + torch.exp(sink - top)
            out[t] = (weights @ k) / denominator[:, None]
        out = torch.cat([out[..., :-rd], rotate(out[..., -rd:], pos[:, None], freqs, inverse=True)], -1)

        groups, lo = cfg["o_groups"], cfg["o_lora_rank"]
        wo_a = ck.linear(p + ".wo_a").reshape(groups, lo, -1)
        grouped = out.reshape(T, groups, -1)
        u = torch.einsum("tgi,goi->tgo", grouped, wo_a).reshape(T, groups * lo)
        return fp8_activations(u) @ ck.linear(p + ".wo_b").T

    def expert(self, prefix, x):
        limit = self.cfg["swiglu_limit"]
        xq = fp8_activations(x)
        gate = (xq @ self.ck.linear(prefix + ".w1").T).clamp(max=limit)
        up = (xq @ self.ck.linear(prefix + ".w3").T).clamp(-limit, limit)
        return fp8_activations(gate * torch.sigmoid(gate) * up) @ self.ck.linear(prefix + ".w2").T

    def moe(self, layer, x, tokens):
        cfg, ck = self.cfg, self.ck
        p = f"layers.{layer}.ffn"
        k = cfg["num_experts_per_tok"]
        scores = torch.sqrt(torch.nn.functional.softplus(x @ ck.linear(p + ".gate").T))
        if layer < cfg["num_hash_layers"]:
            chosen = ck.tensor(p + ".gate.tid2eid")[tokens]
        else:
            biased = scores + ck.tensor(p + ".gate.bias")
            chosen = torch.tensor([sorted(range(biased.shape[1]), key=lambda e: (-biased[t, e].item(), e))[:k]
                                   for t in range(x.shape[0])])
        weights = scores.gather(1, chosen)
        if cfg["norm_topk_prob"]:
            weights = weights / weights.sum(dim=1, keepdim=True)
        weights = weights * cfg["routed_scaling_factor"]
        out = torch.zeros_like(x)
        for e in range(cfg["n_routed_experts"]):
            rows, slots = torch.nonzero(chosen == e, as_tuple=True)
            if len(rows):
                out[rows] += weights[rows, slots][:, None] * self.expert(f"{p}.experts.{e}", x[rows])
        if cfg["n_shared_experts"]:
            out = out + self.expert(p + ".shared_experts", x)
        return out

    def hyper(self, prefix, norm, streams, sublayer):
        """streams [T, hc, D]; the sublayer between stream mixings (mHC)."""
        cfg, ck = self.cfg, self.ck
        T, hc, D = streams.shape
        flat = streams.reshape(T, hc * D)
        mix = (flat @ ck.tensor(prefix + "_fn").T) / torch.sqrt((flat * flat).mean(1, keepdim=True) + self.eps)
        scale, base = ck.tensor(prefix + "_scale"), ck.tensor(prefix + "_base")
        eps = cfg["hc_eps"]
        pre = torch.sigmoid(mix[:, :hc] * scale[0] + base[:hc]) + eps
        post = 2 * torch.sigmoid(mix[:, hc:2 * hc] * scale[1] + base[hc:2 * hc])
        c = (mix[:, 2 * hc:] * scale[2] + base[2 * hc:]).reshape(T, hc, hc)
        c = torch.softmax(c, dim=2) + eps
        c = c / (c.sum(dim=1, keepdim=True) + eps)
        for _ in range(cfg["hc_sinkhorn_iters"] - 1):
            c = c / (c.sum(dim=2, keepdim=True) + eps)
            c = c / (c.sum(dim=1, keepdim=True) + eps)
        h = rms_norm((pre[:, :, None] * streams).sum(1), norm, self.eps)
        y = sublayer(h)
        return post[:, :, None] * y[:, None, :] + torch.einsum("tjk,tjd->tkd", c, streams)

    def logits(self, tokens):
        cfg, ck = self.cfg, self.ck
        tokens = torch.tensor(tokens)
        x = ck.tensor("embed.weight")[tokens]
        streams = x[:, None, :].repeat(1, cfg["hc_mult"], 1)
        for layer in range(cfg["num_hidden_layers"]):
            p = f"layers.{layer}"
            streams = self.hyper(p + ".hc_attn", ck.tensor(p + ".attn_norm.weight"), streams,
                                 lambda h: self.attention(layer, h))
            streams = self.hyper(p + ".hc_ffn", ck.tensor(p + ".ffn_norm.weight"), streams,
                                 lambda h: self.moe(layer, h, tokens))
        last = streams[-1]
        flat = last.reshape(-1)
        mix = (ck.tensor("hc_head_fn") @ flat) / torch.sqrt((flat * flat).mean() + self.eps)
        pre = torch.sigmoid(mix * ck.tensor("hc_head_scale")[0] + ck.tensor("hc_head_base")) + cfg["hc_eps"]
        h = rms_norm((pre[:, None] * last).sum(0), ck.tensor("norm.weight"), self.eps)
        return ck.linear("head") @ h


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--generate", type=int, default=0)
    args = parser.parse_args()
    model = Model(args.checkpoint)
    tokens = [int(t) for t in args.tokens.replace(",", " ").split()]
    logits = model.logits(tokens)
    generated = []
    for _ in range(args.generate):
        # Greedy: the largest logit, the lower id among equals (argmax's first).
        best = int(torch.argmax(logits).item())
        generated.append(best)
        if best == model.cfg["eos_token_id"]:
            break
        logits = model.logits(tokens + generated)
    if args.generate:
        print(json.dumps({"generated": generated}))
    else:
        print(json.dumps({"logits": logits.tolist()}))


if __name__ == "__main__":
    main()
