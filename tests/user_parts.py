"""The source of a user's module of acting parts (a fallback, a reward, a response factory), written into a
temporary folder and named by file path in the tests of parts of one's own; each test appends its own."""

PARTS = '''
import numpy as np
import torch
from fiper.interventions import GradedResponse, Steering, load_reward


class Nudge:
    name = "nudge"

    def __init__(self, dx=0.0):
        self.dx = float(dx)

    def start(self, context):
        self.target = None

    def act(self, obs, context):
        if self.target is None:
            self.target = context.template(obs)
            self.target[0] += self.dx
        return self.target.copy()


def left_of(traj):
    return -torch.relu(traj[..., 0]).sum(-1)


def steer_then_nudge(dx=0.0, n=1, particles=8):
    return GradedResponse(Steering(load_reward(left_of), position_dims=[0, 1], num_particles=particles), Nudge(dx),
                          max_steer_decisions=n)
'''
