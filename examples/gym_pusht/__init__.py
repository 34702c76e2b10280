"""lerobot's gym-pusht (PushT-v0) through fiper's bring-your-own-env path (README.md)."""
