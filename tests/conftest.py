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


# Tiny instances of the GLM-4 families other than the embedded one (tests/tiny_families.py), built once.
@pytest.fixture(scope="session")
def tiny_glm4_dir(tmp_path_factory):
    from tiny_families import build_glm4

    return build_glm4(tmp_path_factory.mktemp("glm4") / "tiny-glm4")


@pytest.fixture(scope="session")
def tiny_chatglm_dir(tmp_path_factory):
    from tiny_families import build_chatglm

    return build_chatglm(tmp_path_factory.mktemp("chatglm") / "tiny-chatglm")


@pytest.fixture(scope="session")
def family_data(tmp_path_factory):
    from tiny_families import small_data

    return small_data(tmp_path_factory.mktemp("family-data"))
