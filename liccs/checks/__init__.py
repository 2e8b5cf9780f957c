"""Correctness checks of deployed models against PyTorch: :mod:`.parity` (every graph and deployed codec on
every engine, with explicit tolerances), :mod:`.crossdecode` (every encoder engine × decoder engine on real
bitstreams), :mod:`.transfer` (adversarial images on deployed targets: ASR, fooling rate, transfer gap) and
:mod:`.predictors` (the route of each transfer target on an engine)."""
