"""Policy backends: where the trained weights live and gradient steps happen."""
