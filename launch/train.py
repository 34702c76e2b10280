"""Train a policy: python -m launch.train data=<demo store> policy=diffusion_unet out=<dir> train.steps=2000.

Continue an interrupted run with resume=true; the policy group (launch/conf/policy/) picks the
kind, denoiser and encoder, e.g. policy=flow_mlp or policy=diffusion_unet_image.
"""

from __future__ import annotations

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from launch.common import save_config
from policies import TrainResult, train_policy


def run(cfg: DictConfig) -> TrainResult:
    """Build the configs from the composed hydra config and train (separate from main for tests)."""
    config = instantiate(cfg.train, policy=instantiate(cfg.policy, _convert_="all"), _convert_="all")
    save_config(cfg, cfg.out, "train_run.yaml")
    result = train_policy(cfg.data, config, cfg.out, resume=cfg.resume)
    last = f"train loss {result.train_loss[-1][1]:.4f}" if result.train_loss else "no new steps"
    print(f"trained {config.policy.kind}/{config.policy.denoiser} to step {result.step} ({last}) -> {result.out_dir}")
    return result


@hydra.main(config_path="conf", config_name="train", version_base=None)
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
