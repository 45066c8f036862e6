"""Tiny text-to-video pipelines (LTX-Video, Wan) with random weights, built from small configs and
a tokenizer made here (no hub, no download), saved with save_pretrained: what a real model folder
looks like, a few hundred kilobytes."""

from __future__ import annotations

from pathlib import Path

LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def local_tokenizer():
    """A character-level T5-style fast tokenizer built in memory."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "</s>", "<unk>", *LETTERS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=64)


def save_tiny_ltx(folder: Path, seed: int = 0) -> Path:
    """Build and save the pipeline into folder; returns folder."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=1, caption_channels=32)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False, patch_size=1, patch_size_t=1, encoder_causal=True,
        decoder_causal=False)
    text_encoder = T5EncoderModel(T5Config(vocab_size=len(LETTERS) + 3, d_model=32, d_kv=8,
                                           d_ff=37, num_layers=2, num_heads=4))
    pipe = LTXPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                       text_encoder=text_encoder, tokenizer=local_tokenizer(),
                       transformer=transformer)
    pipe.save_pretrained(str(folder))
    return Path(folder)


def save_tiny_wan(folder: Path, seed: int = 0) -> Path:
    """A tiny Wan 2.1 text-to-video pipeline (UMT5 text encoder, Wan VAE and transformer)."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(LETTERS) + 3, d_model=32, d_kv=8,
                                               d_ff=37, num_layers=2, num_heads=4))
    pipe = WanPipeline(tokenizer=local_tokenizer(), text_encoder=text_encoder, vae=vae,
                       transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))
    pipe.save_pretrained(str(folder))
    return Path(folder)


BUILDERS = {"ltx": save_tiny_ltx, "wan": save_tiny_wan}
