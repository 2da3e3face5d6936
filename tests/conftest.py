"""Settings for the whole test suite."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The test models are tiny: several threads per operation only add overhead (a lot of it
    when the cores are busy), and one thread keeps CPU results repeatable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
