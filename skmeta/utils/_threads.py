"""Control of torch's intra-op threads around skmeta's work."""

import contextlib
import threading

import torch

__all__ = ["torch_threads"]

_LOCK = threading.Lock()
_STATE = {"depth": 0, "saved": None}


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the block with ``n_threads`` torch intra-op threads.

    torch's thread count is global to the process. Inside the block it is
    ``n_threads``; when the last block still open in any thread ends, the
    count the caller had is restored. ``None`` leaves torch's setting alone.

    Small networks run fastest on one thread: with several, torch spends
    more time synchronising its threads than computing, and a machine busy
    with other work makes that much worse (see the benchmarks).

    Parameters
    ----------
    n_threads : int or None

    Examples
    --------
    >>> import torch
    >>> from skmeta.utils import torch_threads
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if n_threads is None:
        yield
        return
    with _LOCK:
        if _STATE["depth"] == 0:
            _STATE["saved"] = torch.get_num_threads()
        _STATE["depth"] += 1
        if torch.get_num_threads() != n_threads:
            torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0 and torch.get_num_threads() != _STATE["saved"]:
                torch.set_num_threads(_STATE["saved"])
