"""Depth prompts for Prompt Depth Anything: sparse sensor depth -> a dense, checked low-resolution prompt."""
