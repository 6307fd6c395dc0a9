"""Offline pseudo-labelling: the policy answers each question n times and the majority answer
becomes the training label (``medssr label``)."""
