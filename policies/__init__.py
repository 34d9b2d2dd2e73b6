"""Torch learners: the SAC/RLPD agent, encoders, reward classifier, diffusion policy and checkpoints."""
