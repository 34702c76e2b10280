"""Train a policy: python -m launch.train data=<demo store> policy=diffusion_unet out=<dir> train.steps=2000.

Continue an interrupted run with resume=true; the policy group (launch/conf/policy/) picks the
kind, denoiser and encoder, e.g. policy=flow_mlp or policy=diffusion_unet_image.
"""

from __future__ import annotations

import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from launch.common import removed_on_failure, save_config
from launch.validate import (boolean, choice, existing_path, integer, merged, number, optional, positive, positive_int, prefixed,
                             reported, seed, text, validate)
from policies import TrainResult, train_policy
from policies.training import has_checkpoint

CHECKS = merged({"data": existing_path("demonstration store"), "out": text, "resume": boolean},
               prefixed("train", {
                   "steps": positive_int, "batch_size": positive_int, "lr": positive, "weight_decay": number(0.0, None, bounds="[)", example=1e-6),
                   "warmup_steps": integer(0, 50), "ema_decay": number(0.0, 1.0, bounds="[)", example=0.995), "val_fraction": number(0.0, 1.0, bounds="[)"),
                   "failed_demos": choice("skip", "keep"), "sampling": choice("uniform", "chunked"),
                   "memory_limit": optional(integer(0, 4294967296)), "cache_bytes": optional(integer(0, 268435456)),
                   "val_every": positive_int, "val_batches": positive_int, "checkpoint_every": positive_int, "seed": seed,
                   "device": text, "cpu_threads": optional(positive_int), "progress": boolean}),
               prefixed("policy", {
                   "horizon": positive_int, "n_action_steps": positive_int, "n_obs_steps": positive_int, "embed_dim": positive_int,
                   "num_inference_steps": positive_int}))


def run(cfg: DictConfig) -> TrainResult:
    """Build the configs from the composed hydra config and train (separate from main for tests).

    A run that fails before writing a checkpoint removes the output directory it created.
    """
    validate(cfg, CHECKS, "train")
    config = instantiate(cfg.train, policy=instantiate(cfg.policy, _convert_="all"), _convert_="all")
    with removed_on_failure(cfg.out, keep=has_checkpoint):
        result = train_policy(cfg.data, config, cfg.out, resume=cfg.resume)
    save_config(cfg, cfg.out, "train_run.yaml")  # after training: a refused or failed run leaves the saved one as it was
    last = f"train loss {result.train_loss[-1][1]:.4f}" if result.train_loss else "no new steps"
    print(f"trained {config.policy.kind}/{config.policy.denoiser} to step {result.step} ({last}) -> {result.out_dir}")
    return result


def check_grouped_keys(argv: list[str]) -> None:
    """Refuse, before hydra's 'Could not override', a training setting given without its group (progress=false,
    steps=3000, n_action_steps=4), naming the override that works (train.progress=false, ...)."""
    for arg in argv:
        key, _, value = arg.lstrip("+").partition("=")
        grouped = [name for name in CHECKS if "." in name and name.split(".", 1)[1] == key]
        if grouped and key not in CHECKS:
            raise SystemExit(f"{arg}: launch.train takes it as {grouped[0]}={value}; the other stages' top-level settings "
                             "(progress, seed, ...) sit under train. here, the policy's sizes under policy.")


@hydra.main(config_path="conf", config_name="train", version_base=None)
def main(cfg: DictConfig) -> None:
    with reported():
        run(cfg)


if __name__ == "__main__":
    check_grouped_keys(sys.argv[1:])
    main()
