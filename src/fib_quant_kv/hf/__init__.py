"""Hugging Face models: their config.json read as transformers reads it, planned as contracts."""
