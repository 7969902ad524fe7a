"""Test stand-in for the remote-code config class of THUDM/glm-4-9b-chat, written for gluekit's tests.

Not THUDM's file: the same class name, ``model_type`` and field names as the checkpoint's
config.json, so that a folder holding this file, ``modeling_chatglm.py`` (the stand-in model) and a
chatglm ``config.json`` with ``auto_map`` loads through ``trust_remote_code=True`` as the real
checkpoint does. tests/tiny_families.py copies both files into the tiny remote-code model folder.
"""
from transformers import PretrainedConfig


class ChatGLMConfig(PretrainedConfig):
    model_type = "chatglm"

    def __init__(self, num_layers=2, padded_vocab_size=151552, hidden_size=64, ffn_hidden_size=128, kv_channels=16,
                 num_attention_heads=4, seq_length=2048, layernorm_epsilon=1.5625e-07, add_qkv_bias=True,
                 add_bias_linear=False, multi_query_attention=True, multi_query_group_num=2, rope_ratio=1,
                 original_rope=True, post_layer_norm=True, rmsnorm=True, hidden_dropout=0.0, attention_dropout=0.0,
                 **kwargs):
        self.num_layers = num_layers
        self.vocab_size = padded_vocab_size
        self.padded_vocab_size = padded_vocab_size
        self.hidden_size = hidden_size
        self.ffn_hidden_size = ffn_hidden_size
        self.kv_channels = kv_channels
        self.num_attention_heads = num_attention_heads
        self.seq_length = seq_length
        self.layernorm_epsilon = layernorm_epsilon
        self.add_qkv_bias = add_qkv_bias
        self.add_bias_linear = add_bias_linear
        self.multi_query_attention = multi_query_attention
        self.multi_query_group_num = multi_query_group_num
        self.rope_ratio = rope_ratio
        self.original_rope = original_rope
        self.post_layer_norm = post_layer_norm
        self.rmsnorm = rmsnorm
        self.hidden_dropout = hidden_dropout
        self.attention_dropout = attention_dropout
        super().__init__(**kwargs)
