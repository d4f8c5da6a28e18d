"""PyTorch models of the cascade: U-Nets, conditioning."""
