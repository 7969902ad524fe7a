"""Test stand-in for THUDM/glm-4-9b-chat's remote modelling file, written for gluekit's tests (not THUDM's code).

gluekit does not ship third-party model code. This file is the closest faithful stand-in its tests
can load through ``trust_remote_code=True``: what gluekit's shim (gluekit/remote_code.py) and its
training depend on is the same as in the checkpoint's last model-code revision (2024-08):

- the module tree and names: ``transformer.embedding.word_embeddings``, ``transformer.rotary_pos_emb``
  (an ``inv_freq`` buffer), ``transformer.encoder.layers.N`` with ``input_layernorm``,
  ``self_attention.query_key_value`` (q, k and v fused, with bias, grouped key/value heads),
  ``self_attention.dense``, ``post_attention_layernorm``, ``mlp.dense_h_to_4h`` (SwiGLU, 2 x FFN)
  and ``mlp.dense_4h_to_h``; ``transformer.encoder.final_layernorm``; an untied ``transformer.output_layer``;
- RMSNorm, rotary embedding on the first half of each head (interleaved pairs), SwiGLU;
- the interfaces: its own loss (float32 logits, shifted labels), its own masks and positions
  (0, 1, 2 ... from the row's start, padding included), its own cache (a tuple of (key, value)
  per layer), ``prepare_inputs_for_generation`` with ``is_first_forward`` and its own
  ``_update_model_kwargs_for_generation``;
- the transformers-5 breakage points: ``__init__`` reads ``config.max_length``, ``forward`` reads
  ``self.config.use_cache``, ``__init__`` never calls ``post_init()``, the generation hook calls
  ``GenerationMixin._extract_past_from_model_output`` (as 2024-08 does:
  ``cache_name, cache = self._extract_past_from_model_output(outputs)``), and no class inherits
  ``GenerationMixin``.

Simpler than the original: SDPA attention only (no flash attention, no eager path), no ``chat()``,
no sequence classification head.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_chatglm import ChatGLMConfig


class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * x32).to(dtype)


class RotaryEmbedding(nn.Module):
    """Angles for the first ``dim`` channels of each head, in pairs (GLM's half-head rotary)."""

    def __init__(self, dim, base):
        super().__init__()
        self.dim, self.base = dim, base
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)))

    def forward(self, position_ids):  # [b, s] -> cos, sin of shape [b, 1, s, dim / 2]
        freq = 1.0 / (self.base ** (torch.arange(0, self.dim, 2, dtype=torch.float, device=position_ids.device) / self.dim))
        angles = position_ids.float()[..., None] * freq
        return angles.cos()[:, None], angles.sin()[:, None]


def rotate(x, cos, sin):
    """Rotate the leading channels of ``x`` ([b, heads, s, d]) pairwise: (x0, x1) -> (x0 c - x1 s, x1 c + x0 s)."""
    n = cos.shape[-1] * 2
    head, rest = x[..., :n], x[..., n:]
    pairs = head.float().reshape(*head.shape[:-1], n // 2, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    out = torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)
    return torch.cat([out.to(x.dtype), rest], dim=-1)


class SelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.heads, self.groups, self.head_dim = config.num_attention_heads, config.multi_query_group_num, config.kv_channels
        width = self.head_dim * (self.heads + 2 * self.groups)
        self.query_key_value = nn.Linear(config.hidden_size, width, bias=config.add_qkv_bias or config.add_bias_linear)
        self.dense = nn.Linear(self.heads * self.head_dim, config.hidden_size, bias=config.add_bias_linear)

    def forward(self, x, mask, rope, kv_cache=None, use_cache=True):
        b, s, _ = x.shape
        d = self.head_dim
        q, k, v = self.query_key_value(x).split([self.heads * d, self.groups * d, self.groups * d], dim=-1)
        q = q.view(b, s, self.heads, d).transpose(1, 2)
        k = k.view(b, s, self.groups, d).transpose(1, 2)
        v = v.view(b, s, self.groups, d).transpose(1, 2)
        q, k = rotate(q, *rope), rotate(k, *rope)
        if kv_cache is not None:
            k, v = torch.cat([kv_cache[0], k], dim=2), torch.cat([kv_cache[1], v], dim=2)
        present = (k, v) if use_cache else None
        rep = self.heads // self.groups
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        if mask is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[2] == k.shape[2])
        else:  # mask: True = may NOT attend (the original's convention)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=~mask)
        return self.dense(out.transpose(1, 2).reshape(b, s, self.heads * d)), present


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(config.hidden_size, 2 * config.ffn_hidden_size, bias=config.add_bias_linear)
        self.dense_4h_to_h = nn.Linear(config.ffn_hidden_size, config.hidden_size, bias=config.add_bias_linear)

    def forward(self, x):
        gate, up = self.dense_h_to_4h(x).chunk(2, dim=-1)
        return self.dense_4h_to_h(F.silu(gate) * up)


class GLMBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.layernorm_epsilon)
        self.self_attention = SelfAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.layernorm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x, mask, rope, kv_cache=None, use_cache=True):
        attn, present = self.self_attention(self.input_layernorm(x), mask, rope, kv_cache=kv_cache, use_cache=use_cache)
        x = x + attn
        return x + self.mlp(self.post_attention_layernorm(x)), present


