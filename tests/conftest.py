import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tok():
    from gluekit.models import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def demo_dir():
    from gluekit.tiny import DEMO_DIR

    return DEMO_DIR


@pytest.fixture
def configs():
    return os.path.join(REPO, "configs")
