"""The papers' tests use the attack tests' fixtures: the tiny trained CIFAR classifier and its 4-class batch."""

from tests.attack.conftest import batch, cifar4, one_thread, trained_cnn  # noqa: F401
