"""Reward sources: how a group of completions of one question is scored."""
