"""Scripted experts, one per task (see envs.experts.base.Expert for the interface)."""
