"""Work in progress: being written (placeholder until its module lands)."""

from typing import Any



def gelu(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def leaky_relu(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def log_softmax(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def relu(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def sigmoid(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def softmax(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def tanh(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError
