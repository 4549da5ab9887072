"""Semantic segmentation: class tables, labels from network scores, colouring, test-time augmentation."""
