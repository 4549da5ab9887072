"""DPT-family networks: architectures, presets, checkpoint loading, preprocessing and the one inference engine."""