class GLMTransformer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.layers = nn.ModuleList(GLMBlock(config) for _ in range(config.num_layers))
        self.final_layernorm = RMSNorm(config.hidden_size, config.layernorm_epsilon)
        self.gradient_checkpointing = False

    def forward(self, x, mask, rope, kv_caches=None, use_cache=True):
        if self.gradient_checkpointing and self.training:
            use_cache = False
        kv_caches = kv_caches or [None] * len(self.layers)
        presents = () if use_cache else None
        for layer, cache in zip(self.layers, kv_caches):
            if self.gradient_checkpointing and self.training:
                x, present = torch.utils.checkpoint.checkpoint(layer, x, mask, rope, cache, use_cache, use_reentrant=False)
            else:
                x, present = layer(x, mask, rope, kv_cache=cache, use_cache=use_cache)
            if use_cache:
                presents = presents + (present,)
        return self.final_layernorm(x), presents


class Embedding(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.padded_vocab_size, config.hidden_size)

    def forward(self, input_ids):
        return self.word_embeddings(input_ids)


class ChatGLMPreTrainedModel(PreTrainedModel):
    config_class = ChatGLMConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GLMBlock"]
    _supports_sdpa = True

    def _init_weights(self, module):
        return  # as the original: weights come from the checkpoint

    def get_masks(self, input_ids, past_key_values, padding_mask=None):
        """[b, 1, s, past + s] booleans, True where a query may NOT attend: causal, padded keys hidden;
        a padding query row sees everything (no row of all -inf)."""
        b, s = input_ids.shape
        past = past_key_values[0][0].shape[2] if past_key_values else 0
        allowed = torch.ones(b, s, past + s, device=input_ids.device).tril(diagonal=past)
        if padding_mask is not None:
            allowed = allowed * padding_mask[:, None, :].to(allowed.dtype)
            if not past:
                allowed = allowed + (1 - padding_mask[:, :, None].to(allowed.dtype))
        return (allowed < 0.5)[:, None]

    def get_position_ids(self, input_ids, device):
        b, s = input_ids.shape
        return torch.arange(s, dtype=torch.long, device=device)[None].repeat(b, 1)


class ChatGLMModel(ChatGLMPreTrainedModel):
    def __init__(self, config, device=None, empty_init=True):
        super().__init__(config)
        self.embedding = Embedding(config)
        self.rotary_pos_emb = RotaryEmbedding(config.kv_channels // 2, 10000 * config.rope_ratio)
        self.encoder = GLMTransformer(config)
        self.output_layer = nn.Linear(config.hidden_size, config.padded_vocab_size, bias=False)

    def get_input_embeddings(self):
        return self.embedding.word_embeddings

    def set_input_embeddings(self, value):
        self.embedding.word_embeddings = value

    def forward(self, input_ids, position_ids=None, attention_mask=None, full_attention_mask=None,
                past_key_values=None, inputs_embeds=None, use_cache=None, output_hidden_states=None, return_dict=None):
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        b, s = input_ids.shape
        if inputs_embeds is None:
            inputs_embeds = self.embedding(input_ids)
        if full_attention_mask is None and ((attention_mask is not None and not attention_mask.all())
                                            or (past_key_values and s != 1)):
            full_attention_mask = self.get_masks(input_ids, past_key_values, padding_mask=attention_mask)
        if position_ids is None:
            position_ids = self.get_position_ids(input_ids, input_ids.device)
        rope = self.rotary_pos_emb(position_ids)
        hidden, presents = self.encoder(inputs_embeds, full_attention_mask, rope, kv_caches=past_key_values,
                                        use_cache=use_cache)
        if not return_dict:
            return tuple(v for v in (hidden, presents) if v is not None)
        return BaseModelOutputWithPast(last_hidden_state=hidden, past_key_values=presents)


class ChatGLMForConditionalGeneration(ChatGLMPreTrainedModel):
    def __init__(self, config: ChatGLMConfig, empty_init=True, device=None):
        super().__init__(config)
        self.max_sequence_length = config.max_length
        self.transformer = ChatGLMModel(config, empty_init=empty_init, device=device)
        self.config = config

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False):
        cache_name, cache = self._extract_past_from_model_output(outputs)
        model_kwargs[cache_name] = cache
        if "attention_mask" in model_kwargs:
            mask = model_kwargs["attention_mask"]
            model_kwargs["attention_mask"] = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        if "position_ids" in model_kwargs:
            pos = model_kwargs["position_ids"]
            model_kwargs["position_ids"] = torch.cat([pos, pos[..., -1:] + 1], dim=-1)
        model_kwargs["is_first_forward"] = False
        return model_kwargs

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, position_ids=None,
                                      use_cache=None, is_first_forward=True, **kwargs):
        if position_ids is None:
            position_ids = self.get_position_ids(input_ids, device=input_ids.device)
        if not is_first_forward and past_key_values is not None:
            position_ids, input_ids = position_ids[..., -1:], input_ids[:, -1:]
        return {"input_ids": input_ids, "past_key_values": past_key_values, "position_ids": position_ids,
                "attention_mask": attention_mask, "return_last_logit": True, "use_cache": use_cache}

    def forward(self, input_ids=None, position_ids=None, attention_mask=None, past_key_values=None, inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=None, output_hidden_states=None, return_dict=None,
                return_last_logit: Optional[bool] = False):
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        return_dict = return_dict if return_dict is not None else self.config.use_return_dict
        out = self.transformer(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                               past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                               return_dict=True)
        hidden = out.last_hidden_state
        if return_last_logit:
            hidden = hidden[:, -1:]
        logits = self.transformer.output_layer(hidden)
        loss = None
        if labels is not None:
            logits32 = logits.float()
            loss = F.cross_entropy(logits32[:, :-1].reshape(-1, logits32.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100).to(hidden.dtype)
        past = out[1] if len(out) > 1 else None
        if not return_dict:
            return tuple(v for v in (loss, logits, past) if v is not None)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=past)
