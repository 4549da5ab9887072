"""DPT networks: timm backbones, reassemble/fusion decoder, heads, presets and checkpoint loading."""
