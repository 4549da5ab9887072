"""Per-frame processing: frame types, the depth and segmentation pipelines, batching, decoding, statistics."""
