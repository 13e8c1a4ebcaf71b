"""Rate-distortion training (`tec train`): data sampling and the training loop."""
