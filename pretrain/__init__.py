"""rebind.pretrain."""
