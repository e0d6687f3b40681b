"""StyleGAN2 generators: the network (``stylegan2``), checkpoint formats (``checkpoints``),
the restricted unpickler (``safe_pickle``), names of built-in and published checkpoints
(``registry``) and the download cache (``download``)."""
