"""Suite-wide settings: one torch thread (fiper's tiny test models run fastest that way, and
parallel processes on a 2-core machine do not oversubscribe it)."""

import torch

torch.set_num_threads(1)
