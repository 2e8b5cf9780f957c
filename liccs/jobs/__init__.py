"""The jobs a user starts: ``liccs run`` (:mod:`.run`), ``liccs export``/``check`` (:mod:`.export`), ``liccs
attack`` (:mod:`.attack`), ``liccs defend`` (:mod:`.defend`), and their command-line arguments (:mod:`.cli_args`).
``liccs zoo train`` is :mod:`liccs.zoo.mini.zoo_train` (the zoo trains a missing mini model on demand, so its trainer
sits in the zoo)."""
