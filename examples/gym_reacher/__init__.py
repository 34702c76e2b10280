"""gymnasium's MuJoCo Reacher-v5 through fiper's bring-your-own-env path (README.md)."""
